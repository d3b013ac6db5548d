package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// The service ranges of the Services tests: the cluster starts IPv4-only
// and its apiserver is then restarted, on the same etcd, with an IPv6 range
// too, as a control plane rolled out by the network phase is. (The
// conversion sandbox cannot show this: its apiserver has both ranges from
// the start, standing for what OpenShift's apiserver operator rolls out.)
const (
	servicesV4   = "10.96.0.0/16"
	servicesDual = "10.96.0.0/16,fd02::/112"
)

// servicesJSON mirrors the stable fields of `services -o json`.
type servicesJSON struct {
	Outcome string `json:"outcome"`
	Message string `json:"message"`
	Plan    *struct {
		Services []serviceItem `json:"services"`
		Changes  int           `json:"changes"`
		Skips    int           `json:"skips"`
		Blocker  string        `json:"blocker"`
	} `json:"plan"`
	Result *struct {
		Services []struct {
			Namespace  string   `json:"namespace"`
			Name       string   `json:"name"`
			Status     string   `json:"status"`
			ClusterIPs []string `json:"clusterIPs"`
		} `json:"services"`
		Changed int `json:"changed"`
	} `json:"result"`
	Revert []struct {
		Resource string `json:"resource"`
		Status   string `json:"status"`
		Message  string `json:"message"`
	} `json:"revert"`
}

type serviceItem struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action"`
	Reason    string `json:"reason"`
}

func (it serviceItem) Ref() string { return it.Namespace + "/" + it.Name }

// What the plan says of a cluster without an IPv6 service range.
const blockerNoIPv6Range = "the cluster has no IPv6 service range yet: run the network phase first"

func parseServices(t *testing.T, r result) servicesJSON {
	t.Helper()
	var s servicesJSON
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
		t.Fatalf("services -o json is not JSON: %v\n%s", err, r)
	}
	return s
}

// servicesWorld creates, on the cluster while it is IPv4-only, what a
// cluster has before its conversion: cluster DNS, istiod, applications in
// three namespaces, and Services of every kind the command skips.
func servicesWorld(ctx context.Context, t *testing.T, kc kubernetes.Interface) {
	t.Helper()
	for ns, team := range map[string]string{"istio-system": "", "shop": "shop", "web": "web", "legacy": "legacy"} {
		var labels map[string]string
		if team != "" {
			labels = map[string]string{"team": team}
		}
		if err := harness.EnsureNamespace(ctx, kc, ns, labels); err != nil {
			t.Fatal(err)
		}
	}
	single := corev1.IPFamilyPolicySingleStack
	prefer := corev1.IPFamilyPolicyPreferDualStack
	port := []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}
	mk := func(ns, name string, edit func(*corev1.Service)) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: port},
		}
		if edit != nil {
			edit(svc)
		}
		if _, err := kc.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating service %s/%s: %v", ns, name, err)
		}
	}
	mk("kube-system", "kube-dns", func(s *corev1.Service) {
		s.Labels, s.Spec.Selector = map[string]string{"k8s-app": "kube-dns"}, map[string]string{"k8s-app": "kube-dns"}
		s.Spec.Ports = []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, {Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP}}
	})
	mk("istio-system", "istiod", nil)
	mk("shop", "cart", func(s *corev1.Service) { s.Spec.IPFamilyPolicy = &single })
	mk("shop", "db", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }) // a StatefulSet's
	mk("shop", "pref", func(s *corev1.Service) { s.Spec.IPFamilyPolicy = &prefer })       // one family: the cluster is IPv4-only
	mk("shop", "frozen", func(s *corev1.Service) { s.Labels["tier"] = "frozen" })
	mk("shop", "ext", func(s *corev1.Service) {
		s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}
	})
	mk("shop", "manual", func(s *corev1.Service) {
		s.Spec.ClusterIP, s.Spec.Selector, s.Spec.IPFamilyPolicy = corev1.ClusterIPNone, nil, &single
	})
	mk("web", "front", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort })
	mk("legacy", "old", nil)
}

