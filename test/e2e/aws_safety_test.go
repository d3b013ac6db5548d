package e2e

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// The safety invariants of the AWS underlay (docs/SECURITY.md "never"):
// only the cluster's own VPC and route tables change, an IPv6 default route
// only mirrors an IPv4 one of the same kind, rollback takes back only what
// apply added, and one stale Node does not hide the rest of the cluster.

// safetyEC2 is an EC2 client straight to moto (not through any proxy): the
// test's own hands, or another party's.
func safetyEC2(t *testing.T) *ec2.Client {
	t.Helper()
	cfg, err := awsTLS.AWSConfig(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return ec2.NewFromConfig(cfg)
}

func tagSpec(rt ec2types.ResourceType, kv ...string) []ec2types.TagSpecification {
	var tags []ec2types.Tag
	for i := 0; i+1 < len(kv); i += 2 {
		tags = append(tags, ec2types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return []ec2types.TagSpecification{{ResourceType: rt, Tags: tags}}
}

// ipv6DefaultRoute is the target of a table's ::/0, or "".
func ipv6DefaultRoute(t *testing.T, e *ec2.Client, table string) string {
	t.Helper()
	out, err := e.DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{RouteTableIds: []string{table}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range out.RouteTables {
		for _, r := range rt.Routes {
			if aws.ToString(r.DestinationIpv6CidrBlock) == "::/0" {
				return aws.ToString(r.GatewayId) + aws.ToString(r.EgressOnlyInternetGatewayId)
			}
		}
	}
	return ""
}

// noteFor is the plan's note on resource: its message and its fix.
func noteFor(p awsPlanJSON, resource string) string {
	for _, n := range p.Notes {
		if n.Resource == resource {
			return n.Message + " (fix: " + n.Fix + ")"
		}
	}
	return ""
}

// TestAWSSafetyForeignVPC (item 6): a --vpc-id that holds none of the
// cluster's instances and has no cluster tag is refused as bad input, with
// one line naming the cluster's VPC and how it was found; nothing changes in
// it. --force-vpc accepts it and the plan says so.
func TestAWSSafetyForeignVPC(t *testing.T) {
	ctx := context.Background()
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	e := safetyEC2(t)
	other, err := e.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.50.0.0/16"),
		TagSpecifications: tagSpec(ec2types.ResourceTypeVpc, "Name", "someone-elses")})
	if err != nil {
		t.Fatal(err)
	}
	foreign := aws.ToString(other.Vpc.VpcId)
	if _, err := e.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(foreign), CidrBlock: aws.String("10.50.128.0/20"), AvailabilityZone: aws.String(world.AWS.AZs[0])}); err != nil {
		t.Fatal(err)
	}
	before := awsSnapshot(t, foreign)

	for _, args := range [][]string{
		{"aws", "plan", "--vpc-id", foreign},
		{"aws", "apply", "--yes", "--vpc-id", foreign},
		{"aws", "discover", "--vpc-id", foreign},
	} {
		r := plugin(t, api.Kubeconfig, env, args...)
		if r.Code != 2 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Fatalf("%v: want exit 2 and one line on stderr:\n%s", args, r)
		}
		for _, want := range []string{foreign, "not the cluster's VPC", world.AWS.VPC.ID, "tagged " + world.AWS.ClusterTagKey, "--force-vpc"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("%v: stderr should name %q:\n%s", args, want, r)
			}
		}
	}
	if got := awsSnapshot(t, foreign); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Fatalf("the foreign VPC changed:\n%s", diffLines(before, got))
	}

	// The cluster's own VPC, given explicitly, is accepted (it carries the tag).
	if r := plugin(t, api.Kubeconfig, env, "aws", "plan", "--vpc-id", world.AWS.VPC.ID); r.Code != 0 {
		t.Fatalf("the cluster's own VPC by --vpc-id:\n%s", r)
	}
	// --force-vpc: accepted, and the plan says on what grounds.
	r := plugin(t, api.Kubeconfig, env, "aws", "plan", "--vpc-id", foreign, "--force-vpc", "-o", "json")
	p := parseAWSPlan(t, r)
	if r.Code != 0 || p.Cluster.VPCID != foreign || !strings.Contains(noteFor(p, foreign), "--force-vpc") {
		t.Fatalf("--force-vpc: want a plan for %s with a note naming --force-vpc:\n%s", foreign, r)
	}
}

