package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	rbacauthz "k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// The least-privilege ClusterRoles users bind; the tests load them from the
// repository as they are shipped.
const (
	adminRoleFile  = "clusterrole.yaml"
	viewerRoleFile = "clusterrole-viewer.yaml"
)

func loadClusterRole(t *testing.T, file string) *rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	var cr rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &cr); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if cr.Kind != "ClusterRole" || cr.Name == "" || len(cr.Rules) == 0 {
		t.Fatalf("%s is not a ClusterRole with rules: %+v", file, cr)
	}
	return &cr
}

// bindRole creates cr and a ClusterRoleBinding of it to user.
func bindRole(t *testing.T, kc kubernetes.Interface, cr *rbacv1.ClusterRole, user string) {
	t.Helper()
	if err := harness.GrantClusterRole(context.Background(), kc, cr.Name, user, cr.Rules); err != nil {
		t.Fatal(err)
	}
}

// setRules replaces the ClusterRole's rules and, given a probe (a request
// the rules decide), waits until the apiserver's RBAC authorizer sees the
// change: probe is allowed or not as want says. (The KubeFaultProxy reads
// roles live: no probe needed.)
func setRules(t *testing.T, kc kubernetes.Interface, name string, rules []rbacv1.PolicyRule, user string, probe *authzv1.ResourceAttributes, want bool) {
	t.Helper()
	ctx := context.Background()
	cr, err := kc.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cr.Rules = rules
	if _, err := kc.RbacV1().ClusterRoles().Update(ctx, cr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if probe == nil {
		return
	}
	err = harness.WaitFor(ctx, 10*time.Second, "the RBAC change", func(ctx context.Context) (bool, error) {
		sar, err := kc.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:authenticated"}, ResourceAttributes: probe,
		}}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return sar.Status.Allowed == want, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func without(rules []rbacv1.PolicyRule, i int) []rbacv1.PolicyRule {
	return append(append([]rbacv1.PolicyRule(nil), rules[:i]...), rules[i+1:]...)
}

func ruleString(r rbacv1.PolicyRule) string {
	s := fmt.Sprintf("%v %v %v", r.APIGroups, r.Resources, r.Verbs)
	if len(r.ResourceNames) > 0 {
		s += fmt.Sprintf(" names=%v", r.ResourceNames)
	}
	return s
}

// forbiddenLine is the apiserver's RBAC denial: `cannot VERB resource "RES"`
// (`in API group "G"` for named groups).
var forbiddenLine = regexp.MustCompile(`cannot (\w+) resource "([a-z/]+)"(?: in API group "([a-z0-9.-]+)")?`)

// forbiddenByRule reports whether out names a verb and resource the rule
// grants as forbidden.
func forbiddenByRule(out string, r rbacv1.PolicyRule) (string, bool) {
	out = strings.ReplaceAll(out, `\"`, `"`) // as JSON output quotes it
	for _, m := range forbiddenLine.FindAllStringSubmatch(out, -1) {
		verb, res, group := m[1], m[2], m[3]
		if contains(r.Verbs, verb) && contains(r.Resources, res) && contains(r.APIGroups, group) {
			return m[0], true
		}
	}
	return "", false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s || x == "*" {
			return true
		}
	}
	return false
}

func probeOf(r rbacv1.PolicyRule) *authzv1.ResourceAttributes {
	res, sub, _ := strings.Cut(r.Resources[0], "/")
	a := authzv1.ResourceAttributes{Verb: r.Verbs[0], Group: r.APIGroups[0], Resource: res, Subresource: sub, Namespace: "kube-system"}
	if len(r.ResourceNames) > 0 {
		a.Name = r.ResourceNames[0]
	}
	return &a
}

// TestRBACViewerIsSufficientAndMinimalForStatus runs status and aws plan on
// the OpenShift-on-AWS world as a user who has only dualstack-viewer, on an
// apiserver with RBAC authorization; then, for every rule of the role,
// takes that one rule away and shows that status names the verb and
// resource it is now forbidden.
func TestRBACViewerIsSufficientAndMinimalForStatus(t *testing.T) {
	alice := harness.TokenUser{Name: "alice", Token: "alice-token-viewer-0123456789"}
	api, _, env := openShiftOnAWSWith(t, harness.APIServerOptions{RBAC: true, TokenUsers: []harness.TokenUser{alice}}, harness.OpenShiftOnAWSOptions{})
	role := loadClusterRole(t, viewerRoleFile)
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("viewer rule %s grants %q", ruleString(r), v)
			}
		}
	}
	bindRole(t, api.Kube, role, alice.Name)
	kc, err := api.UserKubeconfig(t.TempDir(), alice)
	if err != nil {
		t.Fatal(err)
	}

	// Sufficient: status reads every layer; nothing is forbidden.
	r := plugin(t, kc, env, "status", "-o", "json")
	st := parseStatus(t, r)
	if len(st.Checks) == 0 || st.Cluster.InfraID == "" {
		t.Fatalf("status as viewer:\n%s", r)
	}
	if strings.Contains(r.Stdout+r.Stderr, "forbidden") || forbiddenLine.MatchString(r.Stdout+r.Stderr) {
		t.Fatalf("status as viewer hit RBAC:\n%s", r)
	}
	admin := parseStatus(t, plugin(t, api.Kubeconfig, env, "status", "-o", "json"))
	if fmt.Sprint(st.verdicts()) != fmt.Sprint(admin.verdicts()) {
		t.Errorf("viewer's status differs from the cluster admin's:\nviewer %v\nadmin  %v", st.verdicts(), admin.verdicts())
	}
	if r := plugin(t, kc, env, "aws", "plan", "-o", "json"); r.Code != 0 {
		t.Fatalf("aws plan as viewer:\n%s", r)
	}
	// ... and it cannot change anything.
	planned := awsPlanChanges(t, api.Kubeconfig)
	if r := plugin(t, kc, env, "aws", "apply", "--yes"); r.Code == 0 || !forbiddenLine.MatchString(strings.ReplaceAll(r.Stdout+r.Stderr, `\"`, `"`)) {
		t.Errorf("aws apply --yes as viewer:\n%s", r)
	} else if n := awsPlanChanges(t, api.Kubeconfig); n != planned {
		t.Errorf("aws apply as viewer changed AWS: %d planned changes left of %d", n, planned)
	}

	// Minimal: each rule is needed by status or the network plan here,
	// except the rules only other platforms read (listed, with why).
	otherPlatforms := map[string]string{
		"servicecidrs": "status reads ServiceCIDRs on kubeadm/kind (Kubernetes >= 1.33); OpenShift's service ranges come from the Network status",
		"networks":     "the network command reads OVN-Kubernetes' custom internal subnets after its preflight, which fails on this IPv4-only world; TestRBACAdminRunsTheWholeUpgrade shows it needed (get networks.operator.openshift.io)",
	}
	proven := 0
	for i, rule := range role.Rules {
		setRules(t, api.Kube, role.Name, without(role.Rules, i), alice.Name, probeOf(rule), false)
		var line string
		ok := false
		for _, args := range [][]string{{"status", "-o", "json"}, {"network", "--force", "-o", "json"}} {
			r := plugin(t, kc, env, args...)
			if line, ok = forbiddenByRule(r.Stdout+r.Stderr, rule); ok {
				t.Logf("without rule %s: %s says %q", ruleString(rule), args[0], line)
				break
			}
		}
		setRules(t, api.Kube, role.Name, role.Rules, alice.Name, probeOf(rule), true)
		if ok {
			proven++
			continue
		}
		if why := otherPlatforms[rule.Resources[0]]; why != "" {
			t.Logf("rule %s is not read on OpenShift on AWS: %s", ruleString(rule), why)
			continue
		}
		t.Errorf("without rule %s neither status nor the network plan reports a forbidden verb+resource of it", ruleString(rule))
	}
	t.Logf("viewer ablation (real RBAC apiserver): %d rules; %d removed one at a time each made status or the network plan report it forbidden; %d read on other platforms only",
		len(role.Rules), proven, len(role.Rules)-proven)
}

