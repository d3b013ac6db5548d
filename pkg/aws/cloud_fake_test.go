package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"
)

// fakeCloud is one region's EC2 and load balancer state, read by discover
// and changed by apply and rollback. It refuses changes made in the wrong
// order (a /64 outside the VPC's /56, a VPC block or a subnet block still in
// use, AssignIpv6AddressOnCreation or an address in a subnet without IPv6,
// an address for an instance type without IPv6, a type change of a running
// instance, a dualstack load balancer on IPv4-only subnets, duplicate routes
// and rules), keeps disassociated blocks listed as AWS does, and can be told
// to fail a call (faults). Some refusals are stricter than what is known of
// AWS (a subnet block is refused while the subnet still assigns IPv6 on
// creation; unassigning an address the ENI does not have is an error): they
// hold rollback to the exact reverse of apply. Any EC2 call it does not
// implement panics (the embedded interface is nil).
type fakeCloud struct {
	EC2API

	mu        sync.Mutex
	vpcs      []*ec2types.Vpc
	subnets   []*ec2types.Subnet
	tables    []*ec2types.RouteTable
	igws      []ec2types.InternetGateway
	eigws     []*ec2types.EgressOnlyInternetGateway
	nats      []ec2types.NatGateway
	groups    []*ec2types.SecurityGroup
	instances []*ec2types.Instance
	enis      []*ec2types.NetworkInterface
	ipv6Types map[string]bool
	lbs       []*elbv2types.LoadBalancer
	lbTags    map[string][]elbv2types.Tag
	classic   []elbtypes.LoadBalancerDescription
	classTags map[string][]elbtypes.Tag
	acls      []*ec2types.NetworkAcl

	seq    int      // for new IDs
	blocks int      // /56s handed out
	faults []*fault // checked by every change
	// changes are the successful changing calls, "Operation resource".
	changes []string
}

// fault makes the first matching call fail (once).
type fault struct {
	op, resource string // resource "" matches any
	// after: the change is made, then the error is returned, as when the
	// answer is lost (a timeout after AWS acted).
	after bool
	// lie: the call answers success and changes nothing.
	lie  bool
	code string
	used bool
}