// TestAWSSafetyRouteTables (item 7): ::/0 only where the table has an IPv4
// default route of the matching kind; never a table tagged for another
// cluster, nor a main table that subnets outside the cluster use; the plan
// says what it left alone and why.
func TestAWSSafetyRouteTables(t *testing.T) {
	ctx := context.Background()
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	e := safetyEC2(t)
	vpc := world.AWS.VPC.ID
	ours := world.AWS.ClusterTagKey
	nat := world.AWS.NATGateways[0].ID
	az := world.AWS.AZs[0]
	subnet := func(cidr string, kv ...string) string {
		t.Helper()
		out, err := e.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(vpc), CidrBlock: aws.String(cidr), AvailabilityZone: aws.String(az),
			TagSpecifications: tagSpec(ec2types.ResourceTypeSubnet, kv...)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.Subnet.SubnetId)
	}
	table := func(subnetID string, kv ...string) string {
		t.Helper()
		out, err := e.CreateRouteTable(ctx, &ec2.CreateRouteTableInput{VpcId: aws.String(vpc), TagSpecifications: tagSpec(ec2types.ResourceTypeRouteTable, kv...)})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.RouteTable.RouteTableId)
		if _, err := e.AssociateRouteTable(ctx, &ec2.AssociateRouteTableInput{RouteTableId: aws.String(id), SubnetId: aws.String(subnetID)}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	natDefault := func(table string) {
		t.Helper()
		if _, err := e.CreateRoute(ctx, &ec2.CreateRouteInput{RouteTableId: aws.String(table), DestinationCidrBlock: aws.String("0.0.0.0/0"), NatGatewayId: aws.String(nat)}); err != nil {
			t.Fatal(err)
		}
	}
	// An isolated cluster subnet: its table has the local route only.
	isolated := table(subnet("10.0.64.0/24", "Name", "isolated", ours, "owned"), "Name", "isolated", ours, "owned")
	// A subnet the cluster shares, routed by a table another cluster owns,
	// whose IPv4 default goes through this cluster's NAT gateway.
	otherOwned := table(subnet("10.0.65.0/24", "Name", "shared", ours, "shared", "kubernetes.io/cluster/other-9z8y7", "owned"),
		"Name", "other-cluster-rt", "kubernetes.io/cluster/other-9z8y7", "owned")
	natDefault(otherOwned)
	// The main table (the installer makes its public table main: 0.0.0.0/0
	// -> the internet gateway), used implicitly by a cluster subnet and by a
	// subnet of another cluster added to the VPC later.
	mainTable := ""
	for _, rt := range world.AWS.RouteTables {
		if rt.Main {
			mainTable = rt.ID
		}
	}
	if mainTable == "" {
		t.Fatal("the IPI world has no main route table")
	}
	subnet("10.0.66.0/24", "Name", "ours-on-main", ours, "owned")
	foreignSubnet := subnet("10.0.67.0/24", "Name", "theirs-on-main", "kubernetes.io/cluster/other-9z8y7", "owned")

	r := plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json")
	p := parseAWSPlan(t, r)
	if r.Code != 0 {
		t.Fatalf("plan:\n%s", r)
	}
	for _, c := range p.Changes {
		if c.Operation == "CreateRoute" && slices.Contains([]string{isolated, otherOwned, mainTable}, c.Resource) {
			t.Errorf("plan adds ::/0 to %s: %s", c.Resource, c.Reason)
		}
		if c.Resource == foreignSubnet {
			t.Errorf("plan changes another cluster's subnet: %s %s", c.Operation, c.Reason)
		}
	}
	for table, why := range map[string]string{isolated: "no IPv4 default route", otherOwned: "another cluster", mainTable: foreignSubnet} {
		if n := noteFor(p, table); !strings.Contains(n, why) {
			t.Errorf("plan should say why %s is left alone (%q), note: %q", table, why, n)
		}
	}
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes"); r.Code != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	for _, table := range []string{isolated, otherOwned, mainTable} {
		if got := ipv6DefaultRoute(t, e, table); got != "" {
			t.Errorf("route table %s got ::/0 -> %s", table, got)
		}
	}
	// The installer's other tables still get theirs, of the matching kind.
	for _, rt := range world.AWS.RouteTables {
		if rt.ID == mainTable {
			continue
		}
		got := ipv6DefaultRoute(t, e, rt.ID)
		if rt.Public && got != world.AWS.InternetGatewayID || !rt.Public && !strings.HasPrefix(got, "eigw-") {
			t.Errorf("route table %s (public %t): ::/0 -> %q", rt.Name, rt.Public, got)
		}
	}
}

