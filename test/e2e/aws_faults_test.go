package e2e

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// dnsConfigGVR is OpenShift's dns.config.openshift.io.
var dnsConfigGVR = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "dnses"}

func awsProxy(t *testing.T) *harness.AWSProxy {
	t.Helper()
	p, err := harness.StartAWSProxy(t, awsTLS.Endpoint(), awsTLS.CAPEM())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAWSFaultsMidApply: throttling and a 5xx are retried by the SDK; an
// AccessDenied half-way stops apply with one message naming the operation
// and the IAM action; a re-run converges; rollback restores the state.
func TestAWSFaultsMidApply(t *testing.T) {
	api, world, motoEnv := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	proxy := awsProxy(t)
	env := proxy.Env(motoEnv)
	before := awsSnapshot(t, world.AWS.VPC.ID)

	proxy.Fail("AssociateSubnetCidrBlock", 2, harness.AWSFault{Status: 503, Code: "RequestLimitExceeded", Message: "Request limit exceeded."})
	proxy.Fail("CreateRoute", 1, harness.AWSFault{Status: 500, Code: "InternalError", Message: "An internal error has occurred"})
	proxy.Fail("AssignIpv6Addresses", -1, harness.AWSFault{Status: 403, Code: "UnauthorizedOperation", Message: "You are not authorized to perform this operation."})
	r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes")
	if r.Code != 1 {
		t.Fatalf("apply with AccessDenied must fail:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "AssignIpv6Addresses") || !strings.Contains(r.Stderr, "ec2:AssignIpv6Addresses") || !strings.Contains(r.Stderr, "iam-policy") {
		t.Errorf("the error should name the operation and the fix:\n%s", r)
	}
	if n := proxy.Count("AssociateSubnetCidrBlock"); n != 6+2 {
		t.Errorf("AssociateSubnetCidrBlock called %d times, want 8 (2 throttled, retried)", n)
	}

	proxy.Heal()
	r = plugin(t, api.Kubeconfig, env, "aws", "plan", "-o", "json")
	p := parseAWSPlan(t, r)
	if r.Code != 0 || p.count("AssignIpv6Addresses") != 6 || p.count("AssociateVpcCidrBlock") != 0 {
		t.Fatalf("plan after the partial apply should hold just what is left:\n%s", r)
	}
	r = plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes")
	if r.Code != 0 {
		t.Fatalf("re-run:\n%s", r)
	}
	checkDualStack(t, world.AWS)
	r = plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes")
	if r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	if got := awsSnapshot(t, world.AWS.VPC.ID); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Fatalf("rollback after a partial apply + re-run did not restore the state:\n%s", diffLines(before, got))
	}
}

// TestAWSRollbackAfterPartialApply: rollback alone completes from a journal
// an apply left half-done.
func TestAWSRollbackAfterPartialApply(t *testing.T) {
	api, world, motoEnv := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	proxy := awsProxy(t)
	env := proxy.Env(motoEnv)
	before := awsSnapshot(t, world.AWS.VPC.ID)
	proxy.Fail("ModifySubnetAttribute", -1, harness.AWSFault{Status: 400, Code: "InvalidParameterValue", Message: "injected"})
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes"); r.Code != 1 || !strings.Contains(r.Stderr, "ModifySubnetAttribute") {
		t.Fatalf("apply:\n%s", r)
	}
	proxy.Heal()
	if r := plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes"); r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	if got := awsSnapshot(t, world.AWS.VPC.ID); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Fatalf("rollback did not restore the state:\n%s", diffLines(before, got))
	}
}

// TestAWSBadInput: wrong credentials, unknown VPC, a cluster not on AWS.
func TestAWSBadInput(t *testing.T) {
	api, _, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	proxy := awsProxy(t)
	proxy.Fail("DescribeVpcs", -1, harness.AWSFault{Status: 401, Code: "AuthFailure", Message: "AWS was not able to validate the provided access credentials"})
	r := plugin(t, api.Kubeconfig, proxy.Env(env), "aws", "discover")
	if r.Code != 1 || !strings.Contains(r.Stderr, "DescribeVpcs") || !strings.Contains(r.Stderr, "credentials were rejected") || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("wrong credentials:\n%s", r)
	}
	r = plugin(t, api.Kubeconfig, env, "aws", "discover", "--vpc-id", "vpc-00000000000000000")
	if r.Code != 1 || !strings.Contains(r.Stderr, "vpc-00000000000000000") || !strings.Contains(r.Stderr, "--vpc-id") {
		t.Errorf("unknown VPC:\n%s", r)
	}

	kind := startAPIServer(t, harness.APIServerOptions{})
	if err := harness.CreateNodes(t.Context(), kind.Kube, []harness.NodeSpec{{Name: "kind-control-plane", ProviderID: "kind://docker/kind/kind-control-plane", InternalIPs: []string{"172.18.0.2"}}}); err != nil {
		t.Fatal(err)
	}
	r = plugin(t, kind.Kubeconfig, env, "aws", "plan")
	if r.Code != 1 || !strings.Contains(r.Stderr, "does not run on AWS") || !strings.Contains(r.Stderr, "--vpc-id") {
		t.Errorf("not on AWS:\n%s", r)
	}
}

