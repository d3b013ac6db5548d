package aws

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// fakeEC2 answers the few calls a test needs; any other call panics (the
// embedded interface is nil), so a test also proves what is not called.
type fakeEC2 struct {
	EC2API
	vpcs       []ec2types.Vpc
	instances  []ec2types.Instance
	enis       map[string][]string // ENI -> IPv6 addresses
	unassigned []string
	eigwPages  [][]ec2types.EgressOnlyInternetGateway
	eigwCalls  []*ec2.DescribeEgressOnlyInternetGatewaysInput
}

func (f *fakeEC2) DescribeVpcs(_ context.Context, in *ec2.DescribeVpcsInput, _ ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	var out []ec2types.Vpc
	for _, v := range f.vpcs {
		if len(in.VpcIds) > 0 && slices.Contains(in.VpcIds, aws.ToString(v.VpcId)) {
			out = append(out, v)
		}
		for _, flt := range in.Filters {
			if aws.ToString(flt.Name) == "tag-key" && hasTag(v.Tags, flt.Values[0]) {
				out = append(out, v)
			}
		}
	}
	return &ec2.DescribeVpcsOutput{Vpcs: out}, nil
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	if len(in.InstanceIds) > 0 {
		return nil, errors.New("by ID: a missing instance would fail the whole call (InvalidInstanceID.NotFound)")
	}
	var out []ec2types.Instance
	for _, i := range f.instances {
		if slices.Contains(in.Filters[0].Values, aws.ToString(i.InstanceId)) {
			out = append(out, i)
		}
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: out}}}, nil
}

func (f *fakeEC2) DescribeNetworkInterfaces(_ context.Context, in *ec2.DescribeNetworkInterfacesInput, _ ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error) {
	var out []ec2types.NetworkInterface
	for _, id := range in.NetworkInterfaceIds {
		ni := ec2types.NetworkInterface{NetworkInterfaceId: aws.String(id)}
		for _, a := range f.enis[id] {
			ni.Ipv6Addresses = append(ni.Ipv6Addresses, ec2types.NetworkInterfaceIpv6Address{Ipv6Address: aws.String(a)})
		}
		out = append(out, ni)
	}
	return &ec2.DescribeNetworkInterfacesOutput{NetworkInterfaces: out}, nil
}

func (f *fakeEC2) UnassignIpv6Addresses(_ context.Context, in *ec2.UnassignIpv6AddressesInput, _ ...func(*ec2.Options)) (*ec2.UnassignIpv6AddressesOutput, error) {
	f.unassigned = append(f.unassigned, in.Ipv6Addresses...)
	return &ec2.UnassignIpv6AddressesOutput{}, nil
}

func (f *fakeEC2) DescribeEgressOnlyInternetGateways(_ context.Context, in *ec2.DescribeEgressOnlyInternetGatewaysInput, _ ...func(*ec2.Options)) (*ec2.DescribeEgressOnlyInternetGatewaysOutput, error) {
	f.eigwCalls = append(f.eigwCalls, in)
	page := 0
	if in.NextToken != nil {
		page = int(aws.ToString(in.NextToken)[0] - '0')
	}
	out := &ec2.DescribeEgressOnlyInternetGatewaysOutput{EgressOnlyInternetGateways: f.eigwPages[page]}
	if page+1 < len(f.eigwPages) {
		out.NextToken = aws.String(string(rune('0' + page + 1)))
	}
	return out, nil
}

type fakeJournal struct{ j journal.Journal }

func (f *fakeJournal) Load(context.Context) (*journal.Journal, error)     { return &f.j, nil }
func (f *fakeJournal) PutAll(_ context.Context, es []journal.Entry) error { return nil }

