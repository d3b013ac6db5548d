package aws

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// notFound are the error codes that mean "already gone": undoing is done.
var notFound = []string{
	"InvalidAssociationID.NotFound", "InvalidVpcID.NotFound", "InvalidSubnetID.NotFound", "InvalidRoute.NotFound",
	"InvalidPermission.NotFound", "InvalidGroup.NotFound", "InvalidGatewayID.NotFound",
	"InvalidEgressOnlyInternetGatewayId.NotFound", "InvalidNetworkInterfaceID.NotFound", "InvalidInstanceID.NotFound",
	"LoadBalancerNotFound", "InvalidNetworkAclID.NotFound", "InvalidNetworkAclEntry.NotFound",
}

// Undoable returns the journal's underlay entries for the VPC that are not
// undone yet (done, or pending: may have happened), in undo order: later
// phases first, then newest first.
func Undoable(j *journal.Journal, vpcID string) []journal.Entry {
	var out []journal.Entry
	for _, e := range j.Layer(Layer) {
		if e.State == journal.Undone || e.Undo["vpcId"] != vpcID {
			continue
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(a, b int) bool {
		pa, _ := strconv.Atoi(out[a].Undo["phase"])
		pb, _ := strconv.Atoi(out[b].Undo["phase"])
		if pa != pb {
			return pa > pb
		}
		return out[a].Seq > out[b].Seq
	})
	return out
}

// rollbackBatch is how many undone marks one journal write carries.
const rollbackBatch = 64

// RollbackOptions tune Rollback.
type RollbackOptions struct {
	Progress    func(done, total int, r Result)
	WaitTimeout time.Duration
	// NodeReady, if set, waits for an instance's Node after it is started
	// again (see ApplyOptions.NodeReady).
	NodeReady NodeReadyFunc
}

// Rollback undoes, in reverse dependency order, exactly what the journal
// says apply did to the VPC, and marks each entry undone. Pending entries
// (apply stopped between asking AWS and recording the answer) are undone
// from the live state: what a pending change would have made did not exist
// before it (else it would not have been planned).
func Rollback(ctx context.Context, c *Clients, vpcID string, j Journal, o RollbackOptions) ([]Result, error) {
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 5 * time.Minute
	}
	jn, err := j.Load(ctx)
	if err != nil {
		return nil, err
	}
	entries := Undoable(jn, vpcID)
	var results []Result
	var failed []string
	// Undone marks are written in batches: an undo whose mark is lost is
	// simply undone again by the next rollback (it finds nothing to undo).
	var marks []journal.Entry
	var marked []int // indexes into results
	flush := func() {
		if len(marks) == 0 {
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := j.PutAll(wctx, marks); err != nil {
			for _, i := range marked {
				results[i].Status, results[i].Error = StatusFailed, "undone, but not recorded as undone (the next rollback checks it again): "+err.Error()
			}
			failed = append(failed, err.Error())
		}
		marks, marked = nil, nil
	}
	done := 0
	for _, unit := range rollbackUnits(entries) {
		if ctx.Err() != nil {
			break
		}
		var err error
		if isRuleChange(entries[unit[0]].Operation) {
			es := make([]journal.Entry, len(unit))
			for k, i := range unit {
				es[k] = entries[i]
			}
			err = ignoreCode(revokeRules(ctx, c, es), notFound...)
		} else {
			err = undo(ctx, c, entries[unit[0]], o)
		}
		for _, i := range unit {
			e := entries[i]
			r := Result{Operation: e.Operation, Resource: e.Resource, Parameters: e.Undo, Status: StatusUndone}
			if err != nil {
				r.Status, r.Error = StatusFailed, Explain("undoing "+e.Operation+" "+e.Resource, err).Error()
				failed = append(failed, r.Error)
			} else {
				e.State = journal.Undone
				marks = append(marks, e)
				marked = append(marked, len(results))
			}
			results = append(results, r)
		}
		if len(marks) >= rollbackBatch || len(failed) > 0 {
			flush()
		}
		if o.Progress != nil {
			for k := range unit {
				done++
				o.Progress(done, len(entries), results[len(results)-len(unit)+k])
			}
		}
		if len(failed) > 0 {
			break // later undos may depend on this one (addresses before /64s)
		}
	}
	flush()
	if err := ctx.Err(); err != nil && len(failed) == 0 {
		return results, err
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("rollback stopped: %s; fix that and re-run rollback, it continues from there", strings.Join(failed, "; "))
	}
	return results, nil
}

func undo(ctx context.Context, c *Clients, e journal.Entry, o RollbackOptions) error {
	timeout := o.WaitTimeout
	u := e.Undo
	ec := c.EC2
	var err error
	switch e.Operation {
	case "SetIpAddressType":
		prev := u["previousIpAddressType"]
		if prev == "" {
			prev = "ipv4"
		}
		_, err = c.ELBv2.SetIpAddressType(ctx, &elbv2.SetIpAddressTypeInput{LoadBalancerArn: aws.String(u["loadBalancerArn"]), IpAddressType: elbv2types.IpAddressType(prev)})
	case "AssignIpv6Addresses":
		addrs := splitList(u["ipv6Addresses"])
		if len(addrs) == 0 {
			// Pending: the answer (which address AWS picked) was never
			// recorded. Ours is what the ENI has now beyond what it had just
			// before the change. Entries written before that was recorded
			// have no such list: the plan only assigns to ENIs that had no
			// IPv6 address, so for them everything there is taken as ours.
			before, recorded := u[BeforeIPv6Key]
			keep := splitList(before)
			out, derr := ec.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{u["networkInterfaceId"]}})
			if derr != nil {
				return ignoreCode(derr, notFound...)
			}
			for _, ni := range out.NetworkInterfaces {
				for _, a := range ni.Ipv6Addresses {
					if x := aws.ToString(a.Ipv6Address); !recorded || !slices.Contains(keep, x) {
						addrs = append(addrs, x)
					}
				}
			}
		}
		if len(addrs) == 0 {
			return nil
		}
		_, err = ec.UnassignIpv6Addresses(ctx, &ec2.UnassignIpv6AddressesInput{NetworkInterfaceId: aws.String(u["networkInterfaceId"]), Ipv6Addresses: addrs})
	case "ModifyInstanceAttribute":
		out, derr := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{u["instanceId"]}})
		if derr != nil {
			return ignoreCode(derr, notFound...)
		}
		// The type back, and the state it had: running (the entry says so;
		// entries from before that was recorded leave the state as it is)
		// or stopped.
		wasStopped := u["previousState"] == "stopped"
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				state := ""
				if in.State != nil {
					state = string(in.State.Name)
				}
				switch {
				case string(in.InstanceType) != u["previousInstanceType"]:
					err = setInstanceType(ctx, ec, u["instanceId"], u["previousInstanceType"], timeout, !wasStopped, o.NodeReady)
				case u["previousState"] == "running" && (state == "stopped" || state == "stopping"):
					if state == "stopping" {
						if err = ec2.NewInstanceStoppedWaiter(ec).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{u["instanceId"]}}, timeout); err != nil {
							return err
						}
					}
					if err = startInstance(ctx, ec, u["instanceId"], timeout); err == nil && o.NodeReady != nil {
						err = o.NodeReady(ctx, u["instanceId"], timeout)
					}
				}
			}
		}
	case "ModifySubnetAttribute":
		_, err = ec.ModifySubnetAttribute(ctx, &ec2.ModifySubnetAttributeInput{SubnetId: aws.String(u["subnetId"]),
			AssignIpv6AddressOnCreation: &ec2types.AttributeBooleanValue{Value: aws.Bool(false)}})
	case "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress":
		err = revokeRules(ctx, c, []journal.Entry{e})
	case "CreateNetworkAclEntry":
		err = deleteACLEntry(ctx, c, u)
	case "CreateRoute":
		_, err = ec.DeleteRoute(ctx, &ec2.DeleteRouteInput{RouteTableId: aws.String(u["routeTableId"]), DestinationIpv6CidrBlock: aws.String("::/0")})
	case "AssociateSubnetCidrBlock":
		id := u["associationId"]
		if id == "" {
			out, derr := ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{u["subnetId"]}})
			if derr != nil {
				return ignoreCode(derr, notFound...)
			}
			for _, s := range out.Subnets {
				for _, a := range s.Ipv6CidrBlockAssociationSet {
					if a.Ipv6CidrBlockState == nil || activeState(string(a.Ipv6CidrBlockState.State)) {
						id = aws.ToString(a.AssociationId)
					}
				}
			}
		}
		if id == "" {
			return nil
		}
		_, err = ec.DisassociateSubnetCidrBlock(ctx, &ec2.DisassociateSubnetCidrBlockInput{AssociationId: aws.String(id)})
	case "CreateEgressOnlyInternetGateway":
		ids := splitList(u["egressOnlyInternetGatewayId"])
		if len(ids) == 0 { // pending: find ours by tag
			own, derr := egressOnlyGateways(ctx, c, nil, []ec2types.Filter{{Name: aws.String("tag:" + ManagedByTag), Values: []string{ManagedByValue}}})
			if derr != nil {
				return derr
			}
			for _, g := range own {
				if tagValue(g.Tags, ManagedByTag) != ManagedByValue {
					continue
				}
				for _, a := range g.Attachments {
					if aws.ToString(a.VpcId) == u["vpcId"] {
						ids = append(ids, aws.ToString(g.EgressOnlyInternetGatewayId))
					}
				}
			}
		}
		for _, id := range ids {
			if _, err := ec.DeleteEgressOnlyInternetGateway(ctx, &ec2.DeleteEgressOnlyInternetGatewayInput{EgressOnlyInternetGatewayId: aws.String(id)}); ignoreCode(err, notFound...) != nil {
				return err
			}
		}
	case "AssociateVpcCidrBlock":
		id := u["associationId"]
		if id == "" {
			out, derr := ec.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{u["vpcId"]}})
			if derr != nil {
				return ignoreCode(derr, notFound...)
			}
			for _, v := range out.Vpcs {
				for _, a := range v.Ipv6CidrBlockAssociationSet {
					if a.Ipv6CidrBlockState == nil || activeState(string(a.Ipv6CidrBlockState.State)) {
						id = aws.ToString(a.AssociationId)
					}
				}
			}
		}
		if id == "" {
			return nil
		}
		_, err = ec.DisassociateVpcCidrBlock(ctx, &ec2.DisassociateVpcCidrBlockInput{AssociationId: aws.String(id)})
	default:
		return fmt.Errorf("no undo for operation %s", e.Operation)
	}
	return ignoreCode(err, notFound...)
}

// rollbackUnits groups the undo of rules of one security group and
// direction (in one phase) into one unit, at the place of its first rule;
// everything else is a unit of its own.
func rollbackUnits(entries []journal.Entry) [][]int {
	var out [][]int
	group := map[string]int{}
	for i, e := range entries {
		if !isRuleChange(e.Operation) {
			out = append(out, []int{i})
			continue
		}
		key := e.Undo["phase"] + "/" + e.Operation + "/" + e.Undo["groupId"]
		if u, ok := group[key]; ok {
			out[u] = append(out[u], i)
			continue
		}
		group[key] = len(out)
		out = append(out, []int{i})
	}
	return out
}

func revokePermission(u map[string]string) ec2types.IpPermission {
	perm := permission(u)
	perm.Ipv6Ranges[0].Description = nil
	return perm
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
