package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

var ipCount = 10

// mkSvc is a ClusterIP Service as the apiserver stores one created on an
// IPv4 cluster: SingleStack [IPv4], one cluster IP, a selector.
func mkSvc(ns, name string, opts ...func(*corev1.Service)) *corev1.Service {
	ipCount++
	single := corev1.IPFamilyPolicySingleStack
	ip := fmt.Sprintf("10.96.%d.%d", ipCount/250, ipCount%250+1)
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			IPFamilyPolicy: &single, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withPolicy(p corev1.IPFamilyPolicy, fams ...corev1.IPFamily) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &p
		s.Spec.IPFamilies = fams
		if len(fams) == 2 && s.Spec.ClusterIP != corev1.ClusterIPNone {
			s.Spec.ClusterIPs = append(s.Spec.ClusterIPs[:1], "fd02::99")
		}
	}
}

func headless(s *corev1.Service) {
	s.Spec.ClusterIP, s.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
}

func noSelector(s *corev1.Service) { s.Spec.Selector = nil }

func externalName(s *corev1.Service) {
	s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}
}

func label(k, v string) func(*corev1.Service) { return func(s *corev1.Service) { s.Labels[k] = v } }

func mkNS(name string, kv ...string) *corev1.Namespace {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func TestJudge(t *testing.T) {
	prefer, require := corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack
	v4, v6 := corev1.IPv4Protocol, corev1.IPv6Protocol
	for _, tc := range []struct {
		name   string
		svc    *corev1.Service
		change bool
		reason string
		target []corev1.IPFamily
	}{
		{"single-stack IPv4", mkSvc("a", "b"), true, "single-stack: SingleStack [IPv4]", []corev1.IPFamily{v4, v6}},
		{"single-stack IPv6 keeps IPv6 first", mkSvc("a", "b", func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.IPFamilies = "fd02::5", []string{"fd02::5"}, []corev1.IPFamily{v6}
		}), true, "SingleStack [IPv6]", []corev1.IPFamily{v6, v4}},
		{"no policy stored", mkSvc("a", "b", func(s *corev1.Service) { s.Spec.IPFamilyPolicy = nil }), true, "SingleStack [IPv4]", []corev1.IPFamily{v4, v6}},
		{"PreferDualStack with one family", mkSvc("a", "b", withPolicy(prefer, v4)), true, "Kubernetes never adds the second", []corev1.IPFamily{v4, v6}},
		{"PreferDualStack with both", mkSvc("a", "b", withPolicy(prefer, v4, v6)), false, "already dual-stack", nil},
		{"RequireDualStack", mkSvc("a", "b", withPolicy(require, v4, v6)), false, "already dual-stack", nil},
		{"headless with selector", mkSvc("a", "b", headless), true, "single-stack", []corev1.IPFamily{v4, v6}},
		{"headless without selector", mkSvc("a", "b", headless, noSelector), false, "headless without a selector", nil},
		{"ExternalName", mkSvc("a", "b", externalName), false, "ExternalName", nil},
		{"the apiserver's Service", mkSvc("default", "kubernetes"), false, "kube-apiserver", nil},
		{"the ingress gateway", mkSvc("istio-system", "istio-ingressgateway", label("istio", "ingressgateway")), false, "gateway command", nil},
		{"istiod's Gateway API gateway", mkSvc("apps", "gw-istio", label(istioManagedGateway, "istio.io-gateway-controller")), false, "parametersRef", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			change, reason := Judge(tc.svc)
			if change != tc.change || !strings.Contains(reason, tc.reason) {
				t.Fatalf("Judge = %t %q, want %t with %q", change, reason, tc.change, tc.reason)
			}
			if tc.target != nil {
				if got := Target(tc.svc, prefer); !slices.Equal(got.Families, tc.target) || got.Policy != prefer {
					t.Fatalf("Target = %s, want PreferDualStack %v", got, tc.target)
				}
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string // "" = valid
	}{
		{"defaults", Options{}, ""},
		{"require", Options{Policy: corev1.IPFamilyPolicyRequireDualStack}, ""},
		{"single-stack is not a target", Options{Policy: corev1.IPFamilyPolicySingleStack}, "PreferDualStack or RequireDualStack"},
		{"bad service selector", Options{Selection: Selection{Selector: "app in (web"}}, "--selector"},
		{"bad namespace selector", Options{Selection: Selection{NamespaceSelector: "==x"}}, "--namespace-selector"},
		{"empty namespace name", Options{Selection: Selection{IncludeNamespaces: []string{"a", ""}}}, "empty name"},
		{"included and excluded", Options{Selection: Selection{IncludeNamespaces: []string{"a"}, ExcludeNamespaces: []string{"a"}}}, "both in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.want == "" {
				if err != nil || tc.o.Policy == "" {
					t.Fatalf("Validate: %v (policy %q)", err, tc.o.Policy)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || cli.ExitCode(err) != cli.ExitBadUsage {
				t.Fatalf("Validate = %v (exit %d), want a usage error with %q", err, cli.ExitCode(err), tc.want)
			}
		})
	}
}

// world is a cluster with system Services, applications in three
// namespaces and Services of every kind the plan skips.
func world(t *testing.T, dual bool) *fakeAPI {
	t.Helper()
	prefer := corev1.IPFamilyPolicyPreferDualStack
	objs := []runtime.Object{
		mkNS("default"), mkNS("kube-system"), mkNS("openshift-dns"), mkNS("istio-system"),
		mkNS("shop", "team", "shop"), mkNS("web", "team", "web"), mkNS("legacy", "team", "legacy"),
		mkSvc("default", "kubernetes"),
		mkSvc("shop", "cart"),
		mkSvc("shop", "db", headless),
		mkSvc("shop", "pref", withPolicy(prefer, corev1.IPv4Protocol)),
		mkSvc("shop", "ext", externalName),
		mkSvc("shop", "manual", headless, noSelector),
		mkSvc("shop", "frozen", label("tier", "frozen")),
		mkSvc("shop", "both", withPolicy(prefer, corev1.IPv4Protocol, corev1.IPv6Protocol)),
		mkSvc("web", "front", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }),
		mkSvc("legacy", "old"),
		mkSvc("istio-system", "istiod"),
		mkSvc("istio-system", "istiod-1-24", label("app", "istiod")),
		mkSvc("istio-system", "istio-ingressgateway", label("istio", "ingressgateway")),
		mkSvc("kube-system", "kube-dns"),
		mkSvc("openshift-dns", "dns-default"),
	}
	return newFakeAPI(t, dual, objs...)
}

func refs(items []Item, action Action) []string {
	var out []string
	for _, it := range items {
		if action == "" || it.Action == action {
			out = append(out, it.Ref())
		}
	}
	return out
}

func TestPlanSelectsOrdersAndExplains(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	c := &Converter{Kube: api}
	plan, err := c.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantChange := []string{
		"kube-system/kube-dns", "openshift-dns/dns-default", // cluster DNS first
		"istio-system/istiod", "istio-system/istiod-1-24", // then istiod
		"legacy/old", "shop/cart", "shop/db", "shop/frozen", "shop/pref", "web/front",
	}
	if got := refs(plan.Services, ActionChange); !slices.Equal(got, wantChange) {
		t.Fatalf("changes %v\nwant    %v", got, wantChange)
	}
	if got := refs(plan.Services, ""); !slices.Equal(got[:4], wantChange[:4]) {
		t.Fatalf("system Services must come first, skips included: %v", got)
	}
	wantSkip := map[string]string{
		"default/kubernetes": "kube-apiserver", "shop/ext": "ExternalName", "shop/manual": "headless without a selector",
		"shop/both": "already dual-stack", "istio-system/istio-ingressgateway": "gateway command",
	}
	for _, it := range plan.Services {
		if it.Action == ActionSkip && !strings.Contains(it.Reason, wantSkip[it.Ref()]) || it.Action == ActionSkip && wantSkip[it.Ref()] == "" {
			t.Errorf("skip %s: %q, want %q", it.Ref(), it.Reason, wantSkip[it.Ref()])
		}
	}
	if plan.Changes != len(wantChange) || plan.Skips != len(wantSkip) || plan.Blocker != "" {
		t.Fatalf("plan: %d changes, %d skips, blocker %q", plan.Changes, plan.Skips, plan.Blocker)
	}
	for _, it := range plan.Services {
		switch it.Ref() {
		case "shop/pref":
			if it.RollbackNote == "" || it.Target.Policy != corev1.IPFamilyPolicyPreferDualStack {
				t.Errorf("pref: %+v", it)
			}
		case "kube-system/kube-dns":
			if it.System != SystemDNS || it.ResourceVersion == "" || it.UID == "" || len(it.ClusterIPs) != 1 {
				t.Errorf("kube-dns: %+v", it)
			}
		}
	}
	// Read-only: one server-side dry run of the first change, nothing else.
	var sent []patchCall
	sent = append(sent, api.patches...)
	if len(sent) != 1 || !sent[0].dryRun || sent[0].ref != "kube-system/kube-dns" {
		t.Fatalf("plan sent %+v", sent)
	}
	// Plain data: it survives JSON, as a saved plan does.
	b, _ := json.Marshal(plan)
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil || len(back.Services) != len(plan.Services) || back.Services[0].Target == nil {
		t.Fatalf("plan through JSON: %v %s", err, b)
	}
}

func TestPlanSelection(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		sel  Selection
		want []string // the changes
		err  string
	}{
		{"include", Selection{IncludeNamespaces: []string{"web", "legacy"}}, []string{"legacy/old", "web/front"}, ""},
		{"exclude", Selection{ExcludeNamespaces: []string{"shop", "legacy", "kube-system", "openshift-dns", "istio-system"}}, []string{"web/front"}, ""},
		{"namespace selector", Selection{NamespaceSelector: "team in (shop,web)"}, []string{"shop/cart", "shop/db", "shop/frozen", "shop/pref", "web/front"}, ""},
		{"selector and exclude", Selection{NamespaceSelector: "team", ExcludeNamespaces: []string{"legacy"}, Selector: "tier!=frozen"},
			[]string{"shop/cart", "shop/db", "shop/pref", "web/front"}, ""},
		{"include and namespace selector", Selection{IncludeNamespaces: []string{"shop", "kube-system"}, NamespaceSelector: "team=shop"},
			[]string{"shop/cart", "shop/db", "shop/frozen", "shop/pref"}, ""},
		{"unknown include", Selection{IncludeNamespaces: []string{"shop", "nope", "nada"}}, nil, "--include-namespaces: no namespace named nope, nada"},
		{"unknown exclude", Selection{ExcludeNamespaces: []string{"shpo"}}, nil, "--exclude-namespaces: no namespace named shpo"},
		{"nothing matches", Selection{NamespaceSelector: "team=nobody"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := world(t, true)
			plan, err := (&Converter{Kube: api, Options: Options{Selection: tc.sel}}).Plan(ctx)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || cli.ExitCode(err) != cli.ExitBadUsage {
					t.Fatalf("Plan = %v, want a usage error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := refs(plan.Services, ActionChange); !slices.Equal(got, tc.want) {
				t.Fatalf("changes %v, want %v", got, tc.want)
			}
			if len(tc.want) == 0 && len(plan.Notes) == 0 {
				t.Fatalf("an empty selection says so: %+v", plan)
			}
		})
	}
}

func TestPlanBlockedWithoutIPv6ServiceRange(t *testing.T) {
	api := world(t, false)
	c := &Converter{Kube: api, Journal: &memJournal{}}
	plan, err := c.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if plan.Blocker != BlockerNoIPv6Range || !plan.NeedsIPv6ServiceRange || plan.Changes == 0 {
		t.Fatalf("blocker %q, %d changes", plan.Blocker, plan.Changes)
	}
	if _, err := c.Apply(context.Background(), plan); err == nil || !strings.Contains(err.Error(), "run the network phase first") {
		t.Fatalf("Apply of a blocked plan: %v", err)
	}
	if p := api.realPatches(); len(p) != 0 {
		t.Fatalf("a blocked plan patched %+v", p)
	}
}

// Each batch is journalled as pending before any of its patches, and as
// done after; the entries hold the original shape and the inverse patch.
func TestApplyJournalsBeforeEachChange(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	j := &memJournal{}
	patchesAtWrite := []int{}
	j.onWrite = func([]journal.Entry) {
		patchesAtWrite = append(patchesAtWrite, len(api.realPatches()))
	}
	c := &Converter{Kube: api, Journal: j, Options: Options{Selection: Selection{Selector: "tier!=frozen"}}}
	plan, err := c.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != plan.Changes || res.Failed+res.Skipped+res.NotRun != 0 {
		t.Fatalf("result %+v", res)
	}
	if len(j.writes) != 2 || patchesAtWrite[0] != 0 || patchesAtWrite[1] != plan.Changes {
		t.Fatalf("journal writes at %v patches (want pending at 0, done at %d)", patchesAtWrite, plan.Changes)
	}
	for _, e := range j.writes[0] {
		if e.State != journal.Pending || e.Layer != Layer {
			t.Fatalf("first write: %+v", e)
		}
	}
	e, ok := j.get(entryID("shop", "pref"))
	if !ok || e.State != journal.Done {
		t.Fatalf("pref entry: %+v", e)
	}
	if e.Undo["ipFamilyPolicy"] != "PreferDualStack" || e.Undo["ipFamilies"] != "IPv4" || e.Undo["appliedFamilies"] != "IPv4,IPv6" ||
		!strings.Contains(e.Undo["clusterIPsAfter"], ",fd02::") || e.Undo["inversePatch"] != `{"spec":{"clusterIPs":["`+e.Undo["clusterIPs"]+`"],"ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack"}}` {
		t.Fatalf("pref undo: %v", e.Undo)
	}
	for _, o := range res.Services {
		svc := api.get(o.Namespace, o.Name)
		want := 2
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			want = 1 // headless: both families, no IPs
		}
		if o.Status != StatusChanged || len(svc.Spec.IPFamilies) != 2 || len(svc.Spec.ClusterIPs) != want || *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyPreferDualStack {
			t.Errorf("%s/%s: %s %+v", o.Namespace, o.Name, o.Status, svc.Spec)
		}
	}
	// Every patch carried the planned resourceVersion.
	for _, p := range api.realPatches() {
		if !strings.Contains(p.body, `"resourceVersion"`) {
			t.Errorf("patch of %s without a precondition: %s", p.ref, p.body)
		}
	}
	if frozen := api.get("shop", "frozen"); len(frozen.Spec.IPFamilies) != 1 {
		t.Fatalf("a Service outside the selector was changed: %+v", frozen.Spec)
	}

	// A second run has nothing to do.
	again, err := c.Plan(ctx)
	if err != nil || again.Changes != 0 {
		t.Fatalf("second plan: %d changes, %v", again.Changes, err)
	}
}