func apiError(code, format string, args ...any) error {
	return &smithy.GenericAPIError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// clone deep-copies an SDK value, so callers never share the fake's state.
func clone[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

func tags(kv ...string) []ec2types.Tag {
	var out []ec2types.Tag
	for i := 0; i < len(kv); i += 2 {
		out = append(out, ec2types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return out
}

func perm(proto string, from, to int32, v4 ...string) ec2types.IpPermission {
	p := ec2types.IpPermission{IpProtocol: aws.String(proto)}
	if proto != "-1" {
		p.FromPort, p.ToPort = aws.Int32(from), aws.Int32(to)
	}
	for _, c := range v4 {
		if strings.Contains(c, ":") {
			p.Ipv6Ranges = append(p.Ipv6Ranges, ec2types.Ipv6Range{CidrIpv6: aws.String(c)})
		} else {
			p.IpRanges = append(p.IpRanges, ec2types.IpRange{CidrIp: aws.String(c)})
		}
	}
	return p
}

// newOpenShiftVPC is an IPv4-only OpenShift-IPI-like cluster c1 in vpc-1
// (two zones: public subnets behind igw-1, private ones behind a NAT
// gateway each), sharing the VPC with a subnet, table, group and instance
// of another cluster c2.
func newOpenShiftVPC() *fakeCloud {
	c1, c2 := ClusterTagPrefix+"c1", ClusterTagPrefix+"c2"
	f := &fakeCloud{ipv6Types: map[string]bool{"m6i.xlarge": true, "m6i.large": true, "m1.large": false},
		lbTags: map[string][]elbv2types.Tag{}, classTags: map[string][]elbtypes.Tag{}}
	f.vpcs = []*ec2types.Vpc{{VpcId: aws.String("vpc-1"), CidrBlock: aws.String("10.0.0.0/16"),
		CidrBlockAssociationSet: []ec2types.VpcCidrBlockAssociation{{AssociationId: aws.String("vpc-cidr-assoc-1"), CidrBlock: aws.String("10.0.0.0/16"),
			CidrBlockState: &ec2types.VpcCidrBlockState{State: ec2types.VpcCidrBlockStateCodeAssociated}}},
		Tags: tags("Name", "c1-vpc", c1, "owned")}}
	subnet := func(id, cidr, az, owner string) *ec2types.Subnet {
		return &ec2types.Subnet{SubnetId: aws.String(id), VpcId: aws.String("vpc-1"), CidrBlock: aws.String(cidr), AvailabilityZone: aws.String(az),
			AssignIpv6AddressOnCreation: aws.Bool(false), Tags: tags("Name", id, owner, "owned")}
	}
	f.subnets = []*ec2types.Subnet{
		subnet("subnet-pub-a", "10.0.0.0/20", "us-east-1a", c1), subnet("subnet-pub-b", "10.0.16.0/20", "us-east-1b", c1),
		subnet("subnet-priv-a", "10.0.128.0/20", "us-east-1a", c1), subnet("subnet-priv-b", "10.0.144.0/20", "us-east-1b", c1),
		subnet("subnet-other", "10.0.200.0/24", "us-east-1a", c2),
	}
	local := ec2types.Route{DestinationCidrBlock: aws.String("10.0.0.0/16"), GatewayId: aws.String("local"), State: ec2types.RouteStateActive}
	table := func(id string, main bool, tg []ec2types.Tag, def *ec2types.Route, subnets ...string) *ec2types.RouteTable {
		t := &ec2types.RouteTable{RouteTableId: aws.String(id), VpcId: aws.String("vpc-1"), Tags: tg, Routes: []ec2types.Route{local}}
		if main {
			t.Associations = append(t.Associations, ec2types.RouteTableAssociation{Main: aws.Bool(true), RouteTableId: aws.String(id)})
		}
		for _, s := range subnets {
			t.Associations = append(t.Associations, ec2types.RouteTableAssociation{Main: aws.Bool(false), SubnetId: aws.String(s), RouteTableId: aws.String(id)})
		}
		if def != nil {
			t.Routes = append(t.Routes, *def)
		}
		return t
	}
	to := func(gw, nat string) *ec2types.Route {
		r := &ec2types.Route{DestinationCidrBlock: aws.String("0.0.0.0/0"), State: ec2types.RouteStateActive}
		if gw != "" {
			r.GatewayId = aws.String(gw)
		} else {
			r.NatGatewayId = aws.String(nat)
		}
		return r
	}
	f.tables = []*ec2types.RouteTable{
		table("rtb-main", true, nil, nil),
		table("rtb-pub", false, tags(c1, "owned"), to("igw-1", ""), "subnet-pub-a", "subnet-pub-b"),
		table("rtb-priv-a", false, tags(c1, "owned"), to("", "nat-a"), "subnet-priv-a"),
		table("rtb-priv-b", false, tags(c1, "owned"), to("", "nat-b"), "subnet-priv-b"),
		table("rtb-other", false, tags(c2, "owned"), to("", "nat-a"), "subnet-other"),
	}
	f.igws = []ec2types.InternetGateway{{InternetGatewayId: aws.String("igw-1"),
		Attachments: []ec2types.InternetGatewayAttachment{{VpcId: aws.String("vpc-1"), State: ec2types.AttachmentStatusAttached}}}}
	f.nats = []ec2types.NatGateway{
		{NatGatewayId: aws.String("nat-a"), VpcId: aws.String("vpc-1"), SubnetId: aws.String("subnet-pub-a"), State: ec2types.NatGatewayStateAvailable},
		{NatGatewayId: aws.String("nat-b"), VpcId: aws.String("vpc-1"), SubnetId: aws.String("subnet-pub-b"), State: ec2types.NatGatewayStateAvailable},
	}
	self := perm("-1", 0, 0)
	self.UserIdGroupPairs = []ec2types.UserIdGroupPair{{GroupId: aws.String("sg-node")}}
	f.groups = []*ec2types.SecurityGroup{
		{GroupId: aws.String("sg-node"), GroupName: aws.String("c1-node"), VpcId: aws.String("vpc-1"), Tags: tags(c1, "owned"),
			IpPermissions: []ec2types.IpPermission{perm("tcp", 22, 22, "10.0.0.0/16"), perm("tcp", 30000, 32767, "0.0.0.0/0"),
				perm("icmp", -1, -1, "0.0.0.0/0"), self},
			IpPermissionsEgress: []ec2types.IpPermission{perm("-1", 0, 0, "0.0.0.0/0")}},
		// Port 6443 already has its IPv6 rule: it must be left alone.
		{GroupId: aws.String("sg-lb"), GroupName: aws.String("c1-lb"), VpcId: aws.String("vpc-1"), Tags: tags(c1, "owned"),
			IpPermissions:       []ec2types.IpPermission{perm("tcp", 6443, 6443, "0.0.0.0/0", "::/0")},
			IpPermissionsEgress: []ec2types.IpPermission{perm("-1", 0, 0, "0.0.0.0/0")}},
		{GroupId: aws.String("sg-other"), GroupName: aws.String("c2-node"), VpcId: aws.String("vpc-1"), Tags: tags(c2, "owned"),
			IpPermissions:       []ec2types.IpPermission{perm("tcp", 22, 22, "0.0.0.0/0")},
			IpPermissionsEgress: []ec2types.IpPermission{perm("-1", 0, 0, "0.0.0.0/0")}},
	}
	instance := func(id, name, typ, subnet, sg, owner string, enis ...string) {
		in := &ec2types.Instance{InstanceId: aws.String(id), InstanceType: ec2types.InstanceType(typ), SubnetId: aws.String(subnet), VpcId: aws.String("vpc-1"),
			State: &ec2types.InstanceState{Name: ec2types.InstanceStateNameRunning}, Tags: tags("Name", name, owner, "owned"),
			SecurityGroups: []ec2types.GroupIdentifier{{GroupId: aws.String(sg)}}}
		for i, e := range enis {
			in.NetworkInterfaces = append(in.NetworkInterfaces, ec2types.InstanceNetworkInterface{NetworkInterfaceId: aws.String(e),
				Attachment: &ec2types.InstanceNetworkInterfaceAttachment{DeviceIndex: aws.Int32(int32(i))}})
			f.enis = append(f.enis, &ec2types.NetworkInterface{NetworkInterfaceId: aws.String(e), SubnetId: aws.String(subnet), VpcId: aws.String("vpc-1"),
				Attachment: &ec2types.NetworkInterfaceAttachment{InstanceId: aws.String(id), DeviceIndex: aws.Int32(int32(i))}})
		}
		f.instances = append(f.instances, in)
	}
	instance("i-master-0", "c1-master-0", "m6i.xlarge", "subnet-priv-a", "sg-node", c1, "eni-m0")
	instance("i-worker-a", "c1-worker-a", "m6i.large", "subnet-priv-a", "sg-node", c1, "eni-wa", "eni-wa-2")
	instance("i-worker-b", "c1-worker-b", "m1.large", "subnet-priv-b", "sg-node", c1, "eni-wb")
	instance("i-other", "c2-worker", "m6i.large", "subnet-other", "sg-other", c2, "eni-other")

	arn := "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/c1-ext/0123456789abcdef"
	f.lbs = []*elbv2types.LoadBalancer{{LoadBalancerArn: aws.String(arn), LoadBalancerName: aws.String("c1-ext"), Type: elbv2types.LoadBalancerTypeEnumNetwork,
		Scheme: elbv2types.LoadBalancerSchemeEnumInternetFacing, IpAddressType: elbv2types.IpAddressTypeIpv4, DNSName: aws.String("c1-ext.elb.amazonaws.com"),
		VpcId: aws.String("vpc-1"), AvailabilityZones: []elbv2types.AvailabilityZone{{SubnetId: aws.String("subnet-pub-a")}, {SubnetId: aws.String("subnet-pub-b")}}}}
	f.lbTags[arn] = []elbv2types.Tag{{Key: aws.String(c1), Value: aws.String("owned")}}
	f.classic = []elbtypes.LoadBalancerDescription{{LoadBalancerName: aws.String("a0123456789"), VPCId: aws.String("vpc-1"), Scheme: aws.String("internet-facing"),
		DNSName: aws.String("a0123456789.elb.amazonaws.com"), Subnets: []string{"subnet-pub-a", "subnet-pub-b"}}}
	f.classTags["a0123456789"] = []elbtypes.Tag{{Key: aws.String(c1), Value: aws.String("owned")},
		{Key: aws.String(ServiceNameTag), Value: aws.String("openshift-ingress/router-default")}}
	return f
}

func (f *fakeCloud) clients() *Clients {
	return &Clients{Region: "us-east-1", EC2: f, ELBv2: fakeCloudELBv2{f}, ELB: fakeCloudELB{f}}
}

// fail adds a fault: the first op on resource ("" any) fails with code.
func (f *fakeCloud) fail(op, resource, code string, after bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &fault{op: op, resource: resource, code: code, after: after})
}

// lie makes the first op on resource answer success without doing anything.
func (f *fakeCloud) lie(op, resource string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &fault{op: op, resource: resource, lie: true})
}

// change runs one changing call under the lock, with its faults.
func (f *fakeCloud) change(op, resource string, do func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var flt *fault
	for _, x := range f.faults {
		if !x.used && x.op == op && (x.resource == "" || x.resource == resource) {
			flt, x.used = x, true
			break
		}
	}
	switch {
	case flt != nil && flt.lie:
		return nil
	case flt != nil && !flt.after:
		return apiError(flt.code, "injected before %s %s", op, resource)
	}
	if err := do(); err != nil {
		return err
	}
	f.changes = append(f.changes, op+" "+resource)
	if flt != nil {
		return apiError(flt.code, "injected after %s %s", op, resource)
	}
	return nil
}

func (f *fakeCloud) newID(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s-%04d", prefix, f.seq)
}

// matches applies EC2 filters; a filter the fake does not know panics, so
// a test cannot pass by ignoring one.
func matches(filters []ec2types.Filter, attr func(name string) ([]string, bool)) bool {
	for _, flt := range filters {
		have, known := attr(aws.ToString(flt.Name))
		if !known {
			panic("fakeCloud: unknown filter " + aws.ToString(flt.Name))
		}
		if !slices.ContainsFunc(flt.Values, func(v string) bool { return slices.Contains(have, v) }) {
			return false
		}
	}
	return true
}

func tagAttr(tg []ec2types.Tag, name string) ([]string, bool) {
	switch {
	case name == "tag-key":
		var keys []string
		for _, t := range tg {
			keys = append(keys, aws.ToString(t.Key))
		}
		return keys, true
	case strings.HasPrefix(name, "tag:"):
		v := tagValue(tg, strings.TrimPrefix(name, "tag:"))
		if !hasTag(tg, strings.TrimPrefix(name, "tag:")) {
			return nil, true
		}
		return []string{v}, true
	}
	return nil, false
}

// ---- reads

func (f *fakeCloud) DescribeVpcs(_ context.Context, in *ec2.DescribeVpcsInput, _ ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeVpcsOutput{}
	for _, v := range f.vpcs {
		if len(in.VpcIds) > 0 && !slices.Contains(in.VpcIds, aws.ToString(v.VpcId)) {
			continue
		}
		if matches(in.Filters, func(n string) ([]string, bool) { return tagAttr(v.Tags, n) }) {
			out.Vpcs = append(out.Vpcs, clone(*v))
		}
	}
	if len(in.VpcIds) > len(out.Vpcs) {
		return nil, apiError("InvalidVpcID.NotFound", "the vpc ID %v does not exist", in.VpcIds)
	}
	return out, nil
}

func (f *fakeCloud) DescribeSubnets(_ context.Context, in *ec2.DescribeSubnetsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeSubnetsOutput{}
	for _, s := range f.subnets {
		if len(in.SubnetIds) > 0 && !slices.Contains(in.SubnetIds, aws.ToString(s.SubnetId)) {
			continue
		}
		if matches(in.Filters, func(n string) ([]string, bool) {
			if n == "vpc-id" {
				return []string{aws.ToString(s.VpcId)}, true
			}
			return tagAttr(s.Tags, n)
		}) {
			out.Subnets = append(out.Subnets, clone(*s))
		}
	}
	return out, nil
}

func (f *fakeCloud) DescribeRouteTables(_ context.Context, in *ec2.DescribeRouteTablesInput, _ ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeRouteTablesOutput{}
	for _, t := range f.tables {
		if matches(in.Filters, func(n string) ([]string, bool) {
			if n == "vpc-id" {
				return []string{aws.ToString(t.VpcId)}, true
			}
			return nil, false
		}) {
			out.RouteTables = append(out.RouteTables, clone(*t))
		}
	}
	return out, nil
}

func (f *fakeCloud) DescribeInternetGateways(_ context.Context, in *ec2.DescribeInternetGatewaysInput, _ ...func(*ec2.Options)) (*ec2.DescribeInternetGatewaysOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeInternetGatewaysOutput{}
	for _, g := range f.igws {
		if matches(in.Filters, func(n string) ([]string, bool) {
			if n == "attachment.vpc-id" {
				var vpcs []string
				for _, a := range g.Attachments {
					vpcs = append(vpcs, aws.ToString(a.VpcId))
				}
				return vpcs, true
			}
			return nil, false
		}) {
			out.InternetGateways = append(out.InternetGateways, clone(g))
		}
	}
	return out, nil
}

func (f *fakeCloud) DescribeEgressOnlyInternetGateways(_ context.Context, in *ec2.DescribeEgressOnlyInternetGatewaysInput, _ ...func(*ec2.Options)) (*ec2.DescribeEgressOnlyInternetGatewaysOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeEgressOnlyInternetGatewaysOutput{}
	for _, id := range in.EgressOnlyInternetGatewayIds {
		if !slices.ContainsFunc(f.eigws, func(g *ec2types.EgressOnlyInternetGateway) bool {
			return aws.ToString(g.EgressOnlyInternetGatewayId) == id
		}) {
			return nil, apiError("InvalidEgressOnlyInternetGatewayId.NotFound", "%s does not exist", id)
		}
	}
	for _, g := range f.eigws {
		if len(in.EgressOnlyInternetGatewayIds) > 0 && !slices.Contains(in.EgressOnlyInternetGatewayIds, aws.ToString(g.EgressOnlyInternetGatewayId)) {
			continue
		}
		if matches(in.Filters, func(n string) ([]string, bool) { return tagAttr(g.Tags, n) }) {
			out.EgressOnlyInternetGateways = append(out.EgressOnlyInternetGateways, clone(*g))
		}
	}
	return out, nil
}

func (f *fakeCloud) DescribeNatGateways(_ context.Context, in *ec2.DescribeNatGatewaysInput, _ ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeNatGatewaysOutput{}
	for _, g := range f.nats {
		if matches(in.Filter, func(n string) ([]string, bool) {
			if n == "vpc-id" {
				return []string{aws.ToString(g.VpcId)}, true
			}
			return nil, false
		}) {
			out.NatGateways = append(out.NatGateways, clone(g))
		}
	}
	return out, nil
}

func (f *fakeCloud) DescribeSecurityGroups(_ context.Context, in *ec2.DescribeSecurityGroupsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeSecurityGroupsOutput{}
	for _, g := range f.groups {
		if matches(in.Filters, func(n string) ([]string, bool) {
			if n == "vpc-id" {
				return []string{aws.ToString(g.VpcId)}, true
			}
			return nil, false
		}) {
			out.SecurityGroups = append(out.SecurityGroups, clone(*g))
		}
	}
	return out, nil
}

func (f *fakeCloud) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var found []ec2types.Instance
	for _, i := range f.instances {
		id := aws.ToString(i.InstanceId)
		if len(in.InstanceIds) > 0 && !slices.Contains(in.InstanceIds, id) {
			continue
		}
		if matches(in.Filters, func(n string) ([]string, bool) {
			switch n {
			case "vpc-id":
				return []string{aws.ToString(i.VpcId)}, true
			case "instance-id":
				return []string{id}, true
			}
			return nil, false
		}) {
			found = append(found, clone(*i))
		}
	}
	if len(in.InstanceIds) > len(found) {
		return nil, apiError("InvalidInstanceID.NotFound", "the instance IDs %v do not all exist", in.InstanceIds)
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: found}}}, nil
}