// adminOtherPaths are the admin rules the OpenShift-on-AWS upgrade does not
// exercise, and who needs them: by resource, or by the whole rule
// (ruleString) where the resource alone would name another rule too.
var adminOtherPaths = map[string]string{
	"servicecidrs":           "status on kubeadm/kind (Kubernetes >= 1.33)",
	"httproutes":             "validate with the Gateway API HTTPRoute option",
	"[] [namespaces] [list]": "services with namespace flags, not yet a phase of upgrade (TestServicesAsDualstackAdmin shows it needed)",
	"daemonsets":             "nodes outside OpenShift: finding the cloud controller's DaemonSet",
	"[apps] [deployments daemonsets] [patch]":                              "nodes outside OpenShift: restarting the cloud controller after its config changed; mesh on an istioctl install: istiod's env",
	"[] [configmaps] [update] names=[istio]":                               "mesh on an istioctl or plain-manifest install: the mesh config",
	"[sailoperator.io] [istios] [patch]":                                   "mesh on a Sail operator install",
	"[gateway.networking.k8s.io] [gateways gatewayclasses] [get list]":     "mesh with Gateway API Gateways (TestMeshGatewayAPIParametersRef)",
	"[gateway.networking.k8s.io] [gateways] [patch]":                       "mesh with Gateway API Gateways: the parametersRef",
	"[] [configmaps] [delete]":                                             "mesh --revert/rollback with Gateway API Gateways: the parameters ConfigMap it created",
	"[] [configmaps] [update] names=[kubeadm-config kube-proxy]":           "network on kubeadm (TestNetworkKubeadmConverts runs it as dualstack-admin)",
	"[networking.k8s.io] [networkpolicies] [update]":                       "policies apply and upgrade --phases ...,policies, never a plain upgrade (TestPoliciesAsDualstackAdmin shows it needed)",
	"[operator.openshift.io] [ingresscontrollers] [patch] names=[default]": "router and upgrade --phases ...,router, never a plain upgrade (TestRouterAsDualstackAdmin shows it needed)",
}

