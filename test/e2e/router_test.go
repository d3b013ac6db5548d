package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// routerService waits for openshift-ingress/router-default with a load
// balancer hostname, other than not, and returns it.
func waitRouterService(t *testing.T, api *harness.APIServer, not string) *corev1.Service {
	t.Helper()
	var svc *corev1.Service
	err := harness.WaitFor(context.Background(), 60*time.Second, "the router Service and its load balancer", func(ctx context.Context) (bool, error) {
		s, err := api.Kube.CoreV1().Services(harness.RouterNamespace).Get(ctx, harness.RouterServiceName, metav1.GetOptions{})
		if err != nil || s.DeletionTimestamp != nil || len(s.Status.LoadBalancer.Ingress) == 0 || s.Status.LoadBalancer.Ingress[0].Hostname == not {
			return false, nil
		}
		svc = s
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// strategyJSON is the IngressController's spec.endpointPublishingStrategy, as JSON.
func strategyJSON(t *testing.T, api *harness.APIServer) string {
	t.Helper()
	ic, err := api.Dynamic.Resource(harness.IngressControllersGVR).Namespace(harness.IngressOperatorNamespace).Get(context.Background(), harness.IngressControllerName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := ic.Object["spec"].(map[string]any)
	b, _ := json.Marshal(spec["endpointPublishingStrategy"])
	return string(b)
}

// TestRouterAsDualstackAdmin: OpenShift's default router behind its
// Classic ELB (the moto fixture's, as the installer leaves it), the cloud
// load balancer controller and an ingress operator simulator; as a user
// bound to dualstack-admin. status says *.apps stays IPv4-only, a plain
// upgrade leaves the router alone, `upgrade --phases router` patches the
// IngressController (never the Service), the operator re-creates the
// Service with an NLB, and rollback restores the IngressController's spec
// exactly (and the operator a Classic ELB again).
func TestRouterAsDualstackAdmin(t *testing.T) {
	ctx := context.Background()
	alice := harness.TokenUser{Name: "alice", Token: "alice-token-router-0123456789"}
	api, world, env := openShiftOnAWSWith(t, harness.APIServerOptions{RBAC: true, TokenUsers: []harness.TokenUser{alice}}, harness.OpenShiftOnAWSOptions{})
	role := loadClusterRole(t, adminRoleFile)
	bindRole(t, api.Kube, role, alice.Name)
	kcfg, err := api.UserKubeconfig(t.TempDir(), alice)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := awsTLS.AWSConfig(ctx, world.AWS.Region)
	if err != nil {
		t.Fatal(err)
	}
	var lbSubnets []string
	seen := map[string]bool{}
	for _, sub := range world.AWS.PublicSubnets() {
		if !seen[sub.AZ] {
			seen[sub.AZ] = true
			lbSubnets = append(lbSubnets, sub.ID)
		}
	}
	lbs := harness.StartLBController(api.Kube, cfg, world.AWS.ClusterTagKey, lbSubnets)
	defer lbs.Stop()
	if err := harness.CreateOpenShiftRouter(ctx, api.Kube, api.Dynamic, world.AWS); err != nil {
		t.Fatal(err)
	}
	classic := waitRouterService(t, api, "")
	op := harness.StartIngressOperator(api.Kube, api.Dynamic)
	defer op.Stop()
	strategyBefore := strategyJSON(t, api)

	st := parseStatus(t, plugin(t, kcfg, env, "status", "-o", "json"))
	s, msg, fix := st.check(t, "openshift-router")
	if s != "WARN" || !strings.Contains(msg, "Classic ELB") || !strings.Contains(msg, "*.apps stays IPv4-only") || !strings.Contains(fix, "router") {
		t.Errorf("openshift-router before: %s %q fix %q", s, msg, fix)
	}
	if s, msg, _ := st.check(t, "load-balancer-ipv6"); strings.Contains(msg, "or Classic") || s == "PASS" && !strings.Contains(msg, "Classic ELBs cannot serve IPv6") {
		t.Errorf("load-balancer-ipv6 counts Classic ELBs as dualstack: %s %q", s, msg)
	}

	// A plain upgrade never plans the router; `router --dry-run` changes nothing.
	for _, ph := range parseUpgrade(t, plugin(t, kcfg, env, "upgrade", "--dry-run=client", "-o", "json")).Plan.Phases {
		if ph.Name == "router" && ph.Action != "skipped" {
			t.Errorf("a plain upgrade plans the router: %s %s", ph.Action, ph.Summary)
		}
	}
	r := plugin(t, kcfg, env, "router", "--dry-run=client")
	for _, want := range []string{"NLB", "re-creates", "unreachable for minutes", "hostname changes"} {
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("router --dry-run=client lacks %q:\n%s", want, r)
		}
	}
	if r := plugin(t, kcfg, env, "router", "--dry-run=server"); r.Code != 2 {
		t.Errorf("router --dry-run=server: want exit 2:\n%s", r)
	}
	if strategyJSON(t, api) != strategyBefore {
		t.Fatal("a plan changed the IngressController")
	}

	r = plugin(t, kcfg, env, "upgrade", "--phases", "router", "--yes", "--timeout", "60s", "-o", "json")
	u := parseUpgrade(t, r)
	if r.Code != 0 || u.statuses()["router"] != "done" {
		t.Fatalf("upgrade --phases router:\n%s", r)
	}
	if got := strategyJSON(t, api); !strings.Contains(got, `"providerParameters":{"aws":{"type":"NLB"},"type":"AWS"}`) {
		t.Errorf("IngressController after: %s", got)
	}
	nlbSvc := waitRouterService(t, api, classic.Status.LoadBalancer.Ingress[0].Hostname)
	if nlbSvc.UID == classic.UID || nlbSvc.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"] != "nlb" {
		t.Errorf("the router Service was not re-created as an NLB: %+v", nlbSvc.ObjectMeta)
	}
	host := nlbSvc.Status.LoadBalancer.Ingress[0].Hostname
	out, err := elbv2.NewFromConfig(cfg).DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, lb := range out.LoadBalancers {
		if strings.EqualFold(*lb.DNSName, host) && lb.Type == elbv2types.LoadBalancerTypeEnumNetwork {
			found = true
		}
	}
	if !found {
		t.Errorf("no NLB with the router's new hostname %s", host)
	}
	t.Logf("router: %s -> %s (the operator re-created the Service %d time(s))", classic.Status.LoadBalancer.Ingress[0].Hostname, host, op.Recreated())
	st = parseStatus(t, plugin(t, kcfg, env, "status", "-o", "json"))
	if s, msg, _ := st.check(t, "openshift-router"); s != "WARN" || !strings.Contains(msg, "ipv4") {
		t.Errorf("openshift-router after, behind an IPv4 NLB: %s %q", s, msg)
	}

	r = plugin(t, kcfg, env, "rollback", "--yes", "--timeout", "60s")
	if r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	if got := strategyJSON(t, api); got != strategyBefore {
		t.Errorf("IngressController after rollback:\n got %s\nwant %s", got, strategyBefore)
	}
	back := waitRouterService(t, api, host)
	if back.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"] != "" {
		t.Errorf("after rollback the router Service still asks for an NLB: %v", back.Annotations)
	}
	if r := plugin(t, kcfg, env, "router", "--revert", "--yes"); r.Code != 0 || !strings.Contains(r.Stdout, "nothing to revert") {
		t.Errorf("router --revert after rollback:\n%s", r)
	}

	// Needed: without the role's patch rule, router fails naming it.
	for i, rule := range role.Rules {
		if contains(rule.Resources, "ingresscontrollers") && contains(rule.Verbs, "patch") {
			setRules(t, api.Kube, role.Name, without(role.Rules, i), alice.Name, probeOf(rule), false)
			r := plugin(t, kcfg, env, "router", "--yes", "--timeout", "20s")
			if line, ok := forbiddenByRule(r.Stdout+r.Stderr, rule); r.Code != 1 || !ok {
				t.Errorf("router without %s:\n%s", ruleString(rule), r)
			} else {
				t.Logf("without %s: %s", ruleString(rule), line)
			}
			setRules(t, api.Kube, role.Name, role.Rules, alice.Name, probeOf(rule), true)
		}
	}
	if got := strategyJSON(t, api); got != strategyBefore {
		t.Errorf("a forbidden router run changed the IngressController: %s", got)
	}
}