func (f *fakeCloud) DescribeNetworkInterfaces(_ context.Context, in *ec2.DescribeNetworkInterfacesInput, _ ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeNetworkInterfacesOutput{}
	for _, e := range f.enis {
		id := aws.ToString(e.NetworkInterfaceId)
		if len(in.NetworkInterfaceIds) > 0 && !slices.Contains(in.NetworkInterfaceIds, id) {
			continue
		}
		if matches(in.Filters, func(n string) ([]string, bool) {
			switch n {
			case "vpc-id":
				return []string{aws.ToString(e.VpcId)}, true
			case "network-interface-id":
				return []string{id}, true
			}
			return nil, false
		}) {
			out.NetworkInterfaces = append(out.NetworkInterfaces, clone(*e))
		}
	}
	if len(in.NetworkInterfaceIds) > len(out.NetworkInterfaces) {
		return nil, apiError("InvalidNetworkInterfaceID.NotFound", "%v do not all exist", in.NetworkInterfaceIds)
	}
	return out, nil
}

func (f *fakeCloud) DescribeInstanceTypes(_ context.Context, in *ec2.DescribeInstanceTypesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	out := &ec2.DescribeInstanceTypesOutput{}
	for _, t := range in.InstanceTypes {
		out.InstanceTypes = append(out.InstanceTypes, ec2types.InstanceTypeInfo{InstanceType: t,
			NetworkInfo: &ec2types.NetworkInfo{Ipv6Supported: aws.Bool(f.ipv6Types[string(t)])}})
	}
	return out, nil
}

