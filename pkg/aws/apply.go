package aws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// Layer is the journal layer of every underlay entry.
const Layer = "underlay"

// Journal is where apply records changes and rollback finds them.
// *journal.Store has it.
type Journal interface {
	Load(ctx context.Context) (*journal.Journal, error)
	PutAll(ctx context.Context, entries []journal.Entry) error
}

// Result of one change (or one undo). Field names are stable (-o json).
type Result struct {
	Operation  string            `json:"operation"`
	Resource   string            `json:"resource"`
	Reason     string            `json:"reason,omitempty"`
	Parameters map[string]string `json:"parameters,omitempty"`
	// Status: applied, failed, skipped (an earlier phase failed), dry-run
	// (accepted by EC2's DryRun), not-checked (the API has no dry run),
	// undone.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Statuses of a Result.
const (
	StatusApplied    = "applied"
	StatusFailed     = "failed"
	StatusSkipped    = "skipped"
	StatusDryRun     = "dry-run"
	StatusNotChecked = "not-checked"
	StatusUndone     = "undone"
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// DryRunServer sends each EC2 change with DryRun=true instead.
	DryRunServer bool
	// Parallel bounds the concurrent calls of each operation (default 4);
	// different operations go on at once, each at its API's pace.
	Parallel int
	// Batch is how many changes are recorded as pending with one journal
	// write before they are made (default 16 x Parallel). Their done
	// records go with the next batch's write, and at the end of a phase.
	Batch int
	// Progress, if set, is told about each finished change.
	Progress func(done, total int, r Result)
	// Status, if set, is told where the apply is, by operation: when a
	// stage starts and after each change (StatusPrinter shows it).
	Status func(Status)
	// Journal records each change; required unless DryRunServer.
	Journal Journal
	// WaitTimeout bounds waits for AWS state (VPC block, instance stop/start).
	WaitTimeout time.Duration
	// NodeReady, if set, waits until the Node of an instance (providerID
	// aws:///<zone>/<instance-id>) is Ready: an instance type change goes on
	// to the next instance only then. Given by the caller, so this package
	// needs no Kubernetes client.
	NodeReady NodeReadyFunc
}

// NodeReadyFunc waits, at most timeout, until the Node of the EC2 instance is Ready.
type NodeReadyFunc func(ctx context.Context, instanceID string, timeout time.Duration) error

type applier struct {
	c    *Clients
	o    ApplyOptions
	vpc  string
	mu   sync.Mutex
	vpc6 string
	eigw string
	// enis are the VPC's ENIs' IPv6 addresses, read once before the first
	// batch that assigns any (recordBefore).
	enis map[string][]string
}

// Apply makes the plan's changes stage by stage (see stages), recording
// each in the journal before (pending) and after (done, with what undoing
// needs). A failed change stops the apply: no change starts after it, the
// ones under way finish; what was done stays recorded, so a re-run (which
// plans again from the live state) and a rollback both complete from there.
func Apply(ctx context.Context, c *Clients, inv *Inventory, p *Plan, o ApplyOptions) ([]Result, error) {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 5 * time.Minute
	}
	if o.Journal == nil && !o.DryRunServer {
		return nil, errors.New("apply needs a journal")
	}
	if o.Batch <= 0 {
		o.Batch = 16 * o.Parallel
	}
	a := &applier{c: c, o: o, vpc: inv.VPC.ID, vpc6: inv.VPC.IPv6CIDR}
	for _, g := range inv.EgressOnlyGateways {
		if a.eigw == "" || g.Managed {
			a.eigw = g.ID
		}
	}
	changes := slices.Clone(p.Changes)
	SortChanges(changes)
	r := &applyRun{a: a, o: o, changes: changes, results: make([]Result, len(changes)),
		entries: make([]journal.Entry, len(changes)), abort: make(chan struct{})}
	for _, stage := range stages(changes) {
		if r.stopped() {
			break
		}
		r.runStage(ctx, stage)
		if err := ctx.Err(); err != nil {
			r.skipRest()
			return r.results, err
		}
		if changes[stage[0]].Phase == PhaseVPC && !r.stopped() && a.vpc6 == "" && !o.DryRunServer {
			if err := a.waitVPCBlock(ctx); err != nil {
				r.fail(err.Error())
			}
		}
	}
	r.skipRest()
	if failed := r.failures(); len(failed) > 0 {
		sort.Strings(failed)
		return r.results, fmt.Errorf("%d of %d changes failed; what was done is recorded, so re-running apply resumes and rollback undoes it: %s",
			len(failed), len(changes), strings.Join(failed, "; "))
	}
	return r.results, nil
}