func TestApplyRequire(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	c := &Converter{Kube: api, Journal: &memJournal{}, Options: Options{Policy: corev1.IPFamilyPolicyRequireDualStack,
		Selection: Selection{IncludeNamespaces: []string{"web"}}}}
	plan, err := c.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if s := api.get("web", "front"); *s.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyRequireDualStack || len(s.Spec.ClusterIPs) != 2 {
		t.Fatalf("front: %+v", s.Spec)
	}
}

// A Service that changed after the plan is read again and judged afresh,
// never patched blindly.
func TestApplyRechecksServicesChangedSincePlan(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	j := &memJournal{}
	c := &Converter{Kube: api, Journal: j, Options: Options{Selection: Selection{IncludeNamespaces: []string{"shop", "web", "legacy"}, Selector: "tier!=frozen"}}}
	plan, err := c.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	require := corev1.IPFamilyPolicyRequireDualStack
	single := corev1.IPFamilyPolicySingleStack
	// cart: a label changed (resourceVersion moved on, still needs it).
	api.touch(t, "shop", "cart", func(s *corev1.Service) { s.Labels["owner"] = "me" })
	// front: someone made it dual-stack.
	api.touch(t, "web", "front", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &require
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		s.Spec.ClusterIPs = append(s.Spec.ClusterIPs, "fd02::77")
	})
	// pref: made SingleStack by hand: its new original is journalled.
	api.touch(t, "shop", "pref", func(s *corev1.Service) { s.Spec.IPFamilyPolicy = &single })
	// db: now outside the selector.
	api.touch(t, "shop", "db", func(s *corev1.Service) { s.Labels["tier"] = "frozen" })
	// old: deleted; cart2 does not exist.
	if err := api.Tracker().Delete(svcGVR, "legacy", "old"); err != nil {
		t.Fatal(err)
	}

	res, err := c.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]Outcome{}
	for _, o := range res.Services {
		status[o.Namespace+"/"+o.Name] = o
	}
	for ref, want := range map[string]string{
		"shop/cart": StatusChanged, "shop/pref": StatusChanged,
		"web/front": StatusSkipped, "shop/db": StatusSkipped, "legacy/old": StatusSkipped,
	} {
		if status[ref].Status != want {
			t.Errorf("%s: %+v, want %s", ref, status[ref], want)
		}
	}
	if m := status["web/front"].Message; !strings.Contains(m, "changed since the plan: already dual-stack") {
		t.Errorf("front: %q", m)
	}
	if s := api.get("web", "front"); *s.Spec.IPFamilyPolicy != require {
		t.Errorf("front was patched over someone else's change: %+v", s.Spec)
	}
	if s := api.get("shop", "db"); len(s.Spec.IPFamilies) != 1 {
		t.Errorf("db left the selection but was patched: %+v", s.Spec)
	}
	e, _ := j.get(entryID("shop", "pref"))
	if e.State != journal.Done || e.Undo["ipFamilyPolicy"] != "SingleStack" {
		t.Errorf("pref's entry must hold its new original: %+v", e)
	}
	for _, ref := range []string{"web/front", "shop/db", "legacy/old"} {
		ns, name, _ := strings.Cut(ref, "/")
		if e, _ := j.get(entryID(ns, name)); e.State != journal.Failed || e.Undo["notMade"] == "" {
			t.Errorf("%s: not changed, so its entry must say so: %+v", ref, e)
		}
	}
	if res.Changed != 2 || res.Skipped != 3 {
		t.Errorf("counts %+v", res)
	}
}

