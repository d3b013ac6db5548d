package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// awsPlanJSON mirrors the stable fields of `aws plan -o json` and `aws apply -o json`.
type awsPlanJSON struct {
	Cluster struct {
		InfraID string `json:"infraID"`
		Region  string `json:"region"`
		VPCID   string `json:"vpcId"`
	} `json:"cluster"`
	Changes []struct {
		Operation  string            `json:"operation"`
		Resource   string            `json:"resource"`
		Reason     string            `json:"reason"`
		Parameters map[string]string `json:"parameters"`
		Status     string            `json:"status"`
		Error      string            `json:"error"`
	} `json:"changes"`
	Notes []struct {
		Resource, Message, Fix string
	} `json:"notes"`
}

func parseAWSPlan(t *testing.T, r result) awsPlanJSON {
	t.Helper()
	var p awsPlanJSON
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r)
	}
	return p
}

func (p awsPlanJSON) count(op string) int {
	n := 0
	for _, c := range p.Changes {
		if c.Operation == op {
			n++
		}
	}
	return n
}

// awsInventoryJSON mirrors the fields of `aws discover -o json` the tests check.
type awsInventoryJSON struct {
	Region     string   `json:"region"`
	InfraID    string   `json:"infraID"`
	ResolvedBy []string `json:"resolvedBy"`
	VPC        struct {
		ID       string `json:"id"`
		IPv6CIDR string `json:"ipv6Cidr"`
	} `json:"vpc"`
	Subnets []struct {
		ID     string `json:"id"`
		Public bool   `json:"public"`
	} `json:"subnets"`
	RouteTables        []struct{ ID string } `json:"routeTables"`
	EgressOnlyGateways []struct{ ID string } `json:"egressOnlyInternetGateways"`
	SecurityGroups     []struct{ ID string } `json:"securityGroups"`
	Instances          []struct {
		ID            string `json:"id"`
		Type          string `json:"type"`
		IPv6Supported bool   `json:"ipv6Supported"`
		ControlPlane  bool   `json:"controlPlane"`
	} `json:"instances"`
	NetworkInterfaces []struct{ ID string } `json:"networkInterfaces"`
	LoadBalancers     []struct {
		Name, Type, Scheme, IPAddressType, Service string
	} `json:"loadBalancers"`
}

// withoutEndpointURL drops AWS_ENDPOINT_URL, so only the Infrastructure's
// serviceEndpoints lead to moto.
func withoutEndpointURL(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "AWS_ENDPOINT_URL=") {
			out = append(out, e)
		}
	}
	return out
}