// serviceSpecs is every Service's spec fields that services changes (and
// the cluster IP it must not), as JSON, and its resourceVersion.
func serviceSpecs(ctx context.Context, t *testing.T, kc kubernetes.Interface) (map[string]string, map[string]string) {
	t.Helper()
	list, err := kc.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	specs, rvs := map[string]string{}, map[string]string{}
	for _, s := range list.Items {
		b, _ := json.Marshal(map[string]any{
			"ipFamilyPolicy": s.Spec.IPFamilyPolicy, "ipFamilies": s.Spec.IPFamilies,
			"clusterIP": s.Spec.ClusterIP, "clusterIPs": s.Spec.ClusterIPs,
		})
		ref := s.Namespace + "/" + s.Name
		specs[ref], rvs[ref] = string(b), s.ResourceVersion
	}
	return specs, rvs
}

// gainIPv6ServiceRange restarts the apiserver with an IPv6 service range
// too and waits until its default ServiceCIDR has both.
func gainIPv6ServiceRange(ctx context.Context, t *testing.T, api *harness.APIServer, cidrs string, want int) {
	t.Helper()
	start := time.Now()
	if err := api.Restart(t, harness.APIServerOptions{ServiceCIDRs: cidrs}); err != nil {
		t.Fatal(err)
	}
	err := harness.WaitFor(ctx, 30*time.Second, "the default ServiceCIDR", func(ctx context.Context) (bool, error) {
		sc, err := api.Kube.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready := false
		for _, c := range sc.Status.Conditions {
			ready = ready || c.Type == "Ready" && c.Status == metav1.ConditionTrue
		}
		return len(sc.Spec.CIDRs) == want && ready, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("apiserver restarted with --service-cluster-ip-range=%s in %s", cidrs, time.Since(start).Round(time.Millisecond))
}

func TestServicesConvertsExistingServicesAndRollsThemBack(t *testing.T) {
	ctx := context.Background()
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: servicesV4})
	servicesWorld(ctx, t, api.Kube)
	kcfg := api.Kubeconfig
	selection := []string{"--exclude-namespaces", "legacy", "-l", "tier!=frozen"}

	// IPv4-only: the plan names every Service and the blocker, as data;
	// applying changes nothing.
	specs0, rvs0 := serviceSpecs(ctx, t, api.Kube)
	r := plugin(t, kcfg, nil, append([]string{"services", "--dry-run=client", "-o", "json"}, selection...)...)
	p := parseServices(t, r)
	if r.Code != 1 || p.Outcome != "blocked" || p.Plan == nil || p.Plan.Blocker != blockerNoIPv6Range {
		t.Fatalf("plan on an IPv4-only cluster:\n%s", r)
	}
	if r := plugin(t, kcfg, nil, append([]string{"services", "--yes"}, selection...)...); r.Code != 1 ||
		!strings.Contains(r.Stdout, "the cluster has no IPv6 service range yet: run the network phase first") {
		t.Fatalf("apply on an IPv4-only cluster:\n%s", r)
	}
	// Bad input: exit 2, one line, before anything changes.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-l", "app in (web"}, "--selector"},
		{[]string{"--namespace-selector", "team in shop"}, "--namespace-selector"},
		{[]string{"--include-namespaces", "shop,nope"}, "--include-namespaces: no namespace named nope"},
		{[]string{"--exclude-namespaces", "legacyy"}, "--exclude-namespaces: no namespace named legacyy"},
	} {
		r := plugin(t, kcfg, nil, append([]string{"services", "--yes"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || r.Stdout != "" {
			t.Errorf("%v: want exit 2 with one line naming %q:\n%s", tc.args, tc.want, r)
		}
	}
	if specs, rvs := serviceSpecs(ctx, t, api.Kube); !maps.Equal(specs, specs0) || !maps.Equal(rvs, rvs0) {
		t.Fatalf("refused runs changed Services:\nbefore %v\nafter  %v", rvs0, rvs)
	}
	if _, err := api.Kube.CoreV1().ConfigMaps("kube-system").Get(ctx, journal.DefaultName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("refused runs wrote a journal: %v", err)
	}
	if _, err := api.Kube.CoordinationV1().Leases("kube-system").Get(ctx, journal.LeaseName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("refused runs took the lock: %v", err)
	}

	// The network phase's effect: the apiserver gains an IPv6 range.
	// Existing Services keep their one family.
	gainIPv6ServiceRange(ctx, t, api, servicesDual, 2)
	before, rvs := serviceSpecs(ctx, t, api.Kube)
	if !maps.Equal(before, specs0) {
		t.Fatalf("the restart changed Services:\n%v\n%v", specs0, before)
	}
	st := parseStatus(t, plugin(t, kcfg, nil, "status", "-o", "json"))
	for _, c := range st.Checks {
		if c.Name == "services" && (c.Status != "WARN" || !strings.Contains(c.Message, "8 of 9 Services with a cluster IP are single-stack (kube-system/kube-dns, istio-system/istiod, legacy/old and 5 more)") || c.Remediation != "kubectl dualstack services") {
			t.Errorf("status before: %+v", c)
		}
	}

	// The plan: system Services first, then by namespace/name; skips with why.
	// (pref is PreferDualStack with one family: the apiserver gave it none
	// of the new range when it restarted.)
	r = plugin(t, kcfg, nil, append([]string{"services", "--dry-run=client", "-o", "json"}, selection...)...)
	p = parseServices(t, r)
	if r.Code != 0 || p.Outcome != "planned" || p.Plan.Blocker != "" {
		t.Fatalf("plan:\n%s", r)
	}
	var changes, skips []string
	for _, it := range p.Plan.Services {
		if it.Action == "change" {
			changes = append(changes, it.Ref())
		} else {
			skips = append(skips, it.Ref()+": "+it.Reason)
		}
	}
	wantChanges := []string{"kube-system/kube-dns", "istio-system/istiod", "shop/cart", "shop/db", "shop/pref", "web/front"}
	if !slices.Equal(changes, wantChanges) {
		t.Fatalf("planned changes %v, want %v\n%s", changes, wantChanges, r)
	}
	for _, want := range []string{"default/kubernetes: the kube-apiserver's own Service", "shop/ext: ExternalName", "shop/manual: headless without a selector"} {
		if !slices.ContainsFunc(skips, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("skips %v lack %q", skips, want)
		}
	}
	if slices.ContainsFunc(p.Plan.Services, func(it serviceItem) bool { return it.Ref() == "shop/frozen" || it.Namespace == "legacy" }) {
		t.Errorf("the plan names Services outside the selection:\n%s", r)
	}
	// The table says the same to a person.
	if r := plugin(t, kcfg, nil, "services", "--dry-run=client", "--namespace-selector", "team=web"); r.Code != 0 ||
		!strings.Contains(r.Stdout, "web/front") || strings.Contains(r.Stdout, "shop/") || !strings.Contains(r.Stdout, "1 to change, 0 skipped") {
		t.Errorf("plan table for team=web:\n%s", r)
	}
	// kubectl's -n scopes it to one namespace, never the whole cluster.
	if r := plugin(t, kcfg, nil, "services", "--dry-run=client", "-n", "web"); r.Code != 0 ||
		!strings.Contains(r.Stdout, "web/front") || strings.Contains(r.Stdout, "shop/") || !strings.Contains(r.Stdout, "1 to change, 0 skipped") {
		t.Errorf("plan table for -n web:\n%s", r)
	}

	// Apply: each selected Service gets both families, and two cluster IPs
	// unless it is headless; the rest is untouched.
	start := time.Now()
	r = plugin(t, kcfg, nil, append([]string{"services", "--yes", "-o", "json"}, selection...)...)
	a := parseServices(t, r)
	t.Logf("services --yes: %s", time.Since(start).Round(time.Millisecond))
	if r.Code != 0 || a.Outcome != "converted" || a.Result == nil || a.Result.Changed != len(wantChanges) {
		t.Fatalf("apply:\n%s", r)
	}
	after, rvsAfter := serviceSpecs(ctx, t, api.Kube)
	for _, ref := range wantChanges {
		ns, name, _ := strings.Cut(ref, "/")
		svc, err := api.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var orig struct {
			ClusterIP string `json:"clusterIP"`
		}
		_ = json.Unmarshal([]byte(before[ref]), &orig)
		wantIPs := 2
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			wantIPs = 1 // headless: both families, no addresses
		}
		v4, v6 := false, false
		for _, ip := range svc.Spec.ClusterIPs {
			v4, v6 = v4 || strings.Contains(ip, "."), v6 || strings.Contains(ip, ":")
		}
		if *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyPreferDualStack ||
			!slices.Equal(svc.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}) ||
			len(svc.Spec.ClusterIPs) != wantIPs || wantIPs == 2 && !(v4 && v6) || svc.Spec.ClusterIP != orig.ClusterIP {
			t.Errorf("%s after apply: %s (before %s)", ref, after[ref], before[ref])
		}
	}
	for _, ref := range []string{"shop/frozen", "legacy/old", "shop/ext", "shop/manual", "default/kubernetes"} {
		if after[ref] != before[ref] || rvsAfter[ref] != rvs[ref] {
			t.Errorf("%s was touched: %s -> %s", ref, before[ref], after[ref])
		}
	}
	store := journal.NewStore(api.Kube, "", "")
	j, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, e := range j.Layer("services") {
		if e.State == journal.Done && e.Undo["inversePatch"] != "" {
			done++
		}
	}
	if done != len(wantChanges) {
		t.Fatalf("journal: %d done services entries, want %d: %+v", done, len(wantChanges), j.Layer("services"))
	}
	// A second run changes nothing.
	if r := plugin(t, kcfg, nil, append([]string{"services", "--yes", "-o", "json"}, selection...)...); r.Code != 0 || parseServices(t, r).Outcome != "nothing-to-do" {
		t.Fatalf("second run:\n%s", r)
	}
	st = parseStatus(t, plugin(t, kcfg, nil, "status", "-o", "json"))
	for _, c := range st.Checks {
		if c.Name == "services" && (c.Status != "WARN" || !strings.Contains(c.Message, "2 of 9 Services with a cluster IP are single-stack (legacy/old, shop/frozen)")) {
			t.Errorf("status after: %+v", c)
		}
	}

	// Revert: every Service as it was, byte for byte; the one that was
	// PreferDualStack with one family can only be SingleStack while the
	// cluster has two families, and the result says so.
	r = plugin(t, kcfg, nil, "services", "--revert", "--yes", "-o", "json")
	rb := parseServices(t, r)
	if r.Code != 0 || rb.Outcome != "reverted" || len(rb.Revert) != len(wantChanges) {
		t.Fatalf("revert:\n%s", r)
	}
	restored, _ := serviceSpecs(ctx, t, api.Kube)
	for ref, b := range before {
		want := b
		if ref == "shop/pref" {
			want = strings.Replace(b, `"ipFamilyPolicy":"PreferDualStack"`, `"ipFamilyPolicy":"SingleStack"`, 1)
			for _, x := range rb.Revert {
				if x.Resource == "service/shop/pref" && !strings.Contains(x.Message, "not its original PreferDualStack") {
					t.Errorf("pref's revert does not say its policy is SingleStack: %+v", x)
				}
			}
		}
		if restored[ref] != want {
			t.Errorf("%s after revert:\n  %s\nwant\n  %s", ref, restored[ref], want)
		}
	}
	if r := plugin(t, kcfg, nil, "services", "--revert", "--yes", "-o", "json"); r.Code != 0 || parseServices(t, r).Outcome != "nothing-to-revert" {
		t.Fatalf("second revert:\n%s", r)
	}
}