// ---- lookups (the lock is held)

func (f *fakeCloud) vpc(id string) *ec2types.Vpc {
	for _, v := range f.vpcs {
		if aws.ToString(v.VpcId) == id {
			return v
		}
	}
	return nil
}

func (f *fakeCloud) subnet(id string) *ec2types.Subnet {
	for _, s := range f.subnets {
		if aws.ToString(s.SubnetId) == id {
			return s
		}
	}
	return nil
}

func (f *fakeCloud) eni(id string) *ec2types.NetworkInterface {
	for _, e := range f.enis {
		if aws.ToString(e.NetworkInterfaceId) == id {
			return e
		}
	}
	return nil
}

func (f *fakeCloud) instance(id string) *ec2types.Instance {
	for _, i := range f.instances {
		if aws.ToString(i.InstanceId) == id {
			return i
		}
	}
	return nil
}

func (f *fakeCloud) group(id string) *ec2types.SecurityGroup {
	for _, g := range f.groups {
		if aws.ToString(g.GroupId) == id {
			return g
		}
	}
	return nil
}

// fakeVPCBlock is the VPC's associated IPv6 block, or "".
func fakeVPCBlock(v *ec2types.Vpc) string {
	for _, a := range v.Ipv6CidrBlockAssociationSet {
		if a.Ipv6CidrBlockState.State == ec2types.VpcCidrBlockStateCodeAssociated {
			return aws.ToString(a.Ipv6CidrBlock)
		}
	}
	return ""
}

// fakeSubnetBlock is the subnet's associated IPv6 block, or "".
func fakeSubnetBlock(s *ec2types.Subnet) string {
	for _, a := range s.Ipv6CidrBlockAssociationSet {
		if a.Ipv6CidrBlockState.State == ec2types.SubnetCidrBlockStateCodeAssociated {
			return aws.ToString(a.Ipv6CidrBlock)
		}
	}
	return ""
}

// ---- changes

func (f *fakeCloud) AssociateVpcCidrBlock(_ context.Context, in *ec2.AssociateVpcCidrBlockInput, _ ...func(*ec2.Options)) (*ec2.AssociateVpcCidrBlockOutput, error) {
	id := aws.ToString(in.VpcId)
	out := &ec2.AssociateVpcCidrBlockOutput{VpcId: in.VpcId}
	return out, f.change("AssociateVpcCidrBlock", id, func() error {
		v := f.vpc(id)
		if v == nil {
			return apiError("InvalidVpcID.NotFound", "%s", id)
		}
		if fakeVPCBlock(v) != "" {
			return apiError("CidrLimitExceeded", "the fake allows one IPv6 block per VPC")
		}
		// A new /56 every time, as Amazon may give after a rollback.
		f.blocks++
		block := fmt.Sprintf("2600:1f18:4bd:%x00::/56", f.blocks)
		assoc := ec2types.VpcIpv6CidrBlockAssociation{AssociationId: aws.String(f.newID("vpc-cidr-assoc")), Ipv6CidrBlock: aws.String(block),
			Ipv6CidrBlockState: &ec2types.VpcCidrBlockState{State: ec2types.VpcCidrBlockStateCodeAssociated}}
		v.Ipv6CidrBlockAssociationSet = append(v.Ipv6CidrBlockAssociationSet, assoc)
		// AWS answers while the block is still being associated, often
		// without the block: apply has to wait for it.
		out.Ipv6CidrBlockAssociation = &ec2types.VpcIpv6CidrBlockAssociation{AssociationId: assoc.AssociationId,
			Ipv6CidrBlockState: &ec2types.VpcCidrBlockState{State: ec2types.VpcCidrBlockStateCodeAssociating}}
		return nil
	})
}