// awsSnapshot describes, through the SDK, everything the underlay touches,
// as sorted lines, so two states compare with ==. Disassociated blocks (moto
// keeps listing them) are left out: they are gone as far as AWS users see.
func awsSnapshot(t *testing.T, vpcID string) []string {
	t.Helper()
	ctx := context.Background()
	cfg, err := awsTLS.AWSConfig(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	e := ec2.NewFromConfig(cfg)
	vf := []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}
	var lines []string
	add := func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	active := func(s string) bool { return !strings.Contains(strings.ToLower(s), "disassociat") }

	vpcs, err := e.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{vpcID}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vpcs.Vpcs {
		for _, a := range v.Ipv6CidrBlockAssociationSet {
			if active(string(a.Ipv6CidrBlockState.State)) {
				add("vpc %s ipv6", aws.ToString(v.VpcId))
			}
		}
	}
	subnets, err := e.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: vf})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subnets.Subnets {
		add("subnet %s assignIpv6=%t", aws.ToString(s.SubnetId), aws.ToBool(s.AssignIpv6AddressOnCreation))
		for _, a := range s.Ipv6CidrBlockAssociationSet {
			if active(string(a.Ipv6CidrBlockState.State)) {
				add("subnet %s ipv6", aws.ToString(s.SubnetId))
			}
		}
	}
	rts, err := e.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: vf})
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range rts.RouteTables {
		for _, r := range rt.Routes {
			add("route %s %s%s%s -> %s%s%s%s", aws.ToString(rt.RouteTableId), aws.ToString(r.DestinationCidrBlock), aws.ToString(r.DestinationIpv6CidrBlock),
				aws.ToString(r.DestinationPrefixListId), aws.ToString(r.GatewayId), aws.ToString(r.NatGatewayId), aws.ToString(r.EgressOnlyInternetGatewayId), aws.ToString(r.NetworkInterfaceId))
		}
	}
	eigws, err := e.DescribeEgressOnlyInternetGateways(ctx, &ec2.DescribeEgressOnlyInternetGatewaysInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range eigws.EgressOnlyInternetGateways {
		add("eigw %s", aws.ToString(g.EgressOnlyInternetGatewayId))
	}
	sgs, err := e.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: vf})
	if err != nil {
		t.Fatal(err)
	}
	// A load balancer's own group (the cloud provider's k8s-elb-<name>, or
	// the one moto makes for a Classic ELB created without one) is named
	// after it, so it gets a new ID whenever its Service is re-created:
	// its lines carry "elb-sg" instead of the ID, like the lb lines' names.
	elbGroup := map[string]bool{}
	for _, g := range sgs.SecurityGroups {
		if n := aws.ToString(g.GroupName); strings.HasPrefix(n, "k8s-elb-") || strings.HasPrefix(n, "default_elb_") {
			elbGroup[aws.ToString(g.GroupId)] = true
		}
	}
	sgName := func(id *string) string {
		if elbGroup[aws.ToString(id)] {
			return "elb-sg"
		}
		return aws.ToString(id)
	}
	for _, g := range sgs.SecurityGroups {
		for dir, perms := range map[string][]ec2types.IpPermission{"in": g.IpPermissions, "out": g.IpPermissionsEgress} {
			for _, p := range perms {
				for _, r := range p.IpRanges {
					add("sg %s %s %s %d-%d %s", sgName(g.GroupId), dir, aws.ToString(p.IpProtocol), aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort), aws.ToString(r.CidrIp))
				}
				for _, r := range p.Ipv6Ranges {
					add("sg %s %s %s %d-%d %s", sgName(g.GroupId), dir, aws.ToString(p.IpProtocol), aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort), aws.ToString(r.CidrIpv6))
				}
				for _, r := range p.UserIdGroupPairs {
					add("sg %s %s %s %d-%d %s", sgName(g.GroupId), dir, aws.ToString(p.IpProtocol), aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort), sgName(r.GroupId))
				}
			}
		}
	}
	enis, err := e.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: vf})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range enis.NetworkInterfaces {
		add("eni %s ipv6=%d", aws.ToString(n.NetworkInterfaceId), len(n.Ipv6Addresses))
	}
	insts, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: vf})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range insts.Reservations {
		for _, in := range r.Instances {
			add("instance %s %s %s", aws.ToString(in.InstanceId), in.InstanceType, in.State.Name)
		}
	}
	lbs, err := elbv2.NewFromConfig(cfg).DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, lb := range lbs.LoadBalancers {
		add("lb %s %s", aws.ToString(lb.LoadBalancerName), lb.IpAddressType)
	}
	classic, err := elb.NewFromConfig(cfg).DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, lb := range classic.LoadBalancerDescriptions {
		add("lb %s classic", aws.ToString(lb.LoadBalancerName))
	}
	sort.Strings(lines)
	return lines
}