func TestPlanRouteTablesOnlyMatchingKind(t *testing.T) {
	inv := inventory()
	inv.RouteTables = []RouteTable{
		{ID: "rtb-igw", IPv4Default: "igw-1", InternetGateway: "igw-1"},
		{ID: "rtb-nat", IPv4Default: "nat-1"},
		{ID: "rtb-isolated"},
		{ID: "rtb-igw-nondefault", InternetGateway: "igw-1"}, // a route to the IGW, but not the default
		{ID: "rtb-tgw", IPv4Default: "tgw-1"},
		{ID: "rtb-other", IPv4Default: "nat-1", OtherCluster: "c2"},
		{ID: "rtb-main-shared", Main: true, IPv4Default: "nat-1", ForeignSubnetIDs: []string{"subnet-x"}},
		{ID: "rtb-main-ours", Main: true, IPv4Default: "nat-1"},
	}
	p := MakePlan(inv, PlanOptions{})
	routes := map[string]Change{}
	for _, c := range p.Changes {
		if c.Operation == "CreateRoute" {
			routes[c.Resource] = c
		}
	}
	if c := routes["rtb-igw"]; c.Parameters["gatewayId"] != "igw-1" {
		t.Errorf("IGW table: %+v", c)
	}
	for _, id := range []string{"rtb-nat", "rtb-main-ours"} {
		if c := routes[id]; c.Parameters["egressOnlyInternetGatewayId"] == "" {
			t.Errorf("NAT table %s should route ::/0 to the egress-only gateway: %+v", id, c)
		}
	}
	for id, why := range map[string]string{"rtb-isolated": "no IPv4 default", "rtb-igw-nondefault": "no IPv4 default", "rtb-tgw": "tgw-1",
		"rtb-other": "another cluster", "rtb-main-shared": "subnet-x"} {
		if _, ok := routes[id]; ok {
			t.Errorf("%s must get no ::/0", id)
		}
		i := slices.IndexFunc(p.Notes, func(n Note) bool { return n.Resource == id })
		if i < 0 || !strings.Contains(p.Notes[i].Message, why) {
			t.Errorf("%s: the plan should say why it is left alone (%q): %+v", id, why, p.Notes)
		}
	}
}

func TestPlanNoEgressOnlyGatewayWithoutNATTable(t *testing.T) {
	inv := inventory()
	inv.RouteTables = []RouteTable{{ID: "rtb-isolated"}}
	for _, c := range MakePlan(inv, PlanOptions{}).Changes {
		if c.Operation == "CreateEgressOnlyInternetGateway" {
			t.Fatal("an egress-only gateway for no table that needs one")
		}
	}
}

func TestOtherCluster(t *testing.T) {
	tags := func(kv ...string) []ec2types.Tag {
		var out []ec2types.Tag
		for i := 0; i < len(kv); i += 2 {
			out = append(out, ec2types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
		}
		return out
	}
	const ours = ClusterTagPrefix + "c1"
	for _, tc := range []struct {
		tags []ec2types.Tag
		want string
	}{
		{tags(ours, "owned"), ""},
		{tags("Name", "x"), ""},
		{tags(ClusterTagPrefix+"c2", "owned"), "c2"},
		{tags(ClusterTagPrefix+"c2", "shared"), "c2"},
		{tags(ours, "shared", ClusterTagPrefix+"c2", "shared"), ""},
		{tags(ours, "shared", ClusterTagPrefix+"c2", "owned"), "c2"},
	} {
		if got := otherCluster(tc.tags, ours); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.tags, got, tc.want)
		}
	}
}

func TestRollbackPendingENIUndoesOnlyTheDifference(t *testing.T) {
	for _, tc := range []struct {
		name   string
		undo   map[string]string
		remove []string
	}{
		{"before recorded", map[string]string{BeforeIPv6Key: "2600::a"}, []string{"2600::b"}},
		{"nothing before", map[string]string{BeforeIPv6Key: ""}, []string{"2600::a", "2600::b"}},
		{"done: the recorded answer", map[string]string{BeforeIPv6Key: "", "ipv6Addresses": "2600::b"}, []string{"2600::b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEC2{enis: map[string][]string{"eni-1": {"2600::a", "2600::b"}}}
			u := map[string]string{"networkInterfaceId": "eni-1", "vpcId": "vpc-1", "phase": "5"}
			for k, v := range tc.undo {
				u[k] = v
			}
			j := &fakeJournal{j: journal.Journal{Entries: []journal.Entry{{ID: "x", Layer: Layer, Operation: "AssignIpv6Addresses", Resource: "eni-1", State: journal.Pending, Undo: u}}}}
			if _, err := Rollback(context.Background(), &Clients{EC2: f}, "vpc-1", j, RollbackOptions{}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.unassigned, tc.remove) {
				t.Errorf("unassigned %v, want %v", f.unassigned, tc.remove)
			}
		})
	}
}