func resultOf(c Change, status, errText string) Result {
	return Result{Operation: c.Operation, Resource: c.Resource, Reason: c.Reason, Parameters: c.Parameters, Status: status, Error: errText}
}

// resolve fills the placeholders in with what earlier phases made.
func (a *applier) resolve(c Change) (Change, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	params := make(map[string]string, len(c.Parameters))
	for k, v := range c.Parameters {
		switch {
		case v == VPCIPv6Placeholder:
			if a.vpc6 == "" {
				return c, errors.New("the VPC's IPv6 block is not known yet")
			}
			v = a.vpc6
		case strings.HasPrefix(v, VPCIPv6Placeholder+"/64#"):
			if a.vpc6 == "" {
				return c, errors.New("the VPC's IPv6 block is not known yet")
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(v, VPCIPv6Placeholder+"/64#"))
			b, err := SubnetBlock(a.vpc6, n)
			if err != nil {
				return c, err
			}
			v = b
		case v == EgressIGWPlaceholder:
			if a.eigw == "" {
				return c, errors.New("the egress-only internet gateway does not exist yet")
			}
			v = a.eigw
		}
		params[k] = v
	}
	c.Parameters = params
	return c, nil
}

// pendingEntry is the journal record of a change about to be made.
func pendingEntry(c Change) journal.Entry {
	e := journal.Entry{ID: c.ID, Layer: Layer, Operation: c.Operation, Resource: c.Resource, State: journal.Pending,
		Undo: map[string]string{"phase": strconv.Itoa(c.Phase)}}
	for k, v := range c.Parameters {
		e.Undo[k] = v
	}
	return e
}

// BeforeIPv6Key is the pending entry's record of the ENI's IPv6 addresses
// just before AssignIpv6Addresses: a rollback of an entry whose answer was
// never recorded removes only what is on the ENI beyond these.
const BeforeIPv6Key = "ipv6AddressesBefore"

// recordBefore reads, just before the batch's pending write, the state the
// batch's changes could otherwise not tell apart from their own effect:
// the IPv6 addresses already on each ENI that gets one. The VPC's ENIs are
// read once, page by page, before the first such batch (a missing ENI is
// left out, not an error: its change fails on its own).
func (a *applier) recordBefore(ctx context.Context, changes []Change, entries []journal.Entry, batch []int) error {
	var ids []string
	for _, i := range batch {
		if changes[i].Operation == "AssignIpv6Addresses" {
			ids = append(ids, changes[i].Parameters["networkInterfaceId"])
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if a.enis == nil {
		// One paginated read of the VPC's ENIs, not one per batch: a
		// constant number of calls, whatever the number of instances.
		enis, err := allPages(ctx, "DescribeNetworkInterfaces", ec2.NewDescribeNetworkInterfacesPaginator(a.c.EC2, &ec2.DescribeNetworkInterfacesInput{
			Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{a.vpc}}}, MaxResults: aws.Int32(pageSize)}),
			func(o *ec2.DescribeNetworkInterfacesOutput) []ec2types.NetworkInterface { return o.NetworkInterfaces })
		if err != nil {
			return fmt.Errorf("reading the network interfaces' IPv6 addresses before assigning one: %w", err)
		}
		a.enis = map[string][]string{}
		for _, ni := range enis {
			var addrs []string
			for _, x := range ni.Ipv6Addresses {
				addrs = append(addrs, aws.ToString(x.Ipv6Address))
			}
			sort.Strings(addrs)
			a.enis[aws.ToString(ni.NetworkInterfaceId)] = addrs
		}
	}
	have := a.enis
	for _, i := range batch {
		if changes[i].Operation == "AssignIpv6Addresses" {
			entries[i].Undo[BeforeIPv6Key] = strings.Join(have[changes[i].Parameters["networkInterfaceId"]], ",")
		}
	}
	return nil
}

// notRecorded turns changes that were made but whose done record could not
// be written into failures that say so.
func notRecorded(results []Result, idx []int, err error) {
	for _, i := range idx {
		r := &results[i]
		r.Status = StatusFailed
		r.Error = fmt.Sprintf("%s %s was made but not recorded as done (it is recorded as pending, so a rollback still finds it): %v", r.Operation, r.Resource, err)
	}
}

// one makes one resolved change (or asks EC2 whether it would, in a server
// dry run); undo is what undoing it needs.
func (a *applier) one(ctx context.Context, c Change) (Result, map[string]string) {
	if a.o.DryRunServer {
		err := a.do(ctx, c, true, nil)
		switch {
		case err == nil:
			return resultOf(c, StatusNotChecked, ""), nil
		case errorCode(err) == "DryRunOperation":
			return resultOf(c, StatusDryRun, ""), nil
		default:
			return resultOf(c, StatusFailed, explainChange(c, err)), nil
		}
	}
	undo := map[string]string{}
	if err := a.do(ctx, c, false, undo); err != nil {
		return resultOf(c, StatusFailed, explainChange(c, err)), nil
	}
	return resultOf(c, StatusApplied, ""), undo
}