// Reverting after the cluster lost its IPv6 service range again (the
// network rolled back first): a PreferDualStack Service gets that policy
// back exactly, since Kubernetes then keeps it at one family.
func TestServicesRevertOnceTheClusterIsSingleStackAgain(t *testing.T) {
	ctx := context.Background()
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: servicesV4})
	servicesWorld(ctx, t, api.Kube)
	before, _ := serviceSpecs(ctx, t, api.Kube)
	gainIPv6ServiceRange(ctx, t, api, servicesDual, 2)
	if r := plugin(t, api.Kubeconfig, nil, "services", "--yes", "--include-namespaces", "shop"); r.Code != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	// The default ServiceCIDR keeps its IPv6 range in etcd (Kubernetes
	// upgrades it to dual-stack, never back): only the flags lose it.
	gainIPv6ServiceRange(ctx, t, api, servicesV4, 2)
	r := plugin(t, api.Kubeconfig, nil, "services", "--revert", "--yes", "-o", "json")
	rb := parseServices(t, r)
	t.Logf("revert on the IPv4-only apiserver: %s", r)
	if r.Code != 0 || rb.Outcome != "reverted" {
		t.Fatalf("revert:\n%s", r)
	}
	restored, _ := serviceSpecs(ctx, t, api.Kube)
	for ref, b := range before {
		if restored[ref] != b {
			t.Errorf("%s after revert:\n  %s\nwant\n  %s", ref, restored[ref], b)
		}
	}
}