func (f *fakeCloud) DisassociateVpcCidrBlock(_ context.Context, in *ec2.DisassociateVpcCidrBlockInput, _ ...func(*ec2.Options)) (*ec2.DisassociateVpcCidrBlockOutput, error) {
	id := aws.ToString(in.AssociationId)
	return &ec2.DisassociateVpcCidrBlockOutput{}, f.change("DisassociateVpcCidrBlock", id, func() error {
		for _, v := range f.vpcs {
			for i, a := range v.Ipv6CidrBlockAssociationSet {
				if aws.ToString(a.AssociationId) != id || a.Ipv6CidrBlockState.State != ec2types.VpcCidrBlockStateCodeAssociated {
					continue
				}
				for _, s := range f.subnets {
					if aws.ToString(s.VpcId) == aws.ToString(v.VpcId) && fakeSubnetBlock(s) != "" {
						return apiError("InvalidCidrBlock.InUse", "subnet %s still has an IPv6 block of %s", aws.ToString(s.SubnetId), aws.ToString(a.Ipv6CidrBlock))
					}
				}
				v.Ipv6CidrBlockAssociationSet[i].Ipv6CidrBlockState = &ec2types.VpcCidrBlockState{State: ec2types.VpcCidrBlockStateCodeDisassociated}
				return nil
			}
		}
		return apiError("InvalidAssociationID.NotFound", "%s", id)
	})
}

func (f *fakeCloud) AssociateSubnetCidrBlock(_ context.Context, in *ec2.AssociateSubnetCidrBlockInput, _ ...func(*ec2.Options)) (*ec2.AssociateSubnetCidrBlockOutput, error) {
	id, block := aws.ToString(in.SubnetId), aws.ToString(in.Ipv6CidrBlock)
	out := &ec2.AssociateSubnetCidrBlockOutput{SubnetId: in.SubnetId}
	return out, f.change("AssociateSubnetCidrBlock", id, func() error {
		s := f.subnet(id)
		if s == nil {
			return apiError("InvalidSubnetID.NotFound", "%s", id)
		}
		if fakeSubnetBlock(s) != "" {
			return apiError("InvalidParameterValue", "subnet %s already has an IPv6 block", id)
		}
		b, err := netip.ParsePrefix(block)
		vb, verr := netip.ParsePrefix(fakeVPCBlock(f.vpc(aws.ToString(s.VpcId))))
		if err != nil || verr != nil || b.Bits() != 64 || !vb.Contains(b.Addr()) {
			return apiError("InvalidSubnet.Range", "%s is not a /64 of the VPC's IPv6 block", block)
		}
		for _, o := range f.subnets {
			if ob := fakeSubnetBlock(o); ob == b.String() {
				return apiError("InvalidSubnet.Conflict", "%s is used by %s", block, aws.ToString(o.SubnetId))
			}
		}
		assoc := ec2types.SubnetIpv6CidrBlockAssociation{AssociationId: aws.String(f.newID("subnet-cidr-assoc")), Ipv6CidrBlock: aws.String(b.String()),
			Ipv6CidrBlockState: &ec2types.SubnetCidrBlockState{State: ec2types.SubnetCidrBlockStateCodeAssociated}}
		s.Ipv6CidrBlockAssociationSet = append(s.Ipv6CidrBlockAssociationSet, assoc)
		out.Ipv6CidrBlockAssociation = &assoc
		return nil
	})
}

func (f *fakeCloud) DisassociateSubnetCidrBlock(_ context.Context, in *ec2.DisassociateSubnetCidrBlockInput, _ ...func(*ec2.Options)) (*ec2.DisassociateSubnetCidrBlockOutput, error) {
	id := aws.ToString(in.AssociationId)
	return &ec2.DisassociateSubnetCidrBlockOutput{}, f.change("DisassociateSubnetCidrBlock", id, func() error {
		for _, s := range f.subnets {
			for i, a := range s.Ipv6CidrBlockAssociationSet {
				if aws.ToString(a.AssociationId) != id || a.Ipv6CidrBlockState.State != ec2types.SubnetCidrBlockStateCodeAssociated {
					continue
				}
				for _, e := range f.enis {
					if aws.ToString(e.SubnetId) == aws.ToString(s.SubnetId) && len(e.Ipv6Addresses) > 0 {
						return apiError("InvalidParameterValue", "network interface %s in %s still has IPv6 addresses", aws.ToString(e.NetworkInterfaceId), aws.ToString(s.SubnetId))
					}
				}
				if aws.ToBool(s.AssignIpv6AddressOnCreation) {
					return apiError("InvalidParameterValue", "%s still assigns IPv6 addresses on creation", aws.ToString(s.SubnetId))
				}
				s.Ipv6CidrBlockAssociationSet[i].Ipv6CidrBlockState = &ec2types.SubnetCidrBlockState{State: ec2types.SubnetCidrBlockStateCodeDisassociated}
				return nil
			}
		}
		return apiError("InvalidAssociationID.NotFound", "%s", id)
	})
}

func (f *fakeCloud) ModifySubnetAttribute(_ context.Context, in *ec2.ModifySubnetAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifySubnetAttributeOutput, error) {
	id := aws.ToString(in.SubnetId)
	return &ec2.ModifySubnetAttributeOutput{}, f.change("ModifySubnetAttribute", id, func() error {
		s := f.subnet(id)
		if s == nil {
			return apiError("InvalidSubnetID.NotFound", "%s", id)
		}
		on := aws.ToBool(in.AssignIpv6AddressOnCreation.Value)
		if on && fakeSubnetBlock(s) == "" {
			return apiError("InvalidParameterValue", "%s has no IPv6 block", id)
		}
		s.AssignIpv6AddressOnCreation = aws.Bool(on)
		return nil
	})
}

func (f *fakeCloud) CreateEgressOnlyInternetGateway(_ context.Context, in *ec2.CreateEgressOnlyInternetGatewayInput, _ ...func(*ec2.Options)) (*ec2.CreateEgressOnlyInternetGatewayOutput, error) {
	vpc := aws.ToString(in.VpcId)
	out := &ec2.CreateEgressOnlyInternetGatewayOutput{}
	return out, f.change("CreateEgressOnlyInternetGateway", vpc, func() error {
		if f.vpc(vpc) == nil {
			return apiError("InvalidVpcID.NotFound", "%s", vpc)
		}
		g := &ec2types.EgressOnlyInternetGateway{EgressOnlyInternetGatewayId: aws.String(f.newID("eigw")),
			Attachments: []ec2types.InternetGatewayAttachment{{VpcId: aws.String(vpc), State: ec2types.AttachmentStatusAttached}}}
		for _, ts := range in.TagSpecifications {
			g.Tags = append(g.Tags, ts.Tags...)
		}
		f.eigws = append(f.eigws, g)
		c := clone(*g)
		out.EgressOnlyInternetGateway = &c
		return nil
	})
}