// Without an IPv6 range, the first refusal stops the run: the rest is
// not tried, and the refused entry records that nothing was made.
func TestApplyStopsAtNoIPv6Range(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	j := &memJournal{}
	c := &Converter{Kube: api, Journal: j, Parallel: 1}
	plan, err := c.Plan(ctx)
	if err != nil || plan.Blocker != "" {
		t.Fatal(err, plan.Blocker)
	}
	api.dual = false // the range went away between plan and apply
	res, err := c.Apply(ctx, plan)
	if !errors.Is(err, errNoIPv6Range) {
		t.Fatalf("Apply: %v", err)
	}
	if res.Failed == 0 || res.Changed != 0 {
		t.Fatalf("result %+v", res)
	}
	e, _ := j.get(entryID("kube-system", "kube-dns"))
	if e.State != journal.Failed {
		t.Fatalf("kube-dns entry %+v", e)
	}
}

func TestApplyServerDryRunChangesNothing(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	c := &Converter{Kube: api, ServerDryRun: true}
	plan, err := c.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Apply(ctx, plan)
	if err != nil || res.Changed != plan.Changes {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	for _, o := range res.Services {
		if o.Status != StatusDryRun || o.After == nil || len(o.After.Families) != 2 {
			t.Errorf("%s/%s: %+v", o.Namespace, o.Name, o)
		}
	}
	if p := api.realPatches(); len(p) != 0 {
		t.Fatalf("server dry run stored patches: %+v", p)
	}
}

func TestApplyStopsWhenTheJournalCannotBeWritten(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	j := &memJournal{fail: errors.New("configmaps is forbidden")}
	c := &Converter{Kube: api, Journal: j}
	plan, _ := c.Plan(ctx)
	res, err := c.Apply(ctx, plan)
	if err == nil || !strings.Contains(err.Error(), "before making them") || res.NotRun != plan.Changes {
		t.Fatalf("Apply: %+v %v", res, err)
	}
	if p := api.realPatches(); len(p) != 0 {
		t.Fatalf("patched without a journal: %+v", p)
	}
}

// shapes is every Service's policy, families and cluster IPs.
func shapes(t *testing.T, api *fakeAPI) map[string]string {
	t.Helper()
	list, err := api.CoreV1().Services("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Namespace+"/"+s.Name] = fmt.Sprintf("%s %s %v", ShapeOf(&s), s.Spec.ClusterIP, s.Spec.ClusterIPs)
	}
	return out
}

func TestRollbackRestoresTheOriginals(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	before := shapes(t, api)
	j := &memJournal{}
	c := &Converter{Kube: api, Journal: j}
	plan, _ := c.Plan(ctx)
	if _, err := c.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	// Someone else changes web/front after us; shop/cart is re-created.
	single := corev1.IPFamilyPolicySingleStack
	require := corev1.IPFamilyPolicyRequireDualStack
	api.touch(t, "web", "front", func(s *corev1.Service) { s.Spec.IPFamilyPolicy = &require })
	api.touch(t, "shop", "cart", func(s *corev1.Service) {
		s.UID = "another"
		s.Spec.IPFamilyPolicy, s.Spec.IPFamilies, s.Spec.ClusterIPs = &single, s.Spec.IPFamilies[:1], s.Spec.ClusterIPs[:1]
	})
	mid := shapes(t, api)

	results, err := Rollback(ctx, api, j)
	if err != nil {
		t.Fatal(err)
	}
	after := shapes(t, api)
	byRes := map[string]RollbackResult{}
	for _, r := range results {
		byRes[r.Resource] = r
	}
	for ref := range before {
		switch ref {
		case "web/front", "shop/cart":
			r := byRes["service/"+ref]
			if r.Status != "skipped" || after[ref] != mid[ref] {
				t.Errorf("%s: %+v; left %s, was %s", ref, r, after[ref], mid[ref])
			}
		case "shop/pref":
			// On a dual-stack cluster: its family and IP, as SingleStack.
			want := strings.Replace(before[ref], "PreferDualStack", "SingleStack", 1)
			if r := byRes["service/"+ref]; after[ref] != want || r.Status != "undone" || !strings.Contains(r.Message, "not its original PreferDualStack") {
				t.Errorf("pref: %s (%+v), want %s", after[ref], r, want)
			}
		default:
			if after[ref] != before[ref] {
				t.Errorf("%s: %s, want %s", ref, after[ref], before[ref])
			}
		}
	}
	for _, e := range j.entries {
		if e.Layer == Layer && e.State != journal.Undone {
			t.Errorf("entry %s is %s after rollback", e.ID, e.State)
		}
	}
	if again, err := Rollback(ctx, api, j); err != nil || len(again) != 0 {
		t.Fatalf("second rollback: %+v %v", again, err)
	}
}

// Once the cluster has one service family again, a PreferDualStack
// Service gets its policy back exactly; a pending entry whose patch never
// happened is left as it is.
func TestRollbackOnASingleStackClusterRestoresPreferDualStack(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	before := shapes(t, api)
	j := &memJournal{}
	c := &Converter{Kube: api, Journal: j, Options: Options{Selection: Selection{IncludeNamespaces: []string{"shop"}}}}
	plan, _ := c.Plan(ctx)
	if _, err := c.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	// A pending entry of a change that was never made (a crash between the
	// journal write and the patch).
	legacy := api.get("legacy", "old")
	pending := entryFor(Item{Namespace: "legacy", Name: "old", UID: legacy.UID, Current: ShapeOf(legacy), ClusterIPs: legacy.Spec.ClusterIPs,
		Target: &Shape{Policy: corev1.IPFamilyPolicyPreferDualStack, Families: []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}}}, corev1.IPFamilyPolicyPreferDualStack)
	if err := j.PutAll(ctx, []journal.Entry{pending}); err != nil {
		t.Fatal(err)
	}
	api.dual = false
	results, err := Rollback(ctx, api, j)
	if err != nil {
		t.Fatal(err)
	}
	after := shapes(t, api)
	for ref, b := range before {
		if after[ref] != b {
			t.Errorf("%s: %s, want %s", ref, after[ref], b)
		}
	}
	for _, r := range results {
		if r.Resource == "service/legacy/old" && (r.Status != "skipped" || !strings.Contains(r.Message, "already as before")) {
			t.Errorf("pending entry: %+v", r)
		}
	}
}