// TestAWSSafetyPendingENIRollback (item 5): an address that was on the ENI
// before AssignIpv6Addresses (put there by someone else while apply ran)
// survives the rollback of that change's pending entry.
func TestAWSSafetyPendingENIRollback(t *testing.T) {
	ctx := context.Background()
	api, world, motoEnv := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{IPI: moto.IPIOptions{ControlPlane: 1, Workers: 1}})
	proxy := awsProxy(t)
	env := proxy.Env(motoEnv)
	e := safetyEC2(t)
	eni := world.AWS.InstancesByRole(moto.RoleWorker)[0].NetworkInterfaceID
	var theirs []string
	// Once the subnets have their /64s (phase 3 runs after them), another
	// party gives the worker's ENI an IPv6 address of its own.
	proxy.OnCall("ModifySubnetAttribute", func() {
		out, err := e.AssignIpv6Addresses(ctx, &ec2.AssignIpv6AddressesInput{NetworkInterfaceId: aws.String(eni), Ipv6AddressCount: aws.Int32(1)})
		if err != nil {
			t.Errorf("the other party's AssignIpv6Addresses: %v", err)
			return
		}
		theirs = out.AssignedIpv6Addresses
	})
	// apply's own assignment fails: its entries stay pending.
	proxy.Fail("AssignIpv6Addresses", -1, harness.AWSFault{Status: 403, Code: "UnauthorizedOperation", Message: "You are not authorized to perform this operation."})
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes"); r.Code != 1 || !strings.Contains(r.Stderr, "AssignIpv6Addresses") {
		t.Fatalf("apply should fail at AssignIpv6Addresses:\n%s", r)
	}
	if len(theirs) != 1 {
		t.Fatalf("the other party's address was not assigned: %v", theirs)
	}
	proxy.Heal()
	if r := plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes"); r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	out, err := e.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eni}})
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, a := range out.NetworkInterfaces[0].Ipv6Addresses {
		have = append(have, aws.ToString(a.Ipv6Address))
	}
	if !slices.Equal(have, theirs) {
		t.Fatalf("after rollback the ENI has %v; the address that was there before apply's change (%v) must stay", have, theirs)
	}
}

