package moto

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"
)

// Both servers start concurrently in TestMain so their start-ups overlap; tests wait for them.
type lazyServer struct {
	once sync.Once
	done chan struct{}
	srv  *Server
	err  error
}

func (l *lazyServer) start(opts Options) {
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		l.srv, l.err = Start(context.Background(), opts)
	}()
}

func (l *lazyServer) get(t *testing.T) *Server {
	t.Helper()
	<-l.done
	if l.err != nil {
		t.Fatalf("starting moto: %v", l.err)
	}
	return l.srv
}

var plain, secure lazyServer

func TestMain(m *testing.M) {
	plain.start(Options{})
	secure.start(Options{TLS: true})
	code := m.Run()
	for _, l := range []*lazyServer{&plain, &secure} {
		<-l.done
		_ = l.srv.Stop()
	}
	os.Exit(code)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// resetPlain returns the shared plain server, reset, and its config.
func resetPlain(t *testing.T) (*Server, aws.Config) {
	t.Helper()
	s := plain.get(t)
	ctx := testCtx(t)
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.AWSConfig(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("moto log tail:\n%s", tail(s.Log(), 4000))
		}
	})
	return s, cfg
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func ec2Tag(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func vpcFilter(id string) []ec2types.Filter {
	return []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{id}}}
}

func TestStartMissingExecutable(t *testing.T) {
	_, err := Start(context.Background(), Options{Executable: "moto_server-does-not-exist"})
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	if !strings.Contains(err.Error(), "pip install 'moto[server]==5.2.1'") || !strings.Contains(err.Error(), "make moto") {
		t.Errorf("error does not say how to install moto: %v", err)
	}
}

func TestStartExitsEarly(t *testing.T) {
	_, err := Start(context.Background(), Options{Executable: "false", StartTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "exited before answering") {
		t.Fatalf("err = %v, want 'exited before answering'", err)
	}
}

func TestEnv(t *testing.T) {
	s := plain.get(t)
	env := s.Env()
	want := []string{
		"AWS_ENDPOINT_URL=" + s.Endpoint(), "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
	}
	if !slices.Equal(env, want) {
		t.Errorf("Env() = %q, want %q", env, want)
	}
	if !strings.HasPrefix(s.Endpoint(), "http://127.0.0.1:") || s.CAFile() != "" {
		t.Errorf("Endpoint() = %q, CAFile() = %q", s.Endpoint(), s.CAFile())
	}
}

func TestReset(t *testing.T) {
	s, cfg := resetPlain(t)
	ctx := testCtx(t)
	c := ec2.NewFromConfig(cfg)
	out, err := c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Vpc.VpcId)
	if _, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{id}}); err != nil {
		t.Fatalf("before reset: %v", err)
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{id}})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidVpcID.NotFound" {
		t.Fatalf("after reset: DescribeVpcs(%s) err = %v, want InvalidVpcID.NotFound", id, err)
	}
}