func TestCount(t *testing.T) {
	api := world(t, true)
	c, err := Count(context.Background(), api)
	if err != nil {
		t.Fatal(err)
	}
	// 15 Services: ext (ExternalName) and manual (headless, no selector)
	// have no cluster IP; 10 would be changed.
	if c.WithClusterIP != 13 || c.SingleStack != 10 {
		t.Fatalf("census %+v", c)
	}
	if !slices.Equal(c.Examples, []string{"kube-system/kube-dns", "openshift-dns/dns-default", "istio-system/istiod"}) {
		t.Fatalf("examples %v: system Services first", c.Examples)
	}
}

// A patch without an answer may have been applied: its entry stays
// pending, and rollback, which looks at the Service, restores it.
func TestApplyWithoutAnAnswerLeavesTheEntryPending(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	before := shapes(t, api)
	lost := false
	api.PrependReactor("patch", "services", func(action k8stesting.Action) (bool, runtime.Object, error) {
		pa := action.(k8stesting.PatchActionImpl)
		if pa.GetNamespace() != "shop" || pa.GetName() != "cart" || pa.PatchOptions.DryRun != nil || lost {
			return false, nil, nil
		}
		lost = true
		if _, _, err := api.patchService(action); err != nil {
			return true, nil, err
		}
		return true, nil, context.Canceled // applied, but the answer was lost
	})
	j := &memJournal{}
	c := &Converter{Kube: api, Journal: j, Options: Options{Selection: Selection{IncludeNamespaces: []string{"shop"}}}}
	plan, _ := c.Plan(ctx)
	res, err := c.Apply(ctx, plan)
	if err == nil || res.Failed != 1 {
		t.Fatalf("Apply: %+v %v", res, err)
	}
	if e, _ := j.get(entryID("shop", "cart")); e.State != journal.Pending {
		t.Fatalf("cart's entry: %+v", e)
	}
	if s := api.get("shop", "cart"); len(s.Spec.ClusterIPs) != 2 {
		t.Fatalf("the fake did not apply the lost patch: %+v", s.Spec)
	}
	if _, err := Rollback(ctx, api, j); err != nil {
		t.Fatal(err)
	}
	if after := shapes(t, api); after["shop/cart"] != before["shop/cart"] {
		t.Fatalf("cart: %s, want %s", after["shop/cart"], before["shop/cart"])
	}
}

func TestDiff(t *testing.T) {
	ctx := context.Background()
	api := world(t, true)
	c := &Converter{Kube: api}
	was, _ := c.Plan(ctx)
	// A label change moves resourceVersions on, but the changes are the same.
	api.touch(t, "shop", "cart", func(s *corev1.Service) { s.Labels["owner"] = "me" })
	now, _ := c.Plan(ctx)
	if d := Diff(was, now); d != "" {
		t.Fatalf("same changes, diff %q", d)
	}
	require := corev1.IPFamilyPolicyRequireDualStack
	api.touch(t, "web", "front", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &require, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})
	now, _ = c.Plan(ctx)
	if d := Diff(was, now); !strings.Contains(d, "no longer planned: web/front") || strings.Contains(d, "shop/cart") {
		t.Fatalf("diff %q", d)
	}
}