func (f *fakeCloud) DeleteEgressOnlyInternetGateway(_ context.Context, in *ec2.DeleteEgressOnlyInternetGatewayInput, _ ...func(*ec2.Options)) (*ec2.DeleteEgressOnlyInternetGatewayOutput, error) {
	id := aws.ToString(in.EgressOnlyInternetGatewayId)
	return &ec2.DeleteEgressOnlyInternetGatewayOutput{}, f.change("DeleteEgressOnlyInternetGateway", id, func() error {
		i := slices.IndexFunc(f.eigws, func(g *ec2types.EgressOnlyInternetGateway) bool {
			return aws.ToString(g.EgressOnlyInternetGatewayId) == id
		})
		if i < 0 {
			return apiError("InvalidEgressOnlyInternetGatewayId.NotFound", "%s", id)
		}
		f.eigws = slices.Delete(f.eigws, i, i+1)
		// Routes to it stay, as blackholes.
		for _, t := range f.tables {
			for j, r := range t.Routes {
				if aws.ToString(r.EgressOnlyInternetGatewayId) == id {
					t.Routes[j].State = ec2types.RouteStateBlackhole
				}
			}
		}
		return nil
	})
}

func (f *fakeCloud) CreateRoute(_ context.Context, in *ec2.CreateRouteInput, _ ...func(*ec2.Options)) (*ec2.CreateRouteOutput, error) {
	id := aws.ToString(in.RouteTableId)
	return &ec2.CreateRouteOutput{Return: aws.Bool(true)}, f.change("CreateRoute", id, func() error {
		i := slices.IndexFunc(f.tables, func(t *ec2types.RouteTable) bool { return aws.ToString(t.RouteTableId) == id })
		if i < 0 {
			return apiError("InvalidRouteTableID.NotFound", "%s", id)
		}
		t := f.tables[i]
		dest := aws.ToString(in.DestinationIpv6CidrBlock)
		if slices.ContainsFunc(t.Routes, func(r ec2types.Route) bool { return aws.ToString(r.DestinationIpv6CidrBlock) == dest }) {
			return apiError("RouteAlreadyExists", "%s already has a route to %s", id, dest)
		}
		r := ec2types.Route{DestinationIpv6CidrBlock: aws.String(dest), State: ec2types.RouteStateActive}
		switch gw, eigw := aws.ToString(in.GatewayId), aws.ToString(in.EgressOnlyInternetGatewayId); {
		case gw != "" && slices.ContainsFunc(f.igws, func(g ec2types.InternetGateway) bool { return aws.ToString(g.InternetGatewayId) == gw }):
			r.GatewayId = aws.String(gw)
		case eigw != "" && slices.ContainsFunc(f.eigws, func(g *ec2types.EgressOnlyInternetGateway) bool {
			return aws.ToString(g.EgressOnlyInternetGatewayId) == eigw
		}):
			r.EgressOnlyInternetGatewayId = aws.String(eigw)
		default:
			return apiError("InvalidGatewayID.NotFound", "no gateway %q%q", gw, eigw)
		}
		t.Routes = append(t.Routes, r)
		return nil
	})
}

func (f *fakeCloud) DeleteRoute(_ context.Context, in *ec2.DeleteRouteInput, _ ...func(*ec2.Options)) (*ec2.DeleteRouteOutput, error) {
	id := aws.ToString(in.RouteTableId)
	return &ec2.DeleteRouteOutput{}, f.change("DeleteRoute", id, func() error {
		for _, t := range f.tables {
			if aws.ToString(t.RouteTableId) != id {
				continue
			}
			i := slices.IndexFunc(t.Routes, func(r ec2types.Route) bool {
				return aws.ToString(r.DestinationIpv6CidrBlock) == aws.ToString(in.DestinationIpv6CidrBlock)
			})
			if i < 0 {
				break
			}
			t.Routes = slices.Delete(t.Routes, i, i+1)
			return nil
		}
		return apiError("InvalidRoute.NotFound", "no route to %s in %s", aws.ToString(in.DestinationIpv6CidrBlock), id)
	})
}

// permKey is a permission's protocol and ports, as EC2 groups ranges.
func permKey(p ec2types.IpPermission) string {
	return fmt.Sprintf("%s/%d/%d", aws.ToString(p.IpProtocol), portOr(p.FromPort), portOr(p.ToPort))
}

// authorize adds the permissions' IPv6 ranges, all or none: EC2 refuses
// the whole call with InvalidPermission.Duplicate when one exists.
func authorize(perms *[]ec2types.IpPermission, add []ec2types.IpPermission) error {
	for _, a := range add {
		for _, r := range a.Ipv6Ranges {
			for _, p := range *perms {
				if permKey(p) == permKey(a) && slices.ContainsFunc(p.Ipv6Ranges, func(x ec2types.Ipv6Range) bool { return aws.ToString(x.CidrIpv6) == aws.ToString(r.CidrIpv6) }) {
					return apiError("InvalidPermission.Duplicate", "%s %s already exists", permKey(a), aws.ToString(r.CidrIpv6))
				}
			}
		}
	}
	for _, a := range add {
		for _, r := range a.Ipv6Ranges {
			i := slices.IndexFunc(*perms, func(p ec2types.IpPermission) bool { return permKey(p) == permKey(a) })
			if i < 0 {
				p := a
				p.IpRanges, p.UserIdGroupPairs, p.Ipv6Ranges = nil, nil, nil
				*perms = append(*perms, p)
				i = len(*perms) - 1
			}
			(*perms)[i].Ipv6Ranges = append((*perms)[i].Ipv6Ranges, r)
		}
	}
	return nil
}

func revoke(perms *[]ec2types.IpPermission, remove []ec2types.IpPermission) error {
	for _, a := range remove {
		for _, r := range a.Ipv6Ranges {
			i := slices.IndexFunc(*perms, func(p ec2types.IpPermission) bool { return permKey(p) == permKey(a) })
			if i < 0 {
				return apiError("InvalidPermission.NotFound", "no rule %s", permKey(a))
			}
			p := &(*perms)[i]
			j := slices.IndexFunc(p.Ipv6Ranges, func(x ec2types.Ipv6Range) bool { return aws.ToString(x.CidrIpv6) == aws.ToString(r.CidrIpv6) })
			if j < 0 {
				return apiError("InvalidPermission.NotFound", "no rule %s %s", permKey(a), aws.ToString(r.CidrIpv6))
			}
			p.Ipv6Ranges = slices.Delete(p.Ipv6Ranges, j, j+1)
			if len(p.Ipv6Ranges)+len(p.IpRanges)+len(p.UserIdGroupPairs)+len(p.PrefixListIds) == 0 {
				*perms = slices.Delete(*perms, i, i+1)
			}
		}
	}
	return nil
}