func TestDiscoverRefusesForeignVPC(t *testing.T) {
	f := &fakeEC2{
		vpcs: []ec2types.Vpc{
			{VpcId: aws.String("vpc-ours"), Tags: []ec2types.Tag{{Key: aws.String(ClusterTagPrefix + "c1"), Value: aws.String("owned")}}},
			{VpcId: aws.String("vpc-theirs"), Tags: []ec2types.Tag{{Key: aws.String(ClusterTagPrefix + "c2"), Value: aws.String("owned")}}},
		},
		instances: []ec2types.Instance{{InstanceId: aws.String("i-1"), VpcId: aws.String("vpc-ours"),
			Tags: []ec2types.Tag{{Key: aws.String(ClusterTagPrefix + "c1"), Value: aws.String("owned")}}}},
	}
	c := &Clients{Region: "us-east-1", EC2: f}
	_, err := Discover(context.Background(), c, Target{VPCID: "vpc-theirs", Instances: map[string]bool{"i-1": false, "i-gone": false},
		NodeNames: map[string]string{"i-1": "node-1", "i-gone": "node-gone"}})
	var fe *ForeignVPCError
	if !errors.As(err, &fe) {
		t.Fatalf("want a *ForeignVPCError, got %v", err)
	}
	// The foreign VPC's own tag (another cluster's) proves nothing; the
	// cluster's VPC is named with how it was found.
	if fe.InfraID != "c1" || fe.ClusterVPC != "vpc-ours" || !strings.Contains(err.Error(), "tagged "+ClusterTagPrefix+"c1") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error: %+v: %v", fe, err)
	}
}

func TestNodeInstancesSkipsGoneNodes(t *testing.T) {
	f := &fakeEC2{instances: []ec2types.Instance{{InstanceId: aws.String("i-1"), VpcId: aws.String("vpc-ours")}}}
	inv := &Inventory{}
	got, err := nodeInstances(context.Background(), &Clients{Region: "us-east-1", EC2: f}, inv,
		Target{Instances: map[string]bool{"i-1": false, "i-gone": false}, NodeNames: map[string]string{"i-1": "node-1", "i-gone": "node-gone"}})
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	if len(inv.Notes) != 1 || inv.Notes[0].Resource != "node/node-gone" || !strings.Contains(inv.Notes[0].Message, "i-gone") {
		t.Errorf("notes: %+v", inv.Notes)
	}
}

func TestEgressOnlyGatewaysNarrowedAndPaginated(t *testing.T) {
	gw := func(id string) ec2types.EgressOnlyInternetGateway {
		return ec2types.EgressOnlyInternetGateway{EgressOnlyInternetGatewayId: aws.String(id)}
	}
	f := &fakeEC2{eigwPages: [][]ec2types.EgressOnlyInternetGateway{{gw("eigw-1")}, {gw("eigw-2")}}}
	c := &Clients{EC2: f}
	got, err := egressOnlyGateways(context.Background(), c, nil, []ec2types.Filter{{Name: aws.String("tag:" + ManagedByTag), Values: []string{ManagedByValue}}})
	if err != nil || len(got) != 2 || len(f.eigwCalls) != 2 {
		t.Fatalf("want both pages: %v %v (%d calls)", got, err, len(f.eigwCalls))
	}
	for _, in := range f.eigwCalls {
		if len(in.Filters) == 0 && len(in.EgressOnlyInternetGatewayIds) == 0 {
			t.Error("a region-wide listing")
		}
	}
	f.eigwCalls = nil
	if _, err := egressOnlyGateways(context.Background(), c, nil, nil); err != nil || len(f.eigwCalls) != 0 {
		t.Errorf("no IDs and no filter must make no call: %d calls", len(f.eigwCalls))
	}
}

// fakeInstance is one EC2 instance whose stop/start/modify take effect at once.
type fakeInstance struct {
	EC2API
	typ, state string
	modifyErr  error
	calls      []string
	startCtxOK bool // StartInstances ran with a live context
}

func (f *fakeInstance) DescribeInstances(ctx context.Context, _ *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: []ec2types.Instance{{InstanceId: aws.String("i-1"),
		InstanceType: ec2types.InstanceType(f.typ), State: &ec2types.InstanceState{Name: ec2types.InstanceStateName(f.state)}}}}}}, nil
}

func (f *fakeInstance) StopInstances(context.Context, *ec2.StopInstancesInput, ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	f.calls, f.state = append(f.calls, "stop"), "stopped"
	return &ec2.StopInstancesOutput{}, nil
}

