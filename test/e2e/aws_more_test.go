package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// A kubeadm cluster on EC2 has no Infrastructure object: the plugin finds
// region, VPC and infraID through the nodes' providerIDs and the instances'
// cluster tag.
func TestAWSKubeadmResolvedByProviderIDs(t *testing.T) {
	ctx := context.Background()
	if err := awsTLS.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := awsTLS.AWSConfig(ctx, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	world, err := moto.BuildOpenShiftIPI(ctx, cfg, moto.IPIOptions{InfraID: "kubeadm-q8w2e", Region: "eu-west-1", NoRouterELB: true})
	if err != nil {
		t.Fatal(err)
	}
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16"})
	kubeadmConfigMap(ctx, t, api)
	var nodes []harness.NodeSpec
	for _, inst := range world.Instances {
		labels := map[string]string{}
		if inst.Role == moto.RoleControlPlane {
			labels["node-role.kubernetes.io/control-plane"] = ""
		}
		nodes = append(nodes, harness.NodeSpec{Name: inst.PrivateDNSName, ProviderID: inst.ProviderID(), InternalIPs: []string{inst.PrivateIP}, Labels: labels})
	}
	if err := harness.CreateNodes(ctx, api.Kube, nodes); err != nil {
		t.Fatal(err)
	}
	// No region in the environment: it must come from the providerIDs.
	var env []string
	for _, kv := range awsTLS.Env() {
		if !strings.HasPrefix(kv, "AWS_REGION=") {
			env = append(env, kv)
		}
	}

	r := plugin(t, api.Kubeconfig, env, "aws", "discover", "-o", "json")
	var inv struct {
		Region     string   `json:"region"`
		InfraID    string   `json:"infraID"`
		ResolvedBy []string `json:"resolvedBy"`
		VPC        struct {
			ID string `json:"id"`
		} `json:"vpc"`
		Instances []struct {
			ID           string `json:"id"`
			ControlPlane bool   `json:"controlPlane"`
		} `json:"instances"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &inv) != nil {
		t.Fatalf("aws discover:\n%s", r)
	}
	if inv.Region != "eu-west-1" || inv.VPC.ID != world.VPC.ID || inv.InfraID != world.InfraID || len(inv.Instances) != len(world.Instances) {
		t.Fatalf("resolved %+v, want region eu-west-1, VPC %s, infraID %s", inv, world.VPC.ID, world.InfraID)
	}
	if joined := strings.Join(inv.ResolvedBy, "; "); !strings.Contains(joined, "providerID") {
		t.Fatalf("discover must say how it found the cluster: %q", joined)
	}
	cp := 0
	for _, i := range inv.Instances {
		if i.ControlPlane {
			cp++
		}
	}
	if cp != len(world.InstancesByRole(moto.RoleControlPlane)) {
		t.Fatalf("%d control-plane instances recognised, want %d", cp, len(world.InstancesByRole(moto.RoleControlPlane)))
	}
	if r := plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json"); r.Code != 0 || parseAWSPlan(t, r).count("AssociateVpcCidrBlock") != 1 {
		t.Fatalf("aws plan:\n%s", r)
	}
}

// Forty subnets and instances: every subnet gets its own /64 of the /56, and
// a second plan is empty.
func TestAWSManySubnets(t *testing.T) {
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{IPI: moto.IPIOptions{Subnets: 40, Workers: 37}})
	before := awsSnapshot(t, world.AWS.VPC.ID)
	r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes", "-o", "json", "-v=6")
	if r.Code != 0 {
		t.Fatalf("aws apply:\n%s", r)
	}
	checkDualStack(t, world.AWS)
	// The journal is written in batches (64 changes a write with
	// --parallel 4, done records riding along), not twice per change.
	applied := parseAWSPlan(t, r)
	writes := len(journalWrite.FindAllString(r.Stderr, -1))
	if n := len(applied.Changes); n < 100 || writes == 0 || writes > n/64+10 {
		t.Fatalf("%d changes took %d journal writes, want at most %d", n, writes, n/64+10)
	}
	t.Logf("%d changes, %d journal writes", len(applied.Changes), writes)
	if p := parseAWSPlan(t, plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json")); len(p.Changes) != 0 {
		t.Fatalf("second plan has %d changes: %+v", len(p.Changes), p.Changes)
	}
	cfg, _ := awsTLS.AWSConfig(context.Background(), "")
	out, err := ec2.NewFromConfig(cfg).DescribeSubnets(context.Background(), &ec2.DescribeSubnetsInput{
		Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{world.AWS.VPC.ID}}}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range out.Subnets {
		for _, a := range s.Ipv6CidrBlockAssociationSet {
			if strings.Contains(string(a.Ipv6CidrBlockState.State), "disassociat") {
				continue
			}
			if seen[aws.ToString(a.Ipv6CidrBlock)] {
				t.Fatalf("/64 %s given twice", aws.ToString(a.Ipv6CidrBlock))
			}
			seen[aws.ToString(a.Ipv6CidrBlock)] = true
		}
	}
	if len(seen) != 40 {
		t.Fatalf("%d subnets have a /64, want 40", len(seen))
	}
	if r := plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes"); r.Code != 0 {
		t.Fatalf("aws rollback:\n%s", r)
	}
	if d := diffLines(before, awsSnapshot(t, world.AWS.VPC.ID)); d != "" {
		t.Fatalf("rollback of the batched apply did not restore the VPC:\n%s", d)
	}
}

// A VPC that already has an IPv6 block and an IPv6 rule: apply adds the rest,
// and rollback leaves what was there before untouched.
func TestAWSExistingIPv6IsKept(t *testing.T) {
	ctx := context.Background()
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	cfg, _ := awsTLS.AWSConfig(ctx, "")
	e := ec2.NewFromConfig(cfg)
	if _, err := e.AssociateVpcCidrBlock(ctx, &ec2.AssociateVpcCidrBlockInput{VpcId: aws.String(world.AWS.VPC.ID), AmazonProvidedIpv6CidrBlock: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	sg := world.AWS.SecurityGroups[0].ID
	mine := ec2types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(8443), ToPort: aws.Int32(8443),
		Ipv6Ranges: []ec2types.Ipv6Range{{CidrIpv6: aws.String("2001:db8::/32"), Description: aws.String("pre-existing")}}}
	if _, err := e.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(sg), IpPermissions: []ec2types.IpPermission{mine}}); err != nil {
		t.Fatal(err)
	}
	before := awsSnapshot(t, world.AWS.VPC.ID)

	p := parseAWSPlan(t, plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json"))
	if p.count("AssociateVpcCidrBlock") != 0 || p.count("AssociateSubnetCidrBlock") != 6 {
		t.Fatalf("plan on a VPC with a /56: %d VPC blocks, %d subnet blocks", p.count("AssociateVpcCidrBlock"), p.count("AssociateSubnetCidrBlock"))
	}
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes"); r.Code != 0 {
		t.Fatalf("aws apply:\n%s", r)
	}
	checkDualStack(t, world.AWS)
	if r := plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes"); r.Code != 0 {
		t.Fatalf("aws rollback:\n%s", r)
	}
	after := awsSnapshot(t, world.AWS.VPC.ID)
	if !slices.Equal(before, after) {
		t.Fatalf("rollback did not restore the state with the pre-existing IPv6:\n%s", diffLines(before, after))
	}
	if !slices.ContainsFunc(after, func(l string) bool { return strings.Contains(l, "2001:db8::/32") }) {
		t.Fatal("the pre-existing IPv6 rule is gone")
	}
}

// --dry-run=server sends every EC2 change with DryRun=true and writes no
// journal. (moto ignores DryRun on some operations, e.g. CreateRoute, so what
// is asserted is what the plugin sends, seen on the wire, not moto's state.)
func TestAWSServerDryRunChangesNothing(t *testing.T) {
	api, _, motoEnv := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	proxy := awsProxy(t)
	r := plugin(t, api.Kubeconfig, proxy.Env(motoEnv), "aws", "apply", "--dry-run=server", "-o", "json")
	res := parseAWSPlan(t, r)
	statuses := map[string]int{}
	for _, c := range res.Changes {
		statuses[c.Status]++
	}
	if r.Code != 0 || statuses["dry-run"] == 0 || statuses["applied"] != 0 {
		t.Fatalf("statuses %v:\n%s", statuses, r)
	}
	mutations := 0
	for _, op := range proxy.Ops() {
		if op.Service != "ec2" || strings.HasPrefix(op.Action, "Describe") {
			continue
		}
		mutations++
		if !op.DryRun {
			t.Errorf("%s was sent without DryRun during --dry-run=server", op.Action)
		}
	}
	if mutations == 0 {
		t.Fatal("no EC2 change was sent for checking")
	}
	if _, err := api.Kube.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "dualstack-journal", metav1GetOptions()); err == nil {
		t.Fatal("a dry run must not write the journal")
	}
}