// TestAWSSafetyMissingNodeInstance (item 8): on a cluster found through
// providerIDs, a Node whose instance is gone is named, skipped, and the rest
// is planned; status says so instead of blaming the credentials.
func TestAWSSafetyMissingNodeInstance(t *testing.T) {
	ctx := context.Background()
	if err := awsTLS.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := awsTLS.AWSConfig(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	world, err := moto.BuildOpenShiftIPI(ctx, cfg, moto.IPIOptions{InfraID: "kubeadm-m1ss1", NoRouterELB: true})
	if err != nil {
		t.Fatal(err)
	}
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16"})
	kubeadmConfigMap(ctx, t, api)
	var nodes []harness.NodeSpec
	for _, inst := range world.Instances {
		nodes = append(nodes, harness.NodeSpec{Name: inst.PrivateDNSName, ProviderID: inst.ProviderID(), InternalIPs: []string{inst.PrivateIP}})
	}
	const gone = "ip-10-0-130-99.ec2.internal"
	nodes = append(nodes, harness.NodeSpec{Name: gone, ProviderID: "aws:///" + world.AZs[0] + "/i-0feedfacecafe0001", InternalIPs: []string{"10.0.130.99"}})
	if err := harness.CreateNodes(ctx, api.Kube, nodes); err != nil {
		t.Fatal(err)
	}
	env := awsTLS.Env()

	r := plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json")
	p := parseAWSPlan(t, r)
	if r.Code != 0 || p.Cluster.VPCID != world.VPC.ID || p.count("AssignIpv6Addresses") != len(world.Instances) {
		t.Fatalf("plan should skip the stale node and plan the rest:\n%s", r)
	}
	if n := noteFor(p, "node/"+gone); !strings.Contains(n, "i-0feedfacecafe0001") {
		t.Errorf("plan should name the stale node %s and its instance: notes %+v", gone, p.Notes)
	}
	s := parseStatus(t, plugin(t, api.Kubeconfig, env, "status", "-o", "json"))
	v := s.verdicts()
	if _, ok := v["aws-reachable"]; ok || v["node-instances"] != "WARN" || v["vpc-ipv6"] != "FAIL" {
		t.Errorf("status should judge the underlay and warn about the stale node: %v", v)
	}
	for _, c := range s.Checks {
		if c.Name == "node-instances" && (!strings.Contains(c.Message, gone) || strings.Contains(c.Remediation, "credentials")) {
			t.Errorf("node-instances should name %s and not blame credentials: %+v", gone, c)
		}
	}
}

// TestAWSSafetyEgressOnlyGatewayListing (item 8): egress-only internet
// gateways are never listed region-wide; another VPC's gateways are neither
// read nor adopted; a second plan finds the gateway apply created.
func TestAWSSafetyEgressOnlyGatewayListing(t *testing.T) {
	ctx := context.Background()
	api, world, motoEnv := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{IPI: moto.IPIOptions{ControlPlane: 1, Workers: 1}})
	e := safetyEC2(t)
	other, err := e.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.60.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.CreateEgressOnlyInternetGateway(ctx, &ec2.CreateEgressOnlyInternetGatewayInput{VpcId: other.Vpc.VpcId,
			TagSpecifications: tagSpec(ec2types.ResourceTypeEgressOnlyInternetGateway, "kubernetes.io/cluster/other-9z8y7", "owned")}); err != nil {
			t.Fatal(err)
		}
	}
	proxy := awsProxy(t)
	env := proxy.Env(motoEnv)
	narrowed := func(what string) {
		t.Helper()
		n := 0
		for _, op := range proxy.Ops() {
			if op.Action != "DescribeEgressOnlyInternetGateways" {
				continue
			}
			n++
			if op.Params.Get("EgressOnlyInternetGatewayId.1") == "" && op.Params.Get("Filter.1.Name") == "" {
				t.Errorf("%s lists every egress-only internet gateway of the region: %v", what, op.Params)
			}
		}
		if n == 0 {
			t.Errorf("%s never looked for egress-only internet gateways", what)
		}
		proxy.Reset()
	}
	r := plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json")
	if p := parseAWSPlan(t, r); r.Code != 0 || p.count("CreateEgressOnlyInternetGateway") != 1 {
		t.Fatalf("plan should create this VPC's own gateway:\n%s", r)
	}
	narrowed("plan")
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes"); r.Code != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	proxy.Reset()
	r = plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json")
	if p := parseAWSPlan(t, r); r.Code != 0 || len(p.Changes) != 0 {
		t.Fatalf("a second plan should find the gateway apply made:\n%s", r)
	}
	narrowed("the second plan")
	for _, rt := range world.AWS.RouteTables {
		if got := ipv6DefaultRoute(t, e, rt.ID); !rt.Public && !strings.HasPrefix(got, "eigw-") {
			t.Errorf("private table %s: ::/0 -> %q", rt.Name, got)
		}
	}
}

// setNodeReady sets the Ready condition of a Node, as its kubelet (Ready)
// or the node lifecycle controller (Unknown, the machine stopped) would.
func setNodeReady(ctx context.Context, t *testing.T, api *harness.APIServer, name string, status corev1.ConditionStatus) {
	n, err := api.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Error(err)
		return
	}
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			n.Status.Conditions[i].Status = status
			n.Status.Conditions[i].LastTransitionTime = metav1.Now()
		}
	}
	if _, err := api.Kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Error(err)
	}
}

func instanceState(t *testing.T, e *ec2.Client, id string) (typ, state string) {
	t.Helper()
	out, err := e.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	in := out.Reservations[0].Instances[0]
	return string(in.InstanceType), string(in.State.Name)
}