func diffLines(a, b []string) string {
	in := func(list []string) map[string]int {
		m := map[string]int{}
		for _, x := range list {
			m[x]++
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for x, n := range ma {
		if mb[x] < n {
			out = append(out, fmt.Sprintf("- %s (%d times before, %d after)", x, n, mb[x]))
		}
	}
	for x, n := range mb {
		if ma[x] < n {
			out = append(out, fmt.Sprintf("+ %s (%d times after, %d before)", x, n, ma[x]))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// checkDualStack verifies in AWS what apply promises.
func checkDualStack(t *testing.T, world *moto.World) {
	t.Helper()
	ctx := context.Background()
	cfg, _ := awsTLS.AWSConfig(ctx, "")
	e := ec2.NewFromConfig(cfg)
	vpcs, err := e.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{world.VPC.ID}})
	if err != nil {
		t.Fatal(err)
	}
	var vpc56 netip.Prefix
	for _, a := range vpcs.Vpcs[0].Ipv6CidrBlockAssociationSet {
		if !strings.Contains(string(a.Ipv6CidrBlockState.State), "disassociat") {
			vpc56 = netip.MustParsePrefix(aws.ToString(a.Ipv6CidrBlock))
		}
	}
	if !vpc56.IsValid() {
		t.Fatalf("VPC has no IPv6 block")
	}
	subnets, _ := e.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{world.VPC.ID}}}})
	seen := map[string]bool{}
	for _, s := range subnets.Subnets {
		var block string
		for _, a := range s.Ipv6CidrBlockAssociationSet {
			if !strings.Contains(string(a.Ipv6CidrBlockState.State), "disassociat") {
				block = aws.ToString(a.Ipv6CidrBlock)
			}
		}
		p, err := netip.ParsePrefix(block)
		if err != nil || p.Bits() != 64 || !vpc56.Contains(p.Addr()) || seen[block] {
			t.Errorf("subnet %s: IPv6 block %q (VPC %s, seen before: %t)", aws.ToString(s.SubnetId), block, vpc56, seen[block])
		}
		seen[block] = true
		if !aws.ToBool(s.AssignIpv6AddressOnCreation) {
			t.Errorf("subnet %s: AssignIpv6AddressOnCreation is off", aws.ToString(s.SubnetId))
		}
	}
	eigws, _ := e.DescribeEgressOnlyInternetGateways(ctx, &ec2.DescribeEgressOnlyInternetGatewaysInput{})
	if len(eigws.EgressOnlyInternetGateways) != 1 {
		t.Fatalf("%d egress-only internet gateways, want 1", len(eigws.EgressOnlyInternetGateways))
	}
	owned := false
	for _, tag := range eigws.EgressOnlyInternetGateways[0].Tags {
		owned = owned || (aws.ToString(tag.Key) == world.ClusterTagKey && aws.ToString(tag.Value) == "owned")
	}
	if !owned {
		t.Errorf("egress-only internet gateway not tagged %s=owned: %v", world.ClusterTagKey, eigws.EgressOnlyInternetGateways[0].Tags)
	}
	eigwID := aws.ToString(eigws.EgressOnlyInternetGateways[0].EgressOnlyInternetGatewayId)
	rts, _ := e.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{world.VPC.ID}}}})
	for _, want := range world.RouteTables {
		for _, rt := range rts.RouteTables {
			if aws.ToString(rt.RouteTableId) != want.ID {
				continue
			}
			target := ""
			for _, r := range rt.Routes {
				if aws.ToString(r.DestinationIpv6CidrBlock) == "::/0" {
					target = aws.ToString(r.GatewayId) + aws.ToString(r.EgressOnlyInternetGatewayId)
				}
			}
			if (want.Public && target != world.InternetGatewayID) || (!want.Public && target != eigwID) {
				t.Errorf("route table %s (public %t): ::/0 -> %q", want.Name, want.Public, target)
			}
		}
	}
	sgs, _ := e.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{world.VPC.ID}}}})
	for _, g := range sgs.SecurityGroups {
		for _, p := range g.IpPermissions {
			for _, r := range p.Ipv6Ranges {
				if aws.ToString(p.IpProtocol) == "-1" && aws.ToString(r.CidrIpv6) == "::/0" {
					t.Errorf("security group %s allows all traffic from ::/0", aws.ToString(g.GroupName))
				}
			}
		}
	}
	enis, _ := e.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{world.VPC.ID}}}})
	for _, in := range world.Instances {
		for _, n := range enis.NetworkInterfaces {
			if aws.ToString(n.NetworkInterfaceId) == in.NetworkInterfaceID && len(n.Ipv6Addresses) != 1 {
				t.Errorf("instance %s: primary ENI has %d IPv6 addresses, want 1", in.Name, len(n.Ipv6Addresses))
			}
		}
	}
	lbs, _ := elbv2.NewFromConfig(cfg).DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
	for _, lb := range lbs.LoadBalancers {
		if lb.IpAddressType != "dualstack" {
			t.Errorf("NLB %s: %s", aws.ToString(lb.LoadBalancerName), lb.IpAddressType)
		}
	}
}