// do makes one change; undo receives what undoing it needs.
func (a *applier) do(ctx context.Context, c Change, dry bool, undo map[string]string) error {
	p := c.Parameters
	e := a.c.EC2
	dr := aws.Bool(dry)
	switch c.Operation {
	case "AssociateVpcCidrBlock":
		if dry {
			return nil // no DryRun parameter on this operation: never call it in a dry run
		}
		out, err := e.AssociateVpcCidrBlock(ctx, &ec2.AssociateVpcCidrBlockInput{VpcId: aws.String(p["vpcId"]), AmazonProvidedIpv6CidrBlock: aws.Bool(true)})
		if err != nil {
			return err
		}
		if as := out.Ipv6CidrBlockAssociation; as != nil {
			undo["associationId"] = aws.ToString(as.AssociationId)
			if b := aws.ToString(as.Ipv6CidrBlock); b != "" {
				a.mu.Lock()
				a.vpc6 = b
				a.mu.Unlock()
			}
		}
		return nil
	case "CreateEgressOnlyInternetGateway":
		var tags []ec2types.Tag
		for _, kv := range strings.Split(p["tags"], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				tags = append(tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
			}
		}
		out, err := e.CreateEgressOnlyInternetGateway(ctx, &ec2.CreateEgressOnlyInternetGatewayInput{
			VpcId: aws.String(p["vpcId"]), DryRun: dr,
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeEgressOnlyInternetGateway, Tags: tags}},
		})
		if err != nil || dry {
			return err
		}
		id := aws.ToString(out.EgressOnlyInternetGateway.EgressOnlyInternetGatewayId)
		undo["egressOnlyInternetGatewayId"] = id
		a.mu.Lock()
		a.eigw = id
		a.mu.Unlock()
		return nil
	case "AssociateSubnetCidrBlock":
		if dry {
			return nil // no DryRun parameter on this operation
		}
		out, err := e.AssociateSubnetCidrBlock(ctx, &ec2.AssociateSubnetCidrBlockInput{SubnetId: aws.String(p["subnetId"]), Ipv6CidrBlock: aws.String(p["ipv6CidrBlock"])})
		if err != nil {
			return err
		}
		if as := out.Ipv6CidrBlockAssociation; as != nil {
			undo["associationId"] = aws.ToString(as.AssociationId)
		}
		return nil
	case "ModifySubnetAttribute":
		if dry {
			return nil
		}
		_, err := e.ModifySubnetAttribute(ctx, &ec2.ModifySubnetAttributeInput{SubnetId: aws.String(p["subnetId"]),
			AssignIpv6AddressOnCreation: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}})
		return err
	case "CreateRoute":
		in := &ec2.CreateRouteInput{RouteTableId: aws.String(p["routeTableId"]), DestinationIpv6CidrBlock: aws.String("::/0"), DryRun: dr}
		if g := p["gatewayId"]; g != "" {
			in.GatewayId = aws.String(g)
		} else {
			in.EgressOnlyInternetGatewayId = aws.String(p["egressOnlyInternetGatewayId"])
		}
		_, err := e.CreateRoute(ctx, in)
		return err
	case "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress":
		return a.authorize(ctx, c.Operation, p["groupId"], []ec2types.IpPermission{permission(p)}, dry)
	case "CreateNetworkAclEntry":
		return a.createACLEntry(ctx, p, dry, undo)
	case "ModifyInstanceAttribute":
		return a.changeInstanceType(ctx, p["instanceId"], p["instanceType"], p["previousState"] != "stopped", dry)
	case "AssignIpv6Addresses":
		if dry {
			return nil
		}
		out, err := e.AssignIpv6Addresses(ctx, &ec2.AssignIpv6AddressesInput{NetworkInterfaceId: aws.String(p["networkInterfaceId"]), Ipv6AddressCount: aws.Int32(1)})
		if err != nil {
			return err
		}
		undo["ipv6Addresses"] = strings.Join(out.AssignedIpv6Addresses, ",")
		return nil
	case "SetIpAddressType":
		if dry {
			return nil // ELBv2 has no dry run
		}
		_, err := a.c.ELBv2.SetIpAddressType(ctx, &elbv2.SetIpAddressTypeInput{LoadBalancerArn: aws.String(p["loadBalancerArn"]), IpAddressType: elbv2types.IpAddressType(p["ipAddressType"])})
		return err
	}
	return fmt.Errorf("unknown operation %s", c.Operation)
}