// TestAWSSafetyInstanceTypeChange (item 3): control-plane instances are
// only reported without --allow-control-plane-restart; a failure after
// StopInstances starts the instance again; the next instance is stopped
// only once the previous one's Node is Ready again; rollback restores the
// type and the running state.
func TestAWSSafetyInstanceTypeChange(t *testing.T) {
	ctx := context.Background()
	api, world, motoEnv := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{IPI: moto.IPIOptions{ControlPlane: 1, Workers: 2,
		ControlPlaneInstanceType: "m1.large", WorkerInstanceType: "m1.large"}})
	proxy := awsProxy(t)
	env := proxy.Env(motoEnv)
	e := safetyEC2(t)
	cp := world.AWS.InstancesByRole(moto.RoleControlPlane)[0]
	workers := world.AWS.InstancesByRole(moto.RoleWorker)
	node := map[string]string{}
	for _, in := range world.AWS.Instances {
		node[in.ID] = in.PrivateDNSName
	}

	r := plugin(t, api.Kubeconfig, env, "aws", "plan", "--allow-instance-type-change=m6i.large", "-o", "json")
	p := parseAWSPlan(t, r)
	if r.Code != 0 || p.count("ModifyInstanceAttribute") != len(workers) || !strings.Contains(noteFor(p, cp.ID), "--allow-control-plane-restart") {
		t.Fatalf("the control-plane instance must only be reported (a note naming --allow-control-plane-restart):\n%s", r)
	}
	for _, c := range p.Changes {
		if c.Resource == cp.ID {
			t.Errorf("plan changes the control-plane instance: %s", c.Operation)
		}
	}
	r = plugin(t, api.Kubeconfig, env, "aws", "plan", "--allow-instance-type-change=m6i.large", "--allow-control-plane-restart", "-o", "json")
	if p := parseAWSPlan(t, r); r.Code != 0 || p.count("ModifyInstanceAttribute") != len(workers)+1 {
		t.Fatalf("--allow-control-plane-restart should plan the control-plane instance too:\n%s", r)
	}

	// The type change fails after the instance was stopped: it runs again.
	proxy.Fail("ModifyInstanceAttribute", 1, harness.AWSFault{Status: 400, Code: "Unsupported", Message: "The requested configuration is currently not supported."})
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes", "--allow-instance-type-change=m6i.large"); r.Code != 1 || !strings.Contains(r.Stderr, "started again") {
		t.Fatalf("apply should fail and say the instance was started again:\n%s", r)
	}
	for _, w := range workers {
		if typ, state := instanceState(t, e, w.ID); typ != "m1.large" || state != "running" {
			t.Errorf("after the failed change %s is a %s, %s; want m1.large, running", w.Name, typ, state)
		}
	}

	// The next instance is stopped only once the previous one's Node is
	// Ready again: the Node goes NotReady with the machine and its kubelet
	// reports Ready a while after the machine runs again.
	proxy.Heal()
	proxy.Reset()
	var readyAt time.Time
	var mu sync.Mutex
	done := make(chan struct{})
	proxy.OnCall("StartInstances", func() {
		id := ""
		for _, op := range proxy.Ops() {
			if op.Action == "StartInstances" {
				id = op.Params.Get("InstanceId.1")
			}
		}
		setNodeReady(ctx, t, api, node[id], corev1.ConditionUnknown)
		go func() {
			defer close(done)
			time.Sleep(3 * time.Second)
			mu.Lock()
			readyAt = time.Now()
			mu.Unlock()
			setNodeReady(ctx, t, api, node[id], corev1.ConditionTrue)
		}()
	})
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes", "--allow-instance-type-change=m6i.large"); r.Code != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	<-done
	var stops []time.Time
	for _, op := range proxy.Ops() {
		if op.Action == "StopInstances" {
			stops = append(stops, op.At)
		}
	}
	mu.Lock()
	if len(stops) != len(workers) || !stops[1].After(readyAt) {
		t.Errorf("the second instance was stopped at %v, before the first one's Node was Ready again (%v)", stops, readyAt)
	}
	mu.Unlock()
	for _, w := range workers {
		if typ, state := instanceState(t, e, w.ID); typ != "m6i.large" || state != "running" {
			t.Errorf("after apply %s is a %s, %s; want m6i.large, running", w.Name, typ, state)
		}
	}
	if typ, _ := instanceState(t, e, cp.ID); typ != "m1.large" {
		t.Errorf("the control-plane instance was changed to %s", typ)
	}

	if r := plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes"); r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	for _, w := range workers {
		if typ, state := instanceState(t, e, w.ID); typ != "m1.large" || state != "running" {
			t.Errorf("after rollback %s is a %s, %s; want m1.large, running", w.Name, typ, state)
		}
	}
}