// TestAWSLifecycleOpenShift: discover, plan, apply, plan again (nothing),
// rollback (the AWS state described equals the one before), apply again.
func TestAWSLifecycleOpenShift(t *testing.T) {
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	before := awsSnapshot(t, world.AWS.VPC.ID)

	// Only the Infrastructure's https serviceEndpoints (and AWS_CA_BUNDLE) lead to moto here.
	r := plugin(t, api.Kubeconfig, withoutEndpointURL(env), "aws", "discover", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("discover:\n%s", r)
	}
	var inv awsInventoryJSON
	if err := json.Unmarshal([]byte(r.Stdout), &inv); err != nil {
		t.Fatalf("discover -o json: %v\n%s", err, r)
	}
	if inv.VPC.ID != world.AWS.VPC.ID || inv.InfraID != world.AWS.InfraID || inv.Region != world.AWS.Region || len(inv.Subnets) != 6 ||
		len(inv.Instances) != 6 || len(inv.RouteTables) != 4 || len(inv.NetworkInterfaces) < 6 {
		t.Fatalf("discovered %+v", inv)
	}
	public := 0
	for _, s := range inv.Subnets {
		for _, w := range world.AWS.Subnets {
			if w.ID == s.ID && w.Public != s.Public {
				t.Errorf("subnet %s (%s) classified public=%t", s.ID, w.Name, s.Public)
			}
		}
		if s.Public {
			public++
		}
	}
	cp := 0
	for _, in := range inv.Instances {
		if !in.IPv6Supported {
			t.Errorf("instance %s (%s) reported without IPv6 support", in.ID, in.Type)
		}
		if in.ControlPlane {
			cp++
		}
	}
	lbTypes := map[string]string{}
	for _, lb := range inv.LoadBalancers {
		lbTypes[lb.Name] = lb.Type + "/" + lb.Scheme + "/" + lb.IPAddressType + "/" + lb.Service
	}
	if public != 3 || cp != 3 || lbTypes[world.AWS.InfraID+"-int"] != "network/internal/ipv4/" ||
		lbTypes[world.IngressGateway.Name] != "classic/internet-facing/ipv4/istio-system/istio-ingressgateway" {
		t.Errorf("public %d, control plane %d, load balancers %v", public, cp, lbTypes)
	}
	table := plugin(t, api.Kubeconfig, env, "aws", "discover")
	if table.Code != 0 || !strings.Contains(table.Stdout, world.AWS.VPC.ID) || !strings.Contains(table.Stdout, "found by:") {
		t.Fatalf("discover table:\n%s", table)
	}

	r = plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("plan:\n%s", r)
	}
	p := parseAWSPlan(t, r)
	want := map[string]int{"AssociateVpcCidrBlock": 1, "CreateEgressOnlyInternetGateway": 1, "AssociateSubnetCidrBlock": 6,
		"ModifySubnetAttribute": 6, "CreateRoute": 4, "AssignIpv6Addresses": 6, "SetIpAddressType": 2}
	for op, n := range want {
		if p.count(op) != n {
			t.Errorf("plan: %d %s, want %d", p.count(op), op, n)
		}
	}
	if p.Cluster.VPCID != world.AWS.VPC.ID || p.Cluster.InfraID != world.AWS.InfraID {
		t.Errorf("plan cluster %+v", p.Cluster)
	}
	for _, c := range p.Changes {
		if c.Reason == "" || c.Resource == "" || len(c.Parameters) == 0 {
			t.Errorf("change without reason/resource/parameters: %+v", c)
		}
		if strings.HasPrefix(c.Operation, "AuthorizeSecurityGroup") && c.Parameters["ipProtocol"] == "-1" && c.Parameters["cidrIpv6"] == "::/0" &&
			c.Operation == "AuthorizeSecurityGroupIngress" {
			t.Errorf("blanket ::/0 ingress planned: %+v", c)
		}
		if c.Parameters["mirrorOf"] == "0.0.0.0/0" && c.Parameters["ipProtocol"] == "58" && c.Parameters["fromPort"] != "-1" && c.Parameters["fromPort"] != "2" {
			t.Errorf("ICMP mapping: %+v", c)
		}
	}
	classicNoted := false
	for _, n := range p.Notes {
		classicNoted = classicNoted || (n.Resource == world.IngressGateway.Name && strings.Contains(n.Fix, "`kubectl dualstack gateway --recreate`"))
	}
	if !classicNoted {
		t.Errorf("Classic ELB not reported with the fix: %+v", p.Notes)
	}

	// Without a terminal and without --yes nothing is applied.
	r = plugin(t, api.Kubeconfig, env, "aws", "apply")
	if r.Code != 1 || !strings.Contains(r.Stderr, "--yes") {
		t.Fatalf("apply without --yes:\n%s", r)
	}
	if got := awsSnapshot(t, world.AWS.VPC.ID); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Fatalf("apply without --yes changed AWS:\n%s", diffLines(before, got))
	}
	r = plugin(t, api.Kubeconfig, env, "aws", "apply", "--dry-run=client", "-o", "json")
	if r.Code != 0 || len(parseAWSPlan(t, r).Changes) != len(p.Changes) {
		t.Fatalf("apply --dry-run=client:\n%s", r)
	}

	r = plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	applied := parseAWSPlan(t, r)
	for _, c := range applied.Changes {
		if c.Status != "applied" {
			t.Errorf("change %s %s: %s %s", c.Operation, c.Resource, c.Status, c.Error)
		}
	}
	if len(applied.Changes) != len(p.Changes) {
		t.Errorf("applied %d changes, planned %d", len(applied.Changes), len(p.Changes))
	}
	checkDualStack(t, world.AWS)
	cm, err := api.Kube.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "dualstack-journal", metav1GetOptions())
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	var recorded struct {
		Entries []struct{ Layer, State string }
	}
	if err := json.Unmarshal([]byte(cm.Data["entries.json"]), &recorded); err != nil || len(recorded.Entries) != len(p.Changes) {
		t.Fatalf("journal: want %d entries: %v\n%s", len(p.Changes), err, cm.Data["entries.json"])
	}
	for _, e := range recorded.Entries {
		if e.Layer != "underlay" || e.State != "done" {
			t.Fatalf("journal entry %+v: want underlay, done", e)
		}
	}

	// Idempotent: nothing left to do, and apply says so.
	r = plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json")
	if p2 := parseAWSPlan(t, r); r.Code != 0 || len(p2.Changes) != 0 {
		t.Fatalf("plan after apply:\n%s", r)
	}
	r = plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes")
	if r.Code != 0 || !strings.Contains(r.Stdout, "No changes") {
		t.Fatalf("second apply:\n%s", r)
	}

	r = plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes")
	if r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	if got := awsSnapshot(t, world.AWS.VPC.ID); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Fatalf("rollback did not restore the state before apply:\n%s", diffLines(before, got))
	}
	r = plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Nothing to roll back") {
		t.Fatalf("second rollback:\n%s", r)
	}

	r = plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes")
	if r.Code != 0 {
		t.Fatalf("apply after rollback:\n%s", r)
	}
	checkDualStack(t, world.AWS)
	r = plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json")
	if p2 := parseAWSPlan(t, r); r.Code != 0 || len(p2.Changes) != 0 {
		t.Fatalf("plan after re-apply:\n%s", r)
	}
}

func metav1GetOptions() metav1.GetOptions { return metav1.GetOptions{} }