func (f *fakeCloud) AuthorizeSecurityGroupIngress(_ context.Context, in *ec2.AuthorizeSecurityGroupIngressInput, _ ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
	id := aws.ToString(in.GroupId)
	return &ec2.AuthorizeSecurityGroupIngressOutput{}, f.change("AuthorizeSecurityGroupIngress", id, func() error {
		g := f.group(id)
		if g == nil {
			return apiError("InvalidGroup.NotFound", "%s", id)
		}
		return authorize(&g.IpPermissions, in.IpPermissions)
	})
}

func (f *fakeCloud) AuthorizeSecurityGroupEgress(_ context.Context, in *ec2.AuthorizeSecurityGroupEgressInput, _ ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupEgressOutput, error) {
	id := aws.ToString(in.GroupId)
	return &ec2.AuthorizeSecurityGroupEgressOutput{}, f.change("AuthorizeSecurityGroupEgress", id, func() error {
		g := f.group(id)
		if g == nil {
			return apiError("InvalidGroup.NotFound", "%s", id)
		}
		return authorize(&g.IpPermissionsEgress, in.IpPermissions)
	})
}

func (f *fakeCloud) RevokeSecurityGroupIngress(_ context.Context, in *ec2.RevokeSecurityGroupIngressInput, _ ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupIngressOutput, error) {
	id := aws.ToString(in.GroupId)
	return &ec2.RevokeSecurityGroupIngressOutput{}, f.change("RevokeSecurityGroupIngress", id, func() error {
		g := f.group(id)
		if g == nil {
			return apiError("InvalidGroup.NotFound", "%s", id)
		}
		return revoke(&g.IpPermissions, in.IpPermissions)
	})
}

func (f *fakeCloud) RevokeSecurityGroupEgress(_ context.Context, in *ec2.RevokeSecurityGroupEgressInput, _ ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupEgressOutput, error) {
	id := aws.ToString(in.GroupId)
	return &ec2.RevokeSecurityGroupEgressOutput{}, f.change("RevokeSecurityGroupEgress", id, func() error {
		g := f.group(id)
		if g == nil {
			return apiError("InvalidGroup.NotFound", "%s", id)
		}
		return revoke(&g.IpPermissionsEgress, in.IpPermissions)
	})
}

func (f *fakeCloud) AssignIpv6Addresses(_ context.Context, in *ec2.AssignIpv6AddressesInput, _ ...func(*ec2.Options)) (*ec2.AssignIpv6AddressesOutput, error) {
	id := aws.ToString(in.NetworkInterfaceId)
	out := &ec2.AssignIpv6AddressesOutput{NetworkInterfaceId: in.NetworkInterfaceId}
	return out, f.change("AssignIpv6Addresses", id, func() error {
		e := f.eni(id)
		if e == nil {
			return apiError("InvalidNetworkInterfaceID.NotFound", "%s", id)
		}
		if e.Attachment != nil {
			if in := f.instance(aws.ToString(e.Attachment.InstanceId)); in != nil && !f.ipv6Types[string(in.InstanceType)] {
				return apiError("InvalidParameterValue", "instance type %s does not support IPv6", in.InstanceType)
			}
		}
		block, err := netip.ParsePrefix(fakeSubnetBlock(f.subnet(aws.ToString(e.SubnetId))))
		if err != nil {
			return apiError("InvalidParameterValue", "subnet %s has no IPv6 block", aws.ToString(e.SubnetId))
		}
		for range aws.ToInt32(in.Ipv6AddressCount) {
			f.seq++
			b := block.Addr().As16()
			b[14], b[15] = byte(f.seq>>8), byte(f.seq)
			a := netip.AddrFrom16(b).String()
			e.Ipv6Addresses = append(e.Ipv6Addresses, ec2types.NetworkInterfaceIpv6Address{Ipv6Address: aws.String(a)})
			out.AssignedIpv6Addresses = append(out.AssignedIpv6Addresses, a)
		}
		return nil
	})
}

func (f *fakeCloud) UnassignIpv6Addresses(_ context.Context, in *ec2.UnassignIpv6AddressesInput, _ ...func(*ec2.Options)) (*ec2.UnassignIpv6AddressesOutput, error) {
	id := aws.ToString(in.NetworkInterfaceId)
	return &ec2.UnassignIpv6AddressesOutput{}, f.change("UnassignIpv6Addresses", id, func() error {
		e := f.eni(id)
		if e == nil {
			return apiError("InvalidNetworkInterfaceID.NotFound", "%s", id)
		}
		for _, a := range in.Ipv6Addresses {
			i := slices.IndexFunc(e.Ipv6Addresses, func(x ec2types.NetworkInterfaceIpv6Address) bool { return aws.ToString(x.Ipv6Address) == a })
			if i < 0 {
				return apiError("InvalidParameterValue", "%s is not assigned to %s", a, id)
			}
			e.Ipv6Addresses = slices.Delete(e.Ipv6Addresses, i, i+1)
		}
		return nil
	})
}