// TestRBACAdminRunsTheWholeUpgrade runs status, the full upgrade (aws,
// network, gateway --recreate-gateway, validate), network --revert and aws
// rollback as a user who has only dualstack-admin. The conversion sandbox's
// apiserver runs without RBAC, so its requests go through the KubeFaultProxy,
// which authenticates the user's token and authorizes every request with the
// apiserver's own RBAC authorizer against the bound ClusterRole (live) and
// answers with the apiserver's own 403. Every request is recorded: each rule
// of the role must be the only one that allows some request the flow made
// (so removing it fails that request). A sample of rules is then really
// removed and the command that needs it must fail naming verb and resource.
func TestRBACAdminRunsTheWholeUpgrade(t *testing.T) {
	alice := harness.TokenUser{Name: "alice", Token: "alice-token-admin-0123456789"}
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	proxy, err := harness.StartKubeFaultProxy(t, s.API.Config, harness.KubeFaultProxyOptions{RBACUsers: []harness.TokenUser{alice}})
	if err != nil {
		t.Fatal(err)
	}
	role := loadClusterRole(t, adminRoleFile)
	bindRole(t, s.API.Kube, role, alice.Name)
	kc, err := proxy.UserKubeconfig(t.TempDir(), alice)
	if err != nil {
		t.Fatal(err)
	}
	env := awsTLS.Env()

	// Unbound users get the apiserver's 403 through the proxy.
	bob := harness.TokenUser{Name: "bob", Token: "bob"}
	if kb, err := proxy.UserKubeconfig(t.TempDir(), bob); err == nil {
		if r := plugin(t, kb, env, "status"); r.Code == 0 {
			t.Errorf("an unknown token passed the proxy:\n%s", r)
		}
	}

	start := time.Now()
	if r := plugin(t, kc, env, "status", "-o", "json"); forbiddenLine.MatchString(r.Stdout + r.Stderr) {
		t.Fatalf("status as admin hit RBAC:\n%s", r)
	}
	r := plugin(t, kc, env, "upgrade", "--yes", "--recreate-gateway", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	u := parseUpgrade(t, r)
	if r.Code != 0 || u.Outcome != "converted" {
		for _, q := range proxy.Requests() {
			if q.Status >= 400 {
				t.Logf("%d %s %s/%s", q.Status, q.Key(), q.Namespace, q.Name)
			}
		}
		t.Fatalf("upgrade as dualstack-admin: outcome %q\n%s", u.Outcome, r)
	}
	expectPhases(t, r, u, map[string]string{"aws": "done", "nodes": "done", "network": "done", "gateway": "done", "validate": "done"})
	if r := plugin(t, kc, env, "network", "--revert", "--yes"); r.Code != 0 {
		t.Fatalf("network --revert as dualstack-admin:\n%s", r)
	}
	t.Logf("status + upgrade + network --revert as dualstack-admin: %s", time.Since(start).Round(time.Millisecond))
	n0 := len(proxy.Requests())
	ablateSample(t, s, role, alice.Name, kc, env)
	n1 := len(proxy.Requests())
	if r := plugin(t, kc, env, "aws", "rollback", "--yes"); r.Code != 0 {
		t.Fatalf("aws rollback as dualstack-admin:\n%s", r)
	}

	all := proxy.Requests()
	reqs := append(append([]harness.KubeRequest(nil), all[:n0]...), all[n1:]...) // the flow, without the deliberate ablations
	denied := 0
	for _, q := range reqs {
		if q.Status == 403 {
			denied++
			t.Errorf("denied during the flow: %s %s/%s", q.Key(), q.Namespace, q.Name)
		}
	}
	t.Logf("the flow made %d Kubernetes requests (%d distinct verb+resource), %d denied: %s", len(reqs), len(proxy.Keys()), denied, strings.Join(proxy.Keys(), ", "))

	// The workloads phase's evictions, as the apiserver answered them: each
	// was granted (201) or held back by a PodDisruptionBudget (429), never
	// anything else, and every pre-existing application pod that was
	// evicted left through a granted one.
	answers := map[int]int{}
	evicted := map[string]bool{}
	for _, q := range reqs {
		if q.Key() != "create pods/eviction" {
			continue
		}
		answers[q.Status]++
		if q.Status == 201 {
			evicted[q.Namespace+"/"+q.Name] = true
		}
	}
	if answers[201] == 0 || len(answers) > 2 || (len(answers) == 2 && answers[429] == 0) {
		t.Errorf("eviction answers (status: count): %v; want only 201 (granted) and 429 (a PodDisruptionBudget held it back)", answers)
	}
	t.Logf("evictions: %d granted (201), %d held back by a PodDisruptionBudget (429), %d distinct pods evicted", answers[201], answers[429], len(evicted))

	// Every rule is necessary: some request of the flow is allowed by it
	// and by no other rule of the role.
	needed := 0
	for i, rule := range role.Rules {
		var only string
		for _, q := range reqs {
			if q.Status == 403 || q.Attrs == nil || !q.Attrs.IsResourceRequest() || !rbacauthz.RuleAllows(q.Attrs, &role.Rules[i]) {
				continue
			}
			other := false
			for j := range role.Rules {
				if j != i && rbacauthz.RuleAllows(q.Attrs, &role.Rules[j]) {
					other = true
					break
				}
			}
			if !other {
				only = q.Key()
				break
			}
		}
		why := adminOtherPaths[ruleString(rule)]
		if why == "" {
			why = adminOtherPaths[rule.Resources[0]]
		}
		if only == "" && why != "" {
			t.Logf("rule %s is not used by this flow: %s", ruleString(rule), why)
			continue
		}
		if only == "" {
			t.Errorf("rule %s is not needed: no request of the flow depends on it alone", ruleString(rule))
			continue
		}
		needed++
		t.Logf("rule %s: needed for %s", ruleString(rule), only)
	}
	t.Logf("admin ablation (from the request trace): %d/%d rules each the only grant of some request the flow made; %d used on other paths only", needed, len(role.Rules), len(role.Rules)-needed)

}

// ablateSample really removes a sample of rules, one at a time, and runs
// the command that needs each: it must fail naming verb and resource. It
// runs after network --revert: the network is IPv4 again (so network
// patches), the nodes still have IPv6, and validate creates its objects anew.
func ablateSample(t *testing.T, s *harness.ConversionSandbox, role *rbacv1.ClusterRole, user, kc string, env []string) {
	t.Helper()
	samples := []struct {
		match func(rbacv1.PolicyRule) bool
		args  []string
	}{
		{func(r rbacv1.PolicyRule) bool {
			return contains(r.APIGroups, "config.openshift.io") && contains(r.Verbs, "patch")
		}, []string{"network", "--yes"}},
		{func(r rbacv1.PolicyRule) bool { return contains(r.Resources, "namespaces") }, []string{"validate", "--dns-server", s.DNSAddr()}},
		{func(r rbacv1.PolicyRule) bool { return contains(r.Resources, "pods/exec") }, []string{"validate", "--dns-server", s.DNSAddr()}},
	}
	tried := 0
	for _, sample := range samples {
		i := -1
		for j, r := range role.Rules {
			if sample.match(r) {
				i = j
			}
		}
		if i < 0 {
			t.Errorf("no rule for sample %v", sample.args)
			continue
		}
		rule := role.Rules[i]
		tried++
		setRules(t, s.API.Kube, role.Name, without(role.Rules, i), user, nil, false)
		r := plugin(t, kc, env, sample.args...)
		line, ok := forbiddenByRule(r.Stdout+r.Stderr, rule)
		if r.Code == 0 || !ok {
			t.Errorf("without rule %s, %v does not fail naming a forbidden verb+resource of it:\n%s", ruleString(rule), sample.args, r)
		} else {
			t.Logf("without rule %s: %v exits %d: %q", ruleString(rule), sample.args, r.Code, line)
		}
		setRules(t, s.API.Kube, role.Name, role.Rules, user, nil, true)
	}
	t.Logf("admin ablation (real, sample): %d rules removed one at a time, each made its command fail as forbidden", tried)
}