// dualstack-admin is enough for services and its revert, and its
// namespaces-list rule is needed for the namespace flags (upgrade does not
// run services yet, so TestRBACAdminRunsTheWholeUpgrade cannot show it).
func TestServicesAsDualstackAdmin(t *testing.T) {
	ctx := context.Background()
	alice := harness.TokenUser{Name: "alice", Token: "alice-token-services-0123456789"}
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: servicesDual, RBAC: true, TokenUsers: []harness.TokenUser{alice}})
	servicesWorld(ctx, t, api.Kube)
	role := loadClusterRole(t, adminRoleFile)
	bindRole(t, api.Kube, role, alice.Name)
	kc, err := api.UserKubeconfig(t.TempDir(), alice)
	if err != nil {
		t.Fatal(err)
	}
	r := plugin(t, kc, nil, "services", "--yes", "--namespace-selector", "team", "--exclude-namespaces", "legacy")
	if r.Code != 0 || forbiddenLine.MatchString(r.Stdout+r.Stderr) || !strings.Contains(r.Stdout, "4 Services are dual-stack now") {
		t.Fatalf("services as dualstack-admin:\n%s", r)
	}
	i := slices.IndexFunc(role.Rules, func(rule rbacv1.PolicyRule) bool {
		return slices.Equal(rule.Resources, []string{"namespaces"}) && slices.Equal(rule.Verbs, []string{"list"})
	})
	if i < 0 {
		t.Fatalf("dualstack-admin has no rule namespaces [list]")
	}
	setRules(t, api.Kube, role.Name, without(role.Rules, i), alice.Name, probeOf(role.Rules[i]), false)
	r = plugin(t, kc, nil, "services", "--dry-run=client", "--include-namespaces", "web")
	if line, ok := forbiddenByRule(r.Stdout+r.Stderr, role.Rules[i]); r.Code == 0 || !ok {
		t.Errorf("without namespaces list, the namespace flags must fail as forbidden:\n%s", r)
	} else {
		t.Logf("without rule %s: %q", ruleString(role.Rules[i]), line)
	}
	setRules(t, api.Kube, role.Name, role.Rules, alice.Name, probeOf(role.Rules[i]), true)
	if r := plugin(t, kc, nil, "services", "--revert", "--yes"); r.Code != 0 || forbiddenLine.MatchString(r.Stdout+r.Stderr) {
		t.Fatalf("services --revert as dualstack-admin:\n%s", r)
	}
}