func (f *fakeCloud) setState(op string, ids []string, from, to ec2types.InstanceStateName) error {
	for _, id := range ids {
		if err := f.change(op, id, func() error {
			in := f.instance(id)
			if in == nil {
				return apiError("InvalidInstanceID.NotFound", "%s", id)
			}
			if in.State.Name != from && in.State.Name != to {
				return apiError("IncorrectInstanceState", "%s is %s", id, in.State.Name)
			}
			in.State = &ec2types.InstanceState{Name: to}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeCloud) StopInstances(_ context.Context, in *ec2.StopInstancesInput, _ ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	return &ec2.StopInstancesOutput{}, f.setState("StopInstances", in.InstanceIds, ec2types.InstanceStateNameRunning, ec2types.InstanceStateNameStopped)
}

func (f *fakeCloud) StartInstances(_ context.Context, in *ec2.StartInstancesInput, _ ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	return &ec2.StartInstancesOutput{}, f.setState("StartInstances", in.InstanceIds, ec2types.InstanceStateNameStopped, ec2types.InstanceStateNameRunning)
}

func (f *fakeCloud) ModifyInstanceAttribute(_ context.Context, in *ec2.ModifyInstanceAttributeInput, _ ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error) {
	id := aws.ToString(in.InstanceId)
	return &ec2.ModifyInstanceAttributeOutput{}, f.change("ModifyInstanceAttribute", id, func() error {
		i := f.instance(id)
		if i == nil {
			return apiError("InvalidInstanceID.NotFound", "%s", id)
		}
		if i.State.Name != ec2types.InstanceStateNameStopped {
			return apiError("IncorrectInstanceState", "%s is %s, not stopped", id, i.State.Name)
		}
		i.InstanceType = ec2types.InstanceType(aws.ToString(in.InstanceType.Value))
		return nil
	})
}

// ---- load balancers

type fakeCloudELBv2 struct{ f *fakeCloud }

func (l fakeCloudELBv2) DescribeLoadBalancers(context.Context, *elbv2.DescribeLoadBalancersInput, ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancersOutput, error) {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	out := &elbv2.DescribeLoadBalancersOutput{}
	for _, lb := range l.f.lbs {
		out.LoadBalancers = append(out.LoadBalancers, clone(*lb))
	}
	return out, nil
}

func (l fakeCloudELBv2) DescribeTags(_ context.Context, in *elbv2.DescribeTagsInput, _ ...func(*elbv2.Options)) (*elbv2.DescribeTagsOutput, error) {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	out := &elbv2.DescribeTagsOutput{}
	for _, arn := range in.ResourceArns {
		out.TagDescriptions = append(out.TagDescriptions, elbv2types.TagDescription{ResourceArn: aws.String(arn), Tags: clone(l.f.lbTags[arn])})
	}
	return out, nil
}

func (l fakeCloudELBv2) SetIpAddressType(_ context.Context, in *elbv2.SetIpAddressTypeInput, _ ...func(*elbv2.Options)) (*elbv2.SetIpAddressTypeOutput, error) {
	arn := aws.ToString(in.LoadBalancerArn)
	return &elbv2.SetIpAddressTypeOutput{IpAddressType: in.IpAddressType}, l.f.change("SetIpAddressType", arn, func() error {
		for _, lb := range l.f.lbs {
			if aws.ToString(lb.LoadBalancerArn) != arn {
				continue
			}
			if in.IpAddressType == elbv2types.IpAddressTypeDualstack {
				for _, az := range lb.AvailabilityZones {
					if fakeSubnetBlock(l.f.subnet(aws.ToString(az.SubnetId))) == "" {
						return apiError("InvalidConfigurationRequest", "subnet %s has no IPv6 block", aws.ToString(az.SubnetId))
					}
				}
			}
			lb.IpAddressType = in.IpAddressType
			return nil
		}
		return apiError("LoadBalancerNotFound", "%s", arn)
	})
}

type fakeCloudELB struct{ f *fakeCloud }

func (l fakeCloudELB) DescribeLoadBalancers(context.Context, *elb.DescribeLoadBalancersInput, ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error) {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	return &elb.DescribeLoadBalancersOutput{LoadBalancerDescriptions: clone(l.f.classic)}, nil
}

func (l fakeCloudELB) DescribeTags(_ context.Context, in *elb.DescribeTagsInput, _ ...func(*elb.Options)) (*elb.DescribeTagsOutput, error) {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	out := &elb.DescribeTagsOutput{}
	for _, n := range in.LoadBalancerNames {
		out.TagDescriptions = append(out.TagDescriptions, elbtypes.TagDescription{LoadBalancerName: aws.String(n), Tags: clone(l.f.classTags[n])})
	}
	return out, nil
}

// ---- what a test compares

// state is everything apply may change, one sorted line per fact: the
// VPC's and subnets' associated IPv6 blocks (disassociated ones stay listed
// in AWS, as here; they are not state), AssignIpv6AddressOnCreation, every
// route (with its state), every security group rule, every ENI's IPv6
// addresses, the egress-only gateways, instance types and states, and load
// balancers' address types.
func (f *fakeCloud) state() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, v := range f.vpcs {
		add("vpc %s ipv6 %q", aws.ToString(v.VpcId), fakeVPCBlock(v))
	}
	for _, s := range f.subnets {
		add("subnet %s ipv6 %q assignIpv6AddressOnCreation=%t", aws.ToString(s.SubnetId), fakeSubnetBlock(s), aws.ToBool(s.AssignIpv6AddressOnCreation))
	}
	for _, t := range f.tables {
		for _, r := range t.Routes {
			add("route %s %s%s -> %s (%s)", aws.ToString(t.RouteTableId), aws.ToString(r.DestinationCidrBlock), aws.ToString(r.DestinationIpv6CidrBlock),
				firstNonEmpty(aws.ToString(r.GatewayId), aws.ToString(r.NatGatewayId), aws.ToString(r.EgressOnlyInternetGatewayId)), r.State)
		}
	}
	for _, g := range f.groups {
		for dir, perms := range map[string][]ec2types.IpPermission{"ingress": g.IpPermissions, "egress": g.IpPermissionsEgress} {
			for _, p := range perms {
				for _, r := range p.IpRanges {
					add("sg %s %s %s %s", aws.ToString(g.GroupId), dir, permKey(p), aws.ToString(r.CidrIp))
				}
				for _, r := range p.Ipv6Ranges {
					add("sg %s %s %s %s", aws.ToString(g.GroupId), dir, permKey(p), aws.ToString(r.CidrIpv6))
				}
				for _, r := range p.UserIdGroupPairs {
					add("sg %s %s %s %s", aws.ToString(g.GroupId), dir, permKey(p), aws.ToString(r.GroupId))
				}
			}
		}
	}
	for _, e := range f.enis {
		var addrs []string
		for _, a := range e.Ipv6Addresses {
			addrs = append(addrs, aws.ToString(a.Ipv6Address))
		}
		sort.Strings(addrs)
		add("eni %s ipv6 %v", aws.ToString(e.NetworkInterfaceId), addrs)
	}
	for _, g := range f.eigws {
		var kv []string
		for _, t := range g.Tags {
			kv = append(kv, aws.ToString(t.Key)+"="+aws.ToString(t.Value))
		}
		add("eigw %s attached to %s tags %s", aws.ToString(g.EgressOnlyInternetGatewayId), aws.ToString(g.Attachments[0].VpcId), strings.Join(kv, ","))
	}
	for _, i := range f.instances {
		add("instance %s %s %s", aws.ToString(i.InstanceId), i.InstanceType, i.State.Name)
	}
	for _, lb := range f.lbs {
		add("lb %s %s", aws.ToString(lb.LoadBalancerName), lb.IpAddressType)
	}
	for _, a := range f.acls {
		for _, e := range a.Entries {
			x := aclEntry(e)
			add("acl %s %s %d %s %s %s%s %d-%d icmp %d/%d", aws.ToString(a.NetworkAclId), x.direction(), x.Number, x.Action, x.Protocol, x.CIDR, x.IPv6CIDR, x.FromPort, x.ToPort, x.ICMPType, x.ICMPCode)
		}
	}
	sort.Strings(out)
	return out
}

// diff is the lines only in a (-) and only in b (+).
func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, "- "+x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, "+ "+x)
		}
	}
	return out
}

// changed are the successful changing calls so far.
func (f *fakeCloud) changed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes)
}