func (f *fakeInstance) StartInstances(ctx context.Context, _ *ec2.StartInstancesInput, _ ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.calls, f.state, f.startCtxOK = append(f.calls, "start"), "running", true
	return &ec2.StartInstancesOutput{}, nil
}

func (f *fakeInstance) ModifyInstanceAttribute(ctx context.Context, in *ec2.ModifyInstanceAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error) {
	f.calls = append(f.calls, "modify")
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.modifyErr != nil {
		return nil, f.modifyErr
	}
	f.typ = aws.ToString(in.InstanceType.Value)
	return &ec2.ModifyInstanceAttributeOutput{}, nil
}

func TestSetInstanceTypeStartsAgainOnFailure(t *testing.T) {
	// A failed modify: the instance runs again, the error says so.
	f := &fakeInstance{typ: "m1.large", state: "running", modifyErr: errors.New("Unsupported")}
	err := setInstanceType(context.Background(), f, "i-1", "m6i.large", time.Minute, true, nil)
	if err == nil || !strings.Contains(err.Error(), "started again") || f.state != "running" || f.typ != "m1.large" {
		t.Fatalf("err %v, state %s, calls %v", err, f.state, f.calls)
	}
	// Ctrl-C once StopInstances was sent (the context is cancelled): it is
	// started again with a context of its own.
	ctx, cancel := context.WithCancel(context.Background())
	f = &fakeInstance{typ: "m1.large", state: "running"}
	cancel()
	err = setInstanceType(ctx, f, "i-1", "m6i.large", time.Minute, true, nil)
	if !errors.Is(err, context.Canceled) || f.state != "running" || !f.startCtxOK {
		t.Fatalf("err %v, state %s, calls %v, start with a live context %t", err, f.state, f.calls, f.startCtxOK)
	}

	// The Node is waited for, and only after the instance runs.
	f = &fakeInstance{typ: "m1.large", state: "running"}
	waited := ""
	err = setInstanceType(context.Background(), f, "i-1", "m6i.large", time.Minute, true, func(_ context.Context, id string, _ time.Duration) error {
		waited = id + " " + f.state
		return nil
	})
	if err != nil || waited != "i-1 running" || f.typ != "m6i.large" || !slices.Equal(f.calls, []string{"stop", "modify", "start"}) {
		t.Fatalf("err %v, waited %q, calls %v", err, waited, f.calls)
	}
}

func TestRollbackInstanceRestoresRunningState(t *testing.T) {
	// The type was never changed but the instance was left stopped.
	f := &fakeInstance{typ: "m1.large", state: "stopped"}
	u := map[string]string{"instanceId": "i-1", "previousInstanceType": "m1.large", "previousState": "running", "vpcId": "vpc-1", "phase": "4"}
	j := &fakeJournal{j: journal.Journal{Entries: []journal.Entry{{ID: "x", Layer: Layer, Operation: "ModifyInstanceAttribute", Resource: "i-1", State: journal.Pending, Undo: u}}}}
	if _, err := Rollback(context.Background(), &Clients{EC2: f}, "vpc-1", j, RollbackOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.state != "running" || !slices.Equal(f.calls, []string{"start"}) {
		t.Fatalf("state %s, calls %v", f.state, f.calls)
	}
}

func TestPlanControlPlaneTypeChangeNeedsFlag(t *testing.T) {
	inv := inventory()
	inv.Instances = []Instance{{ID: "i-cp", Type: "m1.large", ControlPlane: true, PrimaryENI: "eni-1", State: "running"}}
	p := MakePlan(inv, PlanOptions{NewInstanceType: "m6i.large"})
	for _, c := range p.Changes {
		if c.Resource == "i-cp" || c.Resource == "eni-1" {
			t.Errorf("without --allow-control-plane-restart: %s %s", c.Operation, c.Resource)
		}
	}
	p = MakePlan(inv, PlanOptions{NewInstanceType: "m6i.large", AllowControlPlaneRestart: true})
	if i := slices.IndexFunc(p.Changes, func(c Change) bool { return c.Resource == "i-cp" }); i < 0 || p.Changes[i].Parameters["previousState"] != "running" {
		t.Errorf("with the flag the change is planned, recording the state before: %+v", p.Changes)
	}
}