func ignoreCode(err error, codes ...string) error {
	if err != nil && slices.Contains(codes, errorCode(err)) {
		return nil
	}
	return err
}

func permission(p map[string]string) ec2types.IpPermission {
	perm := ec2types.IpPermission{IpProtocol: aws.String(p["ipProtocol"]),
		Ipv6Ranges: []ec2types.Ipv6Range{{CidrIpv6: aws.String(p["cidrIpv6"]), Description: aws.String(ruleDescription(p))}}}
	if p["ipProtocol"] != "-1" {
		perm.FromPort, perm.ToPort = aws.Int32(atoi32(p["fromPort"])), aws.Int32(atoi32(p["toPort"]))
	}
	return perm
}

func (a *applier) waitVPCBlock(ctx context.Context) error {
	deadline := time.Now().Add(a.o.WaitTimeout)
	for {
		out, err := a.c.EC2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{a.vpc}})
		if err != nil {
			return Explain("DescribeVpcs", err)
		}
		for _, v := range out.Vpcs {
			for _, as := range v.Ipv6CidrBlockAssociationSet {
				st := ""
				if as.Ipv6CidrBlockState != nil {
					st = strings.ToLower(string(as.Ipv6CidrBlockState.State))
				}
				if activeState(st) && !strings.Contains(st, "associating") && aws.ToString(as.Ipv6CidrBlock) != "" {
					a.mu.Lock()
					a.vpc6 = aws.ToString(as.Ipv6CidrBlock)
					a.mu.Unlock()
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the VPC %s's IPv6 block was not associated within %s", a.vpc, a.o.WaitTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (a *applier) changeInstanceType(ctx context.Context, id, typ string, start, dry bool) error {
	e := a.c.EC2
	if dry {
		_, err := e.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}, DryRun: aws.Bool(true)})
		return err
	}
	return setInstanceType(ctx, e, id, typ, a.o.WaitTimeout, start, a.o.NodeReady)
}

// setInstanceType stops the instance, changes its type and, when start,
// starts it again and waits for its Node to be Ready (nodeReady, if set).
// Once StopInstances has been asked, any failure (an error, a timeout,
// Ctrl-C) still starts the instance again, with a context of its own,
// bounded by timeout: a failed change must not leave a node down.
func setInstanceType(ctx context.Context, e EC2API, id, typ string, timeout time.Duration, start bool, nodeReady NodeReadyFunc) (err error) {
	if _, err := e.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		return fmt.Errorf("StopInstances: %w", err)
	}
	started := false
	defer func() {
		if err == nil || started || !start {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		if serr := startInstance(rctx, e, id, timeout); serr != nil {
			err = &instanceNote{err: err, note: fmt.Sprintf("starting %s again failed too (%v): start it by hand (aws ec2 start-instances --instance-ids %s)", id, serr, id)}
			return
		}
		err = &instanceNote{err: err, note: id + " was started again with its type unchanged"}
	}()
	if err := ec2.NewInstanceStoppedWaiter(e).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, timeout); err != nil {
		return fmt.Errorf("waiting for %s to stop: %w", id, err)
	}
	if _, err := e.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id),
		InstanceType: &ec2types.AttributeValue{Value: aws.String(typ)}}); err != nil {
		return err
	}
	if !start {
		return nil // it was stopped before: it stays so
	}
	if err := startInstance(ctx, e, id, timeout); err != nil {
		return err
	}
	started = true
	if nodeReady != nil {
		if err := nodeReady(ctx, id, timeout); err != nil {
			return fmt.Errorf("%s runs again as a %s, but its Node is not Ready: %w; check the node before re-running", id, typ, err)
		}
	}
	return nil
}

// instanceNote is an instance change's error plus what was done about it
// (started again, or not): kept apart so Explain's one-line summary of the
// AWS error does not drop it.
type instanceNote struct {
	err  error
	note string
}

func (e *instanceNote) Error() string { return e.err.Error() + "; " + e.note }
func (e *instanceNote) Unwrap() error { return e.err }

// explainChange is Explain for one change, with an instance's note.
func explainChange(c Change, err error) string {
	msg := Explain(c.Operation+" "+c.Resource, err).Error()
	var n *instanceNote
	if errors.As(err, &n) {
		msg += "; " + n.note
	}
	return msg
}

func startInstance(ctx context.Context, e EC2API, id string, timeout time.Duration) error {
	if _, err := e.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		return fmt.Errorf("StartInstances: %w", err)
	}
	if err := ec2.NewInstanceRunningWaiter(e).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, timeout); err != nil {
		return fmt.Errorf("waiting for %s to run: %w", id, err)
	}
	return nil
}
