package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// upgradeJSON mirrors the stable fields of `upgrade -o json`.
type upgradeJSON struct {
	Outcome string `json:"outcome"`
	Message string `json:"message"`
	Plan    struct {
		Phases []struct {
			Name, Action, Summary string
			Details               []string
		} `json:"phases"`
		Blockers []string `json:"blockers"`
	} `json:"plan"`
	Phases []struct {
		Name, Status, Message string
	} `json:"phases"`
}

func parseUpgrade(t *testing.T, r result) upgradeJSON {
	t.Helper()
	var u upgradeJSON
	if err := json.Unmarshal([]byte(r.Stdout), &u); err != nil {
		t.Fatalf("upgrade -o json is not JSON: %v\n%s", err, r)
	}
	return u
}

// statuses maps phase name to its status.
func (u upgradeJSON) statuses() map[string]string {
	m := map[string]string{}
	for _, p := range u.Phases {
		m[p.Name] = p.Status
	}
	return m
}

func expectPhases(t *testing.T, r result, u upgradeJSON, want map[string]string) {
	t.Helper()
	got := u.statuses()
	for name, status := range want {
		if got[name] != status {
			t.Errorf("phase %s: %q, want %q (all: %v)\n%s", name, got[name], status, got, r)
		}
	}
}

func conversionSandbox(t *testing.T, o harness.ConversionSandboxOptions) *harness.ConversionSandbox {
	t.Helper()
	ctx := context.Background()
	if err := awsTLS.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := harness.BuildConversionSandbox(ctx, t, awsTLS, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func awsPlanChanges(t *testing.T, kubeconfig string) int {
	t.Helper()
	r := plugin(t, kubeconfig, awsTLS.Env(), "aws", "plan", "-o", "json")
	var p struct {
		Changes []json.RawMessage `json:"changes"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &p) != nil {
		t.Fatalf("aws plan:\n%s", r)
	}
	return len(p.Changes)
}

func TestUpgradeConvertsTheWholeCluster(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()

	before := parseStatus(t, plugin(t, kcfg, env, "status", "-o", "json"))
	if v := before.verdicts(); v["openshift-network"] != "FAIL" || v["node-internal-ips"] != "FAIL" {
		t.Fatalf("the sandbox should start IPv4-only: %v", v)
	}

	// The application that exists before the conversion: its Services were
	// made single-stack and stay so unless the services phase changes them.
	ctx := context.Background()
	web, err := s.API.Kube.CoreV1().Services(harness.ApplicationNamespace).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || len(web.Spec.ClusterIPs) != 1 {
		t.Fatalf("shop/web: %v %v", err, web.Spec.ClusterIPs)
	}

	// Before: the mesh is not dual-stack and the gateway's proxies serve
	// IPv4 only; the application's pods are IPv4-only.
	if harness.IstioDualStackNow(ctx, s.API.Kube) || s.Proxies.ServesIPv6(ctx) {
		t.Fatal("the sandbox should start with Istio single-stack")
	}
	if v := before.verdicts(); v["pods"] != "WARN" || v["proxy-dual-stack"] == "PASS" {
		t.Fatalf("status before: %v", v)
	}
	// What a plain upgrade leaves alone: the NetworkPolicies and OpenShift's
	// router (both only when --phases names them).
	policiesBefore, _ := policySpecs(ctx, t, s.API.Kube)
	routerBefore := strategyJSON(t, s.API)
	routerSvc := waitRouterService(t, s.API, "")
	pdbs, err := harness.StartPDBWatch(ctx, s.API.Kube)
	if err != nil {
		t.Fatal(err)
	}
	defer pdbs.Stop()

	start := time.Now()
	r := plugin(t, kcfg, env, "upgrade", "--yes", "--recreate-gateway", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	u := parseUpgrade(t, r)
	t.Logf("upgrade took %s", time.Since(start).Round(time.Millisecond))
	// The last mile: every controller-managed pod of the application came
	// back with both families, through evictions no budget ever refused
	// below its minimum; the pod no controller manages is left alone.
	for _, line := range pdbs.Summary() {
		t.Logf("pdb watch: %s", line)
	}
	if v := pdbs.Violations(); len(v) > 0 {
		t.Errorf("PodDisruptionBudgets violated during the upgrade: %v", v)
	}
	appPods, err := harness.ApplicationPods(ctx, s.API.Kube)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range appPods {
		if len(p.Status.PodIPs) != 2 {
			t.Errorf("pod %s/%s after upgrade: pod IPs %v", p.Namespace, p.Name, p.Status.PodIPs)
		}
	}
	if bare, err := s.API.Kube.CoreV1().Pods(harness.ApplicationNamespace).Get(ctx, harness.ApplicationBarePod, metav1.GetOptions{}); err != nil || len(bare.Status.PodIPs) != 1 {
		t.Errorf("the bare pod was not left alone: %v %v", err, bare.Status.PodIPs)
	}
	if !harness.IstioDualStackNow(ctx, s.API.Kube) || !s.Proxies.ServesIPv6(ctx) {
		t.Errorf("after upgrade: istiod dual-stack %t, gateway proxies serve IPv6 %t", harness.IstioDualStackNow(ctx, s.API.Kube), s.Proxies.ServesIPv6(ctx))
	}
	if web, err = s.API.Kube.CoreV1().Services("shop").Get(ctx, "web", metav1.GetOptions{}); err != nil || len(web.Spec.ClusterIPs) != 2 ||
		web.Spec.IPFamilyPolicy == nil || *web.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyPreferDualStack {
		t.Errorf("shop/web after upgrade: %v %v %v", err, web.Spec.IPFamilyPolicy, web.Spec.ClusterIPs)
	}
	if r.Code != 0 || u.Outcome != "converted" {
		t.Fatalf("upgrade: outcome %q\n%s", u.Outcome, r)
	}
	expectPhases(t, r, u, map[string]string{"aws": "done", "nodes": "done", "network": "done", "mesh": "done", "services": "done", "workloads": "done", "gateway": "done", "validate": "done"})
	// The nodes got their IPv6 InternalIPs from the cloud provider, because
	// its config lists ipv6 now, and from nothing else.
	cc, err := s.API.Kube.CoreV1().ConfigMaps(harness.CloudConfigNamespace).Get(ctx, harness.CloudConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fam, err := harness.ReadNodeIPFamilies(cc.Data[harness.CloudConfigKey]); err != nil || strings.Join(fam, ",") != "ipv4,ipv6" {
		t.Errorf("the cloud config, as cloud-provider-aws reads it: %v %v\n%q", fam, err, cc.Data[harness.CloudConfigKey])
	}
	if fam, err := s.Nodes.Families(); err != nil || strings.Join(fam, ",") != "ipv4,ipv6" || s.Nodes.Restarts() == 0 {
		t.Errorf("the cloud controller runs with %v (%v), restarted %d times", fam, err, s.Nodes.Restarts())
	}
	for _, p := range u.Phases {
		if p.Name == "validate" && !strings.Contains(p.Message, "12/12 checks passed") {
			t.Errorf("validate: %q", p.Message)
		}
	}
	// The plan said the network and the gateway come after the underlay,
	// and that a Classic ELB gateway is re-created.
	for _, p := range u.Plan.Phases {
		switch p.Name {
		case "nodes", "network":
			// The nodes need the ENIs' IPv6 (aws), the network the
			// nodes' (nodes).
			if p.Action != "after-underlay" {
				t.Errorf("%s plan %q: %s", p.Name, p.Action, p.Summary)
			}
		case "gateway":
			// The new NLB goes into the Classic ELB's subnets: after the underlay.
			if p.Action != "after-underlay" || !strings.Contains(p.Summary, "--recreate-gateway") {
				t.Errorf("gateway plan %q: %s", p.Action, p.Summary)
			}
		}
	}
	for _, step := range []string{"[1/9] aws", "[2/9] nodes", "[3/9] network", "[4/9] mesh", "[5/9] services", "[6/9] workloads", "[7/9] gateway", "[9/9] validate"} { // [8/9] dns: the sandbox has no hosted zone
		if !strings.Contains(r.Stderr, step+": done") {
			t.Errorf("no progress line %q:\n%s", step+": done", r.Stderr)
		}
	}

	if now, _ := policySpecs(ctx, t, s.API.Kube); !equalMaps(now, policiesBefore) {
		t.Errorf("a plain upgrade changed NetworkPolicies:\n%v\nwas %v", now, policiesBefore)
	}
	if now := strategyJSON(t, s.API); now != routerBefore {
		t.Errorf("a plain upgrade changed the IngressController: %s, was %s", now, routerBefore)
	}
	if now := waitRouterService(t, s.API, ""); now.UID != routerSvc.UID || s.IngressOperator.Recreated() != 0 {
		t.Errorf("a plain upgrade had the router Service re-created")
	}

	// Status agrees, layer by layer; the pods have IPv6 now, so the
	// application's NetworkPolicy, which the plain upgrade left alone,
	// blocks their IPv6 egress until its twin is added.
	after := parseStatus(t, plugin(t, kcfg, env, "status", "-o", "json"))
	if st, msg, fix := after.check(t, "network-policy-ipv6"); st != "FAIL" || !strings.Contains(msg, "-> add ::/0 except fd00:ec2::254/128") || !strings.Contains(fix, "policies apply") {
		t.Errorf("network-policy-ipv6 after a plain upgrade: %s %q (fix %q)", st, msg, fix)
	}
	r = plugin(t, kcfg, env, "upgrade", "--phases", "policies", "--yes", "-o", "json")
	if u := parseUpgrade(t, r); r.Code != 0 || u.statuses()["policies"] != "done" {
		t.Fatalf("upgrade --phases policies:\n%s", r)
	}
	after = parseStatus(t, plugin(t, kcfg, env, "status", "-o", "json"))
	for _, c := range after.Checks {
		t.Logf("status after: %s %s %s: %s", c.Layer, c.Name, c.Status, c.Message)
		if c.Status == "FAIL" {
			t.Errorf("status after upgrade: %s/%s FAIL: %s", c.Layer, c.Name, c.Message)
		}
	}
	expectVerdicts(t, after, map[string]string{"node-internal-ips": "PASS", "openshift-network": "PASS", "network-policy-ipv6": "PASS", "openshift-router": "WARN"})

	// A second run changes nothing and says so.
	r = plugin(t, kcfg, env, "upgrade", "--recreate-gateway", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	u = parseUpgrade(t, r)
	if r.Code != 0 || u.Outcome != "nothing-to-do" {
		t.Fatalf("second upgrade (no --yes, nothing to confirm): outcome %q\n%s", u.Outcome, r)
	}
	expectPhases(t, r, u, map[string]string{"aws": "already-done", "nodes": "already-done", "network": "already-done", "mesh": "already-done", "services": "already-done", "workloads": "already-done", "gateway": "already-done", "validate": "already-done"})
	if n := awsPlanChanges(t, kcfg); n != 0 {
		t.Errorf("aws plan after upgrade: %d changes", n)
	}
}

func TestUpgradeStopsBeforeAnyChangeOnAWS412(t *testing.T) {
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{Version: "4.12.3"})
	planned := awsPlanChanges(t, api.Kubeconfig)

	r := plugin(t, api.Kubeconfig, env, "upgrade", "--yes", "-o", "json")
	u := parseUpgrade(t, r)
	if r.Code != 1 || u.Outcome != "blocked" {
		t.Fatalf("upgrade on OpenShift 4.12 on AWS: outcome %q\n%s", u.Outcome, r)
	}
	blockers := strings.Join(u.Plan.Blockers, "\n")
	for _, want := range []string{"network: OpenShift 4.12.3 on AWS", "refuses", "--force-network"} {
		if !strings.Contains(blockers, want) {
			t.Errorf("blockers do not say %q:\n%s", want, blockers)
		}
	}
	// The Classic ELB gateway is no blocker: it is planned as a migration
	// without downtime (once the aws phase gives its subnets IPv6).
	if strings.Contains(blockers, "gateway") {
		t.Errorf("the Classic ELB gateway blocks:\n%s", blockers)
	}
	for _, p := range u.Plan.Phases {
		if p.Name == "gateway" && (!strings.Contains(p.Summary, "without downtime") || !strings.Contains(p.Summary, "istio-ingressgateway-dualstack") || !strings.Contains(p.Summary, "--recreate-gateway")) {
			t.Errorf("the gateway phase's plan should be a migration: %+v", p)
		}
	}
	// The node IPv6 the underlay gives is not a blocker: it comes after the underlay.
	if strings.Contains(blockers, "IPv6 InternalIP") {
		t.Errorf("a missing node IPv6 address is reported as a blocker:\n%s", blockers)
	}
	expectPhases(t, r, u, map[string]string{"aws": "not-run", "network": "not-run", "gateway": "not-run", "validate": "not-run"})

	// AWS is untouched.
	if n := awsPlanChanges(t, api.Kubeconfig); n != planned {
		t.Errorf("aws plan: %d changes after the blocked upgrade, %d before", n, planned)
	}
	cfg, err := awsTLS.AWSConfig(context.Background(), world.AWS.Region)
	if err != nil {
		t.Fatal(err)
	}
	vpcs, err := ec2.NewFromConfig(cfg).DescribeVpcs(context.Background(), &ec2.DescribeVpcsInput{VpcIds: []string{world.AWS.VPC.ID}})
	if err != nil || len(vpcs.Vpcs) != 1 || len(vpcs.Vpcs[0].Ipv6CidrBlockAssociationSet) != 0 {
		t.Errorf("the VPC changed: %+v %v", vpcs, err)
	}
	if _, err := api.Kube.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "dualstack-journal", metav1.GetOptions{}); err == nil {
		t.Error("a journal was written by a blocked upgrade")
	}

	// The table says the same to a person.
	r = plugin(t, api.Kubeconfig, env, "upgrade", "--yes")
	if r.Code != 1 || !strings.Contains(r.Stdout, "Blocked: nothing will be changed") || !strings.Contains(r.Stdout, "--force-network") {
		t.Errorf("table:\n%s", r)
	}
}

func TestUpgradePhasesSubsetThenResumeAfterAFailure(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	planned := awsPlanChanges(t, kcfg)

	// No terminal and no --yes: the plan, then a stop.
	r := plugin(t, kcfg, env, "upgrade", "--recreate-gateway", "--dns-server", s.DNSAddr())
	if r.Code != 1 || !strings.Contains(r.Stdout, "Upgrade plan:") || !strings.Contains(r.Stderr, "Re-run with --yes") {
		t.Fatalf("upgrade without --yes:\n%s", r)
	}
	if n := awsPlanChanges(t, kcfg); n != planned {
		t.Fatalf("unconfirmed upgrade changed AWS: %d planned changes left of %d", n, planned)
	}

	// Only the underlay.
	r = plugin(t, kcfg, env, "upgrade", "--yes", "--phases", "aws", "-o", "json")
	u := parseUpgrade(t, r)
	if r.Code != 0 {
		t.Fatalf("upgrade --phases aws:\n%s", r)
	}
	expectPhases(t, r, u, map[string]string{"aws": "done", "nodes": "skipped", "network": "skipped", "gateway": "skipped", "validate": "skipped"})
	// The instances have IPv6 now, but no node reports it: the cloud
	// provider lists ipv4 only until the nodes phase changes its config.
	if st := parseStatus(t, plugin(t, kcfg, env, "status", "-o", "json")); st.verdicts()["node-internal-ips"] != "FAIL" {
		t.Errorf("node-internal-ips after --phases aws: %v", st.verdicts())
	}
	if n := awsPlanChanges(t, kcfg); n != 0 {
		t.Fatalf("aws plan after --phases aws: %d changes", n)
	}

	// The network operator is stuck: the network phase times out and the
	// run stops there, saying how to go on.
	s.Operator.Pause()
	r = plugin(t, kcfg, env, "upgrade", "--yes", "--recreate-gateway", "--dns-server", s.DNSAddr(), "--timeout", "4s", "-o", "json")
	u = parseUpgrade(t, r)
	if r.Code != 1 || u.Outcome != "failed" {
		t.Fatalf("upgrade with a stuck operator: outcome %q\n%s", u.Outcome, r)
	}
	expectPhases(t, r, u, map[string]string{"aws": "already-done", "nodes": "done", "network": "failed", "services": "not-run", "gateway": "not-run", "validate": "not-run"})
	for _, want := range []string{"stopped at phase network", "Not done: network, mesh, services, workloads, gateway, validate", "To resume", "upgrade --dns-server=" + s.DNSAddr() + " --recreate-gateway=true --timeout=4s --yes", "kubectl dualstack rollback --yes"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.Stderr)
		}
	}
	svc, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(context.Background(), harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil || svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy != "SingleStack" {
		t.Errorf("the gateway was touched after the failed phase: %v %v", svc.Spec.IPFamilyPolicy, err)
	}

	// The operator recovers; the re-run picks up at the network phase.
	s.Operator.Resume()
	r = plugin(t, kcfg, env, "upgrade", "--yes", "--recreate-gateway", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	u = parseUpgrade(t, r)
	if r.Code != 0 || u.Outcome != "converted" {
		t.Fatalf("resumed upgrade: outcome %q\n%s", u.Outcome, r)
	}
	// The operator may have rolled the requested IPv6 out before the re-run
	// looked: then the network phase is already done, else it finishes now.
	if st := u.statuses()["network"]; st != "done" && st != "already-done" {
		t.Errorf("network phase of the resumed run: %q\n%s", st, r)
	}
	expectPhases(t, r, u, map[string]string{"aws": "already-done", "nodes": "already-done", "gateway": "done", "validate": "done"})
	for _, p := range u.Plan.Phases {
		if p.Name == "aws" && !strings.Contains(p.Summary, "completed by an earlier upgrade") {
			t.Errorf("the plan does not report the aws phase done earlier: %q", p.Summary)
		}
	}
}

func TestUpgradeBadPhasesExit2(t *testing.T) {
	r := plugin(t, t.TempDir()+"/absent", nil, "upgrade", "--phases", "aws,bogus")
	if r.Code != 2 || !strings.Contains(r.Stderr, `unknown phase "bogus"`) || !strings.Contains(r.Stderr, "aws,nodes,network,mesh,services,policies,workloads,gateway,router,dns,validate") {
		t.Fatalf("bad --phases:\n%s", r)
	}
}