func TestBuildOpenShiftIPIDefault(t *testing.T) {
	_, cfg := resetPlain(t)
	ctx := testCtx(t)
	start := time.Now()
	w, err := BuildOpenShiftIPI(ctx, cfg, IPIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built default IPI world in %s", time.Since(start).Round(time.Millisecond))
	const id = "demo-x7k2p"
	if w.InfraID != id || w.Region != "us-east-1" || w.ClusterTagKey != "kubernetes.io/cluster/"+id || w.Style != SGStyleCAPA {
		t.Fatalf("world header = %+v", w)
	}
	checkWorld(t, ctx, cfg, w)

	// Exact installer layout.
	wantSubnets := []Subnet{
		{Name: id + "-subnet-public-us-east-1a", AZ: "us-east-1a", CIDR: "10.0.0.0/20", Public: true},
		{Name: id + "-subnet-public-us-east-1b", AZ: "us-east-1b", CIDR: "10.0.16.0/20", Public: true},
		{Name: id + "-subnet-public-us-east-1c", AZ: "us-east-1c", CIDR: "10.0.32.0/20", Public: true},
		{Name: id + "-subnet-private-us-east-1a", AZ: "us-east-1a", CIDR: "10.0.128.0/20"},
		{Name: id + "-subnet-private-us-east-1b", AZ: "us-east-1b", CIDR: "10.0.144.0/20"},
		{Name: id + "-subnet-private-us-east-1c", AZ: "us-east-1c", CIDR: "10.0.160.0/20"},
	}
	for i := range w.Subnets {
		got := w.Subnets[i]
		got.ID = ""
		if i >= len(wantSubnets) || got != wantSubnets[i] {
			t.Errorf("subnet %d = %+v", i, w.Subnets[i])
		}
	}
	var names []string
	for _, in := range w.Instances {
		names = append(names, in.Name)
	}
	workerName := regexp.MustCompile(`^demo-x7k2p-worker-us-east-1[abc]-[bcdfghjklmnpqrstvwxz2456789]{5}$`)
	if len(names) != 6 || names[0] != id+"-master-0" || names[2] != id+"-master-2" || !workerName.MatchString(names[3]) {
		t.Errorf("instance names = %q", names)
	}
	for i, in := range w.Instances {
		if want := w.AZs[i%3]; in.AZ != want {
			t.Errorf("%s in %s, want %s", in.Name, in.AZ, want)
		}
	}
	var sgNames []string
	for _, g := range w.SecurityGroups {
		sgNames = append(sgNames, g.Name)
	}
	if len(sgNames) != 5 || !slices.Contains(sgNames, id+"-controlplane") || !slices.Contains(sgNames, id+"-node") ||
		!slices.Contains(sgNames, id+"-apiserver-lb") || !slices.Contains(sgNames, id+"-lb") {
		t.Errorf("security groups = %q", sgNames)
	}
	for _, name := range []string{id + "-int", id + "-ext"} {
		lb, ok := w.LoadBalancer(name)
		if !ok || len(lb.SecurityGroupIDs) != 1 {
			t.Errorf("%s: %+v (want the apiserver-lb security group)", name, lb)
		}
	}
	// Same InfraID and Seed: same random parts.
	_, cfg2 := resetPlain(t)
	w2, err := BuildOpenShiftIPI(ctx, cfg2, IPIOptions{NoRouterELB: true})
	if err != nil {
		t.Fatal(err)
	}
	if w2.Instances[4].Name != w.Instances[4].Name {
		t.Errorf("worker names not deterministic: %s vs %s", w2.Instances[4].Name, w.Instances[4].Name)
	}
	if _, ok := w2.LoadBalancerFor(LBPurposeRouter); ok || len(w2.LoadBalancers) != 2 {
		t.Errorf("NoRouterELB: load balancers = %+v", w2.LoadBalancers)
	}
}

func TestBuildOpenShiftIPIScaledTerraform(t *testing.T) {
	_, cfg := resetPlain(t)
	ctx := testCtx(t)
	start := time.Now()
	w, err := BuildOpenShiftIPI(ctx, cfg, IPIOptions{
		InfraID: "bench-q9z4m", Subnets: 60, ControlPlane: 3, Workers: 57, SecurityGroupStyle: SGStyleTerraform,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built 60 subnets + 60 instances in %s", time.Since(start).Round(time.Millisecond))
	if len(w.Subnets) != 60 || len(w.Instances) != 60 || len(w.InstancesByRole(RoleWorker)) != 57 {
		t.Fatalf("%d subnets, %d instances", len(w.Subnets), len(w.Instances))
	}
	if got := w.Subnets[3].Name; got != "bench-q9z4m-subnet-public-us-east-1a-2" {
		t.Errorf("4th subnet name = %q", got)
	}
	if got := w.Subnets[0].CIDR; got != "10.0.0.0/22" {
		t.Errorf("first subnet = %s, want 10.0.0.0/22", got)
	}
	if got := w.Subnets[30].CIDR; got != "10.0.128.0/22" {
		t.Errorf("first private subnet = %s, want 10.0.128.0/22", got)
	}
	checkWorld(t, ctx, cfg, w)
	for _, g := range []struct {
		role SGRole
		name string
	}{{SGControlPlane, "bench-q9z4m-master-sg"}, {SGNode, "bench-q9z4m-worker-sg"}} {
		if sg, ok := w.SecurityGroup(g.role); !ok || sg.Name != g.name {
			t.Errorf("security group %s = %+v, want %s", g.role, sg, g.name)
		}
	}
	if _, ok := w.SecurityGroup(SGAPILB); ok {
		t.Error("terraform style has no apiserver-lb security group")
	}
	if lb, _ := w.LoadBalancerFor(LBPurposeAPIInternal); len(lb.SecurityGroupIDs) != 0 {
		t.Errorf("terraform-style NLB has security groups %v", lb.SecurityGroupIDs)
	}
}

func TestBuildOpenShiftIPIBadOptions(t *testing.T) {
	for _, o := range []IPIOptions{
		{Subnets: 4},
		{InfraID: strings.Repeat("x", 28)},
		{VPCCIDR: "10.0.0.0/26"},
		{Subnets: 5000},
		{SecurityGroupStyle: "cloudformation"},
	} {
		if _, err := BuildOpenShiftIPI(context.Background(), aws.Config{Region: "us-east-1"}, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// checkWorld describes everything back from moto and checks it against w and the installer's
// shape.
func checkWorld(t *testing.T, ctx context.Context, cfg aws.Config, w *World) {
	t.Helper()
	c := ec2.NewFromConfig(cfg)
	owned := func(tags []ec2types.Tag, what string) {
		t.Helper()
		if ec2Tag(tags, w.ClusterTagKey) != "owned" {
			t.Errorf("%s lacks %s=owned: %v", what, w.ClusterTagKey, tags)
		}
	}
	vpcCIDR := netip.MustParsePrefix(w.VPC.CIDR)

	// VPC, found by the cluster tag.
	vpcs, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + w.ClusterTagKey), Values: []string{"owned"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vpcs.Vpcs) != 1 || aws.ToString(vpcs.Vpcs[0].VpcId) != w.VPC.ID ||
		aws.ToString(vpcs.Vpcs[0].CidrBlock) != w.VPC.CIDR || ec2Tag(vpcs.Vpcs[0].Tags, "Name") != w.InfraID+"-vpc" {
		t.Fatalf("VPCs with the cluster tag = %+v, want %+v", vpcs.Vpcs, w.VPC)
	}

	// Subnets.
	subnets, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: vpcFilter(w.VPC.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(subnets.Subnets) != len(w.Subnets) {
		t.Errorf("%d subnets in the VPC, world has %d", len(subnets.Subnets), len(w.Subnets))
	}
	byID := map[string]ec2types.Subnet{}
	for _, s := range subnets.Subnets {
		byID[aws.ToString(s.SubnetId)] = s
	}
	var prefixes []netip.Prefix
	for _, ws := range w.Subnets {
		s, ok := byID[ws.ID]
		if !ok {
			t.Errorf("subnet %s (%s) not found", ws.ID, ws.Name)
			continue
		}
		owned(s.Tags, ws.Name)
		if aws.ToString(s.AvailabilityZone) != ws.AZ || aws.ToString(s.CidrBlock) != ws.CIDR || ec2Tag(s.Tags, "Name") != ws.Name {
			t.Errorf("subnet %s: az %s cidr %s name %s, want %+v", ws.ID, aws.ToString(s.AvailabilityZone),
				aws.ToString(s.CidrBlock), ec2Tag(s.Tags, "Name"), ws)
		}
		p := netip.MustParsePrefix(ws.CIDR)
		if !vpcCIDR.Contains(p.Addr()) || p.Bits() < vpcCIDR.Bits() {
			t.Errorf("subnet %s outside the VPC", ws.CIDR)
		}
		for _, q := range prefixes {
			if q.Overlaps(p) {
				t.Errorf("subnets %s and %s overlap", q, p)
			}
		}
		prefixes = append(prefixes, p)
	}
	if n := len(w.PublicSubnets()); n != len(w.Subnets)/2 {
		t.Errorf("%d public subnets of %d", n, len(w.Subnets))
	}

	// Internet gateway.
	igws, err := c.DescribeInternetGateways(ctx, &ec2.DescribeInternetGatewaysInput{Filters: []ec2types.Filter{
		{Name: aws.String("attachment.vpc-id"), Values: []string{w.VPC.ID}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(igws.InternetGateways) != 1 || aws.ToString(igws.InternetGateways[0].InternetGatewayId) != w.InternetGatewayID {
		t.Fatalf("internet gateways = %+v", igws.InternetGateways)
	}
	owned(igws.InternetGateways[0].Tags, "internet gateway")

	// NAT gateways: one per AZ, in a public subnet of that AZ, with an EIP.
	nats, err := c.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{Filter: vpcFilter(w.VPC.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(nats.NatGateways) != len(w.AZs) || len(w.NATGateways) != len(w.AZs) {
		t.Errorf("%d NAT gateways (world %d), want one per AZ", len(nats.NatGateways), len(w.NATGateways))
	}
	natAZ := map[string]string{}
	for _, n := range nats.NatGateways {
		id := aws.ToString(n.NatGatewayId)
		s := byID[aws.ToString(n.SubnetId)]
		natAZ[id] = aws.ToString(s.AvailabilityZone)
		owned(n.Tags, id)
		if ec2Tag(s.Tags, "kubernetes.io/role/elb") != "1" {
			t.Errorf("NAT %s is in non-public subnet %s", id, aws.ToString(n.SubnetId))
		}
		if len(n.NatGatewayAddresses) != 1 || aws.ToString(n.NatGatewayAddresses[0].PublicIp) == "" {
			t.Errorf("NAT %s addresses = %+v", id, n.NatGatewayAddresses)
		}
	}

	// Route tables: public -> IGW for public subnets, private -> the AZ's NAT.
	rts, err := c.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: vpcFilter(w.VPC.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rts.RouteTables) != len(w.RouteTables)+1 {
		t.Errorf("%d route tables, want the world's %d + the default one", len(rts.RouteTables), len(w.RouteTables))
	}
	rtByID := map[string]ec2types.RouteTable{}
	for _, rt := range rts.RouteTables {
		rtByID[aws.ToString(rt.RouteTableId)] = rt
	}
	if def, ok := rtByID[w.DefaultRouteTableID]; !ok || len(def.Associations) != 0 || ec2Tag(def.Tags, w.ClusterTagKey) != "" {
		t.Errorf("default route table %s = %+v, want unassociated and untagged", w.DefaultRouteTableID, def)
	}
	associated := map[string]string{} // subnet -> route table
	for i, wrt := range w.RouteTables {
		rt, ok := rtByID[wrt.ID]
		if !ok {
			t.Errorf("route table %s (%s) not found", wrt.ID, wrt.Name)
			continue
		}
		owned(rt.Tags, wrt.Name)
		if ec2Tag(rt.Tags, "Name") != wrt.Name || wrt.Public != (i == 0) {
			t.Errorf("route table %d: %+v", i, wrt)
		}
		var def *ec2types.Route
		var prefixListRoute bool
		for _, r := range rt.Routes {
			if aws.ToString(r.DestinationCidrBlock) == "0.0.0.0/0" {
				def = &r
			}
			if aws.ToString(r.DestinationPrefixListId) != "" && aws.ToString(r.GatewayId) == w.VPCEndpointID {
				prefixListRoute = true
			}
		}
		if def == nil {
			t.Errorf("%s has no 0.0.0.0/0 route: %+v", wrt.Name, rt.Routes)
		} else if wrt.Public {
			if aws.ToString(def.GatewayId) != w.InternetGatewayID {
				t.Errorf("%s: 0.0.0.0/0 -> %s, want the IGW", wrt.Name, aws.ToString(def.GatewayId))
			}
		} else if nat := aws.ToString(def.NatGatewayId); nat != wrt.DefaultTargetID || natAZ[nat] != wrt.AZ {
			t.Errorf("%s (%s): 0.0.0.0/0 -> NAT %s in %s", wrt.Name, wrt.AZ, nat, natAZ[nat])
		}
		if !prefixListRoute {
			t.Errorf("%s has no S3 endpoint route: %+v", wrt.Name, rt.Routes)
		}
		var main bool
		for _, a := range rt.Associations {
			if aws.ToBool(a.Main) {
				main = true
			} else {
				associated[aws.ToString(a.SubnetId)] = wrt.ID
			}
		}
		if main != wrt.Main || main != wrt.Public {
			t.Errorf("%s: main = %v, world says %v; want only the public one main", wrt.Name, main, wrt.Main)
		}
	}
	for _, s := range w.Subnets {
		rt := rtByID[associated[s.ID]]
		var toIGW bool
		for _, r := range rt.Routes {
			toIGW = toIGW || aws.ToString(r.GatewayId) == w.InternetGatewayID
		}
		if toIGW != s.Public {
			t.Errorf("subnet %s (public=%v) is associated with %s (to IGW: %v)", s.Name, s.Public, associated[s.ID], toIGW)
		}
	}

	// Security groups.
	sgs, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{w.VPC.ID}},
		{Name: aws.String("tag:" + w.ClusterTagKey), Values: []string{"owned"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sgs.SecurityGroups) != len(w.SecurityGroups) {
		t.Errorf("%d tagged security groups, world has %d", len(sgs.SecurityGroups), len(w.SecurityGroups))
	}
	sgByID := map[string]ec2types.SecurityGroup{}
	for _, g := range sgs.SecurityGroups {
		sgByID[aws.ToString(g.GroupId)] = g
	}
	cp, _ := w.SecurityGroup(SGControlPlane)
	node, _ := w.SecurityGroup(SGNode)
	has := func(g ec2types.SecurityGroup, proto string, port int32, cidr, group string) bool {
		for _, p := range g.IpPermissions {
			if aws.ToString(p.IpProtocol) != proto {
				continue
			}
			if proto != "-1" && (aws.ToInt32(p.FromPort) > port || aws.ToInt32(p.ToPort) < port) {
				continue
			}
			for _, r := range p.IpRanges {
				if cidr != "" && aws.ToString(r.CidrIp) == cidr {
					return true
				}
			}
			for _, u := range p.UserIdGroupPairs {
				if group != "" && aws.ToString(u.GroupId) == group {
					return true
				}
			}
		}
		return false
	}
	for _, wg := range w.SecurityGroups {
		g, ok := sgByID[wg.ID]
		if !ok {
			t.Errorf("security group %s (%s) not found by tag", wg.ID, wg.Name)
			continue
		}
		if aws.ToString(g.GroupName) != wg.Name || ec2Tag(g.Tags, "Name") != wg.Name {
			t.Errorf("security group %s: name %s", wg.Name, aws.ToString(g.GroupName))
		}
		var egress bool
		for _, p := range g.IpPermissionsEgress {
			egress = egress || aws.ToString(p.IpProtocol) == "-1" && len(p.IpRanges) == 1 && aws.ToString(p.IpRanges[0].CidrIp) == "0.0.0.0/0"
		}
		if !egress {
			t.Errorf("%s lacks all egress to 0.0.0.0/0: %+v", wg.Name, g.IpPermissionsEgress)
		}
	}
	for _, c := range []struct {
		sg, proto   string
		port        int32
		cidr, group string
	}{
		{cp.ID, "tcp", 6443, "0.0.0.0/0", ""},
		{cp.ID, "tcp", 22623, w.VPC.CIDR, ""},
		{cp.ID, "icmp", -1, "0.0.0.0/0", ""},
		{cp.ID, "-1", 0, "", node.ID},
		{cp.ID, "-1", 0, "", cp.ID},
		{node.ID, "-1", 0, "", cp.ID},
		{node.ID, "icmp", -1, "0.0.0.0/0", ""},
		{node.ID, "tcp", 30000, w.VPC.CIDR, ""},
	} {
		if !has(sgByID[c.sg], c.proto, c.port, c.cidr, c.group) {
			t.Errorf("%s lacks %s/%d from %s%s", c.sg, c.proto, c.port, c.cidr, c.group)
		}
	}
	if lbsg, ok := w.SecurityGroup(SGAPILB); ok && !has(sgByID[lbsg.ID], "tcp", 6443, "0.0.0.0/0", "") {
		t.Errorf("%s lacks 6443 from 0.0.0.0/0", lbsg.Name)
	}

	// Instances, by the cluster tag.
	var insts []ec2types.Instance
	pages := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + w.ClusterTagKey), Values: []string{"owned"}},
	}})
	for pages.HasMorePages() {
		p, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Reservations {
			insts = append(insts, r.Instances...)
		}
	}
	if len(insts) != len(w.Instances) {
		t.Errorf("%d tagged instances, world has %d", len(insts), len(w.Instances))
	}
	instByID := map[string]ec2types.Instance{}
	for _, in := range insts {
		instByID[aws.ToString(in.InstanceId)] = in
	}
	dns := regexp.MustCompile(`^ip-10-0-\d+-\d+\.ec2\.internal$`)
	for _, wi := range w.Instances {
		in, ok := instByID[wi.ID]
		if !ok {
			t.Errorf("instance %s (%s) not found", wi.ID, wi.Name)
			continue
		}
		wantType, wantSG := "m6i.xlarge", cp.ID
		if wi.Role == RoleWorker {
			wantType, wantSG = "m6i.large", node.ID
		}
		s := byID[wi.SubnetID]
		if ec2Tag(in.Tags, "Name") != wi.Name || string(in.InstanceType) != wantType || wi.InstanceType != wantType ||
			aws.ToString(in.SubnetId) != wi.SubnetID || aws.ToString(in.Placement.AvailabilityZone) != wi.AZ ||
			aws.ToString(s.AvailabilityZone) != wi.AZ || ec2Tag(s.Tags, "kubernetes.io/role/internal-elb") != "1" ||
			aws.ToString(in.PrivateIpAddress) != wi.PrivateIP || aws.ToString(in.PrivateDnsName) != wi.PrivateDNSName ||
			!dns.MatchString(wi.PrivateDNSName) || !slices.Equal(wi.SecurityGroupIDs, []string{wantSG}) ||
			wi.NetworkInterfaceID == "" {
			t.Errorf("instance %+v does not match moto's %s %s %s %s", wi, ec2Tag(in.Tags, "Name"),
				in.InstanceType, aws.ToString(in.PrivateIpAddress), aws.ToString(in.PrivateDnsName))
		}
		if ip := netip.MustParseAddr(wi.PrivateIP); !netip.MustParsePrefix(aws.ToString(s.CidrBlock)).Contains(ip) {
			t.Errorf("%s: IP %s outside its subnet %s", wi.Name, wi.PrivateIP, aws.ToString(s.CidrBlock))
		}
		if want := fmt.Sprintf("aws:///%s/%s", wi.AZ, wi.ID); wi.ProviderID() != want {
			t.Errorf("ProviderID() = %s, want %s", wi.ProviderID(), want)
		}
	}
	if n := len(w.InstancesByRole(RoleControlPlane)); n != 3 {
		t.Errorf("%d control-plane instances", n)
	}

	// API NLBs and their target groups.
	v2 := elbv2.NewFromConfig(cfg)
	lbs, err := v2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(lbs.LoadBalancers) != 2 {
		t.Errorf("%d elbv2 load balancers, want 2", len(lbs.LoadBalancers))
	}
	for _, l := range lbs.LoadBalancers {
		name := aws.ToString(l.LoadBalancerName)
		wl, ok := w.LoadBalancer(name)
		wantScheme := map[string]string{w.InfraID + "-int": "internal", w.InfraID + "-ext": "internet-facing"}[name]
		if !ok || string(l.Type) != "network" || wl.Type != LBTypeNetwork || string(l.Scheme) != wantScheme ||
			wl.Scheme != wantScheme || aws.ToString(l.DNSName) != wl.DNSName || wl.DNSName == "" ||
			aws.ToString(l.LoadBalancerArn) != wl.ARN || string(l.IpAddressType) != "ipv4" {
			t.Errorf("NLB %s = %+v, world %+v", name, l, wl)
		}
		if len(l.AvailabilityZones) != len(w.AZs) {
			t.Errorf("NLB %s in %d AZs", name, len(l.AvailabilityZones))
		}
		for _, az := range l.AvailabilityZones {
			if _, ok := byID[aws.ToString(az.SubnetId)]; !ok {
				t.Errorf("NLB %s subnet %s unknown", name, aws.ToString(az.SubnetId))
			}
			public := ec2Tag(byID[aws.ToString(az.SubnetId)].Tags, "kubernetes.io/role/elb") == "1"
			if public != (wantScheme == "internet-facing") {
				t.Errorf("NLB %s (%s) on subnet %s public=%v", name, wantScheme, aws.ToString(az.SubnetId), public)
			}
		}
		tags, err := v2.DescribeTags(ctx, &elbv2.DescribeTagsInput{ResourceArns: []string{wl.ARN}})
		if err != nil {
			t.Fatal(err)
		}
		var tagged bool
		for _, td := range tags.TagDescriptions {
			for _, tg := range td.Tags {
				tagged = tagged || aws.ToString(tg.Key) == w.ClusterTagKey && aws.ToString(tg.Value) == "owned"
			}
		}
		if !tagged {
			t.Errorf("NLB %s lacks the cluster tag", name)
		}
		ls, err := v2.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: l.LoadBalancerArn})
		if err != nil {
			t.Fatal(err)
		}
		if len(ls.Listeners) != len(wl.Listeners) {
			t.Errorf("NLB %s: %d listeners, world %d", name, len(ls.Listeners), len(wl.Listeners))
		}
	}
	if len(w.TargetGroups) != 3 {
		t.Errorf("%d target groups", len(w.TargetGroups))
	}
	for _, tg := range w.TargetGroups {
		h, err := v2.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg.ARN)})
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, d := range h.TargetHealthDescriptions {
			ips = append(ips, aws.ToString(d.Target.Id))
		}
		slices.Sort(ips)
		want := slices.Sorted(slices.Values(tg.TargetIPs))
		if len(want) != 3 || !slices.Equal(ips, want) {
			t.Errorf("target group %s targets %v, want %v", tg.Name, ips, want)
		}
	}

	// The router's Classic ELB.
	v1 := elb.NewFromConfig(cfg)
	clbs, err := v1.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
	if err != nil {
		t.Fatal(err)
	}
	router, ok := w.LoadBalancerFor(LBPurposeRouter)
	if !ok || len(clbs.LoadBalancerDescriptions) != 1 {
		t.Fatalf("classic ELBs = %d, world router = %+v", len(clbs.LoadBalancerDescriptions), router)
	}
	d := clbs.LoadBalancerDescriptions[0]
	if aws.ToString(d.LoadBalancerName) != router.Name || len(router.Name) != 32 || router.Name[0] != 'a' ||
		aws.ToString(d.DNSName) != router.DNSName || aws.ToString(d.Scheme) != "internet-facing" ||
		router.Type != LBTypeClassic || aws.ToString(d.VPCId) != w.VPC.ID || len(d.Subnets) != len(w.AZs) ||
		len(d.ListenerDescriptions) != 2 || len(d.Instances) != len(w.InstancesByRole(RoleWorker)) ||
		!strings.HasPrefix(aws.ToString(d.HealthCheck.Target), "HTTP:") {
		t.Errorf("router ELB = %+v, world %+v", d, router)
	}
	for _, s := range d.Subnets {
		if ec2Tag(byID[s].Tags, "kubernetes.io/role/elb") != "1" {
			t.Errorf("router ELB on non-public subnet %s", s)
		}
	}
	tags, err := v1.DescribeTags(ctx, &elb.DescribeTagsInput{LoadBalancerNames: []string{router.Name}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, td := range tags.TagDescriptions {
		for _, tg := range td.Tags {
			got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
	}
	if got[w.ClusterTagKey] != "owned" || got["kubernetes.io/service-name"] != RouterServiceName {
		t.Errorf("router ELB tags = %v", got)
	}
	rsg, _ := w.SecurityGroup(SGRouterELB)
	if !has(sgByID[rsg.ID], "tcp", 443, "0.0.0.0/0", "") || !has(sgByID[node.ID], "-1", 0, "", rsg.ID) {
		t.Errorf("router ELB security group rules missing (%s, node %s)", rsg.Name, node.Name)
	}
}

func TestTLS(t *testing.T) {
	s := secure.get(t)
	ctx := testCtx(t)
	if !strings.HasPrefix(s.Endpoint(), "https://127.0.0.1:") || !s.TLS() {
		t.Fatalf("Endpoint() = %s", s.Endpoint())
	}
	ca, err := os.ReadFile(s.CAFile())
	if err != nil || !strings.Contains(string(ca), "BEGIN CERTIFICATE") || string(ca) != string(s.CAPEM()) {
		t.Fatalf("CA file %s: %v", s.CAFile(), err)
	}
	if !slices.Contains(s.Env(), "AWS_CA_BUNDLE="+s.CAFile()) {
		t.Errorf("Env() = %q lacks AWS_CA_BUNDLE", s.Env())
	}

	// With the CA trusted: the SDK works, and so does Reset.
	cfg, err := s.AWSConfig(ctx, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	c := ec2.NewFromConfig(cfg)
	out, err := c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	if err != nil {
		t.Fatalf("over TLS with the CA: %v", err)
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{aws.ToString(out.Vpc.VpcId)}}); err == nil {
		t.Error("VPC still there after Reset over TLS")
	}

	// Without it: refused.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(s.Endpoint() + "/moto-api/data.json")
	if err == nil {
		resp.Body.Close()
		t.Fatal("plain client trusted the test CA")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("plain client: %v, want a certificate error", err)
	}
	bare := cfg.Copy()
	bare.HTTPClient = nil
	noCA := ec2.NewFromConfig(bare, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	if _, err := noCA.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("SDK without the CA: err = %v, want a certificate error", err)
	}

	// What a child process gets from Env(), through the standard SDK chain
	// (AWS_ENDPOINT_URL, AWS_CA_BUNDLE, static credentials).
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	envCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec2.NewFromConfig(envCfg).DescribeVpcs(ctx, &ec2.DescribeVpcsInput{}); err != nil {
		t.Errorf("SDK configured from Env(): %v", err)
	}

	// Stop kills the process group and removes the certificates (TestMain's Stop is then a no-op).
	pgid := s.cmd.Process.Pid
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still exists after Stop (kill 0: %v)", pgid, err)
	}
	if _, err := os.Stat(s.CAFile()); !os.IsNotExist(err) {
		t.Errorf("CA file after Stop: %v", err)
	}
	if err := s.Reset(ctx); err == nil {
		t.Error("Reset succeeded after Stop")
	}
}

func TestBuildOpenShiftIPIExtras(t *testing.T) {
	_, cfg := resetPlain(t)
	ctx := testCtx(t)
	w, err := BuildOpenShiftIPI(ctx, cfg, IPIOptions{NetworkACLs: true, OtherCluster: "other-q9z8w", HostedZones: &HostedZoneOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	e := ec2.NewFromConfig(cfg)
	acls, err := e.DescribeNetworkAcls(ctx, &ec2.DescribeNetworkAclsInput{Filters: vpcFilter(w.VPC.ID)})
	if err != nil {
		t.Fatal(err)
	}
	bySubnet := map[string]string{}
	entries := map[string]int{}
	for _, a := range acls.NetworkAcls {
		for _, as := range a.Associations {
			bySubnet[aws.ToString(as.SubnetId)] = aws.ToString(a.NetworkAclId)
		}
		entries[aws.ToString(a.NetworkAclId)] = len(a.Entries)
	}
	if len(w.NetworkACLs) != 2 || !w.NetworkACLs[0].Default {
		t.Fatalf("network ACLs = %+v", w.NetworkACLs)
	}
	for _, s := range w.Subnets {
		want := w.NetworkACLs[0].ID
		if !s.Public {
			want = w.NetworkACLs[1].ID
		}
		if bySubnet[s.ID] != want {
			t.Errorf("subnet %s uses ACL %s, want %s", s.Name, bySubnet[s.ID], want)
		}
	}
	// moto lists no "*" (32767) entries for a custom ACL, AWS does; the
	// product never mirrors those either way.
	if got, want := entries[w.NetworkACLs[1].ID], len(PrivateACLEntries); got != want {
		t.Errorf("the private ACL has %d entries, want %d", got, want)
	}
	if entries[w.NetworkACLs[0].ID] != 5 {
		t.Errorf("the default ACL has %d entries, want AWS's 4 and the fixture's deny on 23", entries[w.NetworkACLs[0].ID])
	}
	o := w.Other
	if o == nil || bySubnet[o.SubnetID] != o.NetworkACLID || o.InstanceID == "" || o.SecurityGroupID == "" || o.RouteTableID == "" {
		t.Fatalf("other cluster = %+v (ACL of its subnet %s)", o, bySubnet[o.SubnetID])
	}

	r53 := route53.NewFromConfig(cfg)
	byVPC, err := r53.ListHostedZonesByVPC(ctx, &route53.ListHostedZonesByVPCInput{VPCId: aws.String(w.VPC.ID), VPCRegion: r53types.VPCRegion(w.Region)})
	if err != nil {
		t.Fatal(err)
	}
	if len(byVPC.HostedZoneSummaries) != 1 || aws.ToString(byVPC.HostedZoneSummaries[0].HostedZoneId) != w.PrivateZone.ID {
		t.Errorf("zones of the VPC = %+v, want the private zone %s", byVPC.HostedZoneSummaries, w.PrivateZone.ID)
	}
	var records []string
	for _, z := range []HostedZone{w.PublicZone, w.PrivateZone} {
		out, err := r53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(z.ID)})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.ResourceRecordSets {
			if r.Type == r53types.RRTypeA {
				kind := "plain"
				if r.AliasTarget != nil {
					kind = "alias"
				}
				records = append(records, z.Name+" "+strings.ReplaceAll(aws.ToString(r.Name), `\052`, "*")+" "+kind)
			}
		}
	}
	slices.Sort(records)
	want := []string{
		"demo.example.com. *.apps.demo.example.com. alias", "demo.example.com. api-int.demo.example.com. alias",
		"demo.example.com. api.demo.example.com. alias", "demo.example.com. bastion.demo.example.com. plain",
		"example.com. *.apps.demo.example.com. alias", "example.com. api.demo.example.com. alias",
	}
	if !slices.Equal(records, want) {
		t.Errorf("A records:\n%s\nwant:\n%s", strings.Join(records, "\n"), strings.Join(want, "\n"))
	}
}