// TestAWSIAMPolicyCoversCalls records every call of discover, plan, apply
// (with an instance type change) and rollback and proves the policy lists
// each one and nothing unused.
func TestAWSIAMPolicyCoversCalls(t *testing.T) {
	api, world, motoEnv := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{IPI: moto.IPIOptions{WorkerInstanceType: "m1.large", Workers: 1,
		NetworkACLs: true, HostedZones: &moto.HostedZoneOptions{}}})
	proxy := awsProxy(t)
	env := proxy.Env(motoEnv)
	// The dns commands find the zones every way there is: by ID
	// (--hosted-zone), through OpenShift's DNS config (the private zone by
	// its tags, the public one by ID), and, without that config, as the
	// private zones of the VPC.
	for _, args := range [][]string{
		{"aws", "discover"}, {"aws", "plan"}, {"aws", "apply", "--yes", "--allow-instance-type-change=m6i.large"},
		{"dns", "plan", "--hosted-zone", world.AWS.PrivateZone.ID}, {"dns", "apply", "--yes"}, {"dns", "rollback", "--yes"},
		{"aws", "rollback", "--yes"},
	} {
		if r := plugin(t, api.Kubeconfig, env, args...); r.Code != 0 {
			t.Fatalf("%v:\n%s", args, r)
		}
	}
	if err := api.Dynamic.Resource(dnsConfigGVR).Delete(t.Context(), "cluster", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := plugin(t, api.Kubeconfig, env, "dns", "plan"); r.Code != 0 || !strings.Contains(r.Stdout, "private zone associated with VPC") {
		t.Fatalf("dns plan without OpenShift's DNS config:\n%s", r)
	}
	called := map[string]bool{}
	for _, op := range proxy.Ops() {
		called[op.IAM()] = true
	}
	r := plugin(t, api.Kubeconfig, nil, "aws", "iam-policy", "--allow-instance-type-change")
	var doc struct {
		Statement []struct{ Action []string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || r.Code != 0 {
		t.Fatalf("iam-policy: %v\n%s", err, r)
	}
	listed := map[string]bool{}
	for _, s := range doc.Statement {
		for _, a := range s.Action {
			listed[a] = true
		}
	}
	// Authorization-only: AWS checks ec2:CreateTags for TagSpecifications on create.
	authOnly := []string{"ec2:CreateTags"}
	var missing, unused []string
	for a := range called {
		if !listed[a] {
			missing = append(missing, a)
		}
	}
	for a := range listed {
		if !called[a] && !slices.Contains(authOnly, a) {
			unused = append(unused, a)
		}
	}
	sort.Strings(missing)
	sort.Strings(unused)
	if len(missing) > 0 || len(unused) > 0 {
		t.Errorf("policy vs calls: missing %v, unused %v", missing, unused)
	}

	// --for plan is the read-only subset, and covers discover and plan.
	proxy.Reset()
	for _, args := range [][]string{{"aws", "discover"}, {"aws", "plan"}, {"dns", "plan"}, {"dns", "plan", "--hosted-zone", world.AWS.PublicZone.ID}} {
		plugin(t, api.Kubeconfig, env, args...)
	}
	r = plugin(t, api.Kubeconfig, nil, "aws", "iam-policy", "--for", "plan")
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		t.Fatal(err)
	}
	readOnly := map[string]bool{}
	for _, s := range doc.Statement {
		for _, a := range s.Action {
			readOnly[a] = true
			if !strings.Contains(a, ":Describe") && !strings.Contains(a, ":List") && !strings.Contains(a, ":Get") {
				t.Errorf("--for plan lists a non-read action %s", a)
			}
		}
	}
	for _, op := range proxy.Ops() {
		if !readOnly[op.IAM()] {
			t.Errorf("plan calls %s, not in --for plan", op.IAM())
		}
	}
}

// TestAWSStatusUnderlay: status judges the underlay when AWS is reachable
// (FAIL before apply, PASS after), and says WARN when it is not.
func TestAWSStatusUnderlay(t *testing.T) {
	api, _, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	names := []string{"vpc-ipv6", "subnet-ipv6", "ipv6-routes", "egress-only-gateway", "security-group-ipv6", "network-acl-ipv6", "instance-ipv6", "load-balancer-ipv6"}
	s := parseStatus(t, plugin(t, api.Kubeconfig, env, "status", "-o", "json"))
	for _, n := range names {
		expectVerdicts(t, s, map[string]string{n: "FAIL"})
	}
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes"); r.Code != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	s = parseStatus(t, plugin(t, api.Kubeconfig, env, "status", "-o", "json"))
	for _, n := range names {
		expectVerdicts(t, s, map[string]string{n: "PASS"})
	}
	// No credentials and no endpoint: a warning, not a failure of status.
	noAWS := []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_ENDPOINT_URL=", "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
	start := time.Now()
	r := plugin(t, api.Kubeconfig, noAWS, "status", "-o", "json")
	s = parseStatus(t, r)
	expectVerdicts(t, s, map[string]string{"aws-reachable": "WARN"})
	if time.Since(start) > 30*time.Second {
		t.Errorf("status took %s without AWS", time.Since(start))
	}
}
