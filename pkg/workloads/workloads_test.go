package workloads

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

func opts() Options { return Options{MaxUnavailable: 1, Timeout: 5 * time.Second} }

// mixedCluster has one pod of every kind the plan tells apart.
func mixedCluster() []runtime.Object {
	now := metav1.Now()
	rs := func(name string) podOpt { return owned("ReplicaSet", name, types.UID("rs-"+name)) }
	return []runtime.Object{
		ns("kube-system", nil), ns("openshift-dns", nil), ns("istio-system", nil), ns("shop", map[string]string{"team": "shop"}),
		ns("blog", map[string]string{"team": "blog"}), ns("edge", nil),
		pod("shop", "web-b", v4, rs("web"), labelled("app", "web")),
		pod("shop", "web-a", v4, rs("web"), labelled("app", "web")),
		pod("blog", "api-1", v4, rs("api")),
		pod("kube-system", "coredns-1", v4, rs("coredns"), labelled("k8s-app", "kube-dns")),
		pod("openshift-dns", "dns-default-x", v4, owned("DaemonSet", "dns-default", "ds-dns"), labelled("dns.operator.openshift.io/daemonset-dns", "default")),
		pod("openshift-dns", "node-resolver-x", v4, owned("DaemonSet", "node-resolver", "ds-nr"), func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
		pod("istio-system", "istiod-1", v4, rs("istiod"), labelled("app", "istiod")),
		pod("istio-system", "istio-ingressgateway-1", v4, rs("igw"), labelled("istio", "ingressgateway")),
		pod("edge", "public-gw-1", v4, rs("pgw"), labelled("gateway.istio.io/managed", "istio.io-gateway-controller")),
		pod("kube-system", "kube-apiserver-m1", v4, func(p *corev1.Pod) {
			p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"}
		}),
		pod("shop", "leaving", v4, rs("web"), func(p *corev1.Pod) { p.DeletionTimestamp = &now; p.Finalizers = []string{"x"} }),
		pod("shop", "job-done", v4, owned("Job", "j", "job-1"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		pod("shop", "bare", v4),
		pod("shop", "already", dual, rs("web")),
		pod("shop", "starting", nil, rs("web"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }),
		pod("blog", "logs-x", v4, owned("DaemonSet", "logs", "ds-logs")),
		pdb("shop", "web", map[string]string{"app": "web"}, 2, 2, 0),
		pdb("shop", "other", map[string]string{"app": "other"}, 1, 1, 0),
	}
}

func TestPlanOrderAndReasons(t *testing.T) {
	w := newWorld(t, mixedCluster()...)
	c := &Converter{Kube: w.kc, Options: opts()}
	plan, err := c.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range plan.Pods {
		got = append(got, fmt.Sprintf("%s %s %s", it.Action, it.Group, it.Ref()))
	}
	want := []string{
		"evict cluster-dns kube-system/coredns-1",
		"evict cluster-dns openshift-dns/dns-default-x",
		"evict istiod istio-system/istiod-1",
		"evict gateway edge/public-gw-1",
		"evict gateway istio-system/istio-ingressgateway-1",
		"evict workload blog/api-1",
		"evict workload blog/logs-x", // a DaemonSet's pod: eviction works, the DaemonSet re-creates it
		"skip workload kube-system/kube-apiserver-m1",
		"skip workload openshift-dns/node-resolver-x",
		"skip workload shop/bare",
		"skip workload shop/job-done",
		"skip workload shop/leaving",
		"skip workload shop/starting",
		"evict workload shop/web-a",
		"evict workload shop/web-b",
	}
	if !slices.Equal(got, want) {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	reasons := map[string]string{}
	byRef := map[string]Item{}
	for _, it := range plan.Pods {
		reasons[it.Ref()] = it.Reason
		byRef[it.Ref()] = it
	}
	for ref, want := range map[string]string{
		"kube-system/kube-apiserver-m1": ReasonMirror,
		"openshift-dns/node-resolver-x": ReasonHostNetwork,
		"shop/bare":                     ReasonNoController,
		"shop/job-done":                 ReasonCompleted,
		"shop/leaving":                  ReasonTerminating,
		"shop/starting":                 ReasonNoIPYet,
		"shop/web-a":                    ReasonNeedsIPv6,
	} {
		if reasons[ref] != want {
			t.Errorf("%s: reason %q, want %q", ref, reasons[ref], want)
		}
	}
	if plan.Evicts != 9 || plan.Skips != 6 || plan.DualStack != 1 {
		t.Errorf("evicts %d skips %d dualStack %d, want 9 6 1", plan.Evicts, plan.Skips, plan.DualStack)
	}
	if got := byRef["shop/web-a"].PDBs; !slices.Equal(got, []string{"web"}) {
		t.Errorf("shop/web-a PDBs %v, want [web]", got)
	}
	if got := byRef["blog/api-1"].PDBs; len(got) != 0 {
		t.Errorf("blog/api-1 PDBs %v, want none", got)
	}
	if o := byRef["shop/web-a"].Owner; o == nil || o.Kind != "ReplicaSet" || o.Name != "web" {
		t.Errorf("shop/web-a owner %+v", o)
	}
	// Plain data, with the JSON names the contract promises.
	b, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"namespace":"shop"`, `"uid":`, `"owner":{"kind":"ReplicaSet","name":"web"`, `"action":"evict"`, `"pdbs":["web"]`, `"rank":0`, `"group":"cluster-dns"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("plan JSON lacks %s", key)
		}
	}
}

func TestPlanSelection(t *testing.T) {
	w := newWorld(t, mixedCluster()...)
	for _, tc := range []struct {
		name string
		o    func(*Options)
		want []string // evicted refs
	}{
		{"namespaces", func(o *Options) { o.Namespaces = []string{"blog"} }, []string{"blog/api-1", "blog/logs-x"}},
		{"namespace selector", func(o *Options) { o.NamespaceSelector = "team=shop" }, []string{"shop/web-a", "shop/web-b"}},
		{"exclude", func(o *Options) {
			o.ExcludeNamespaces = []string{"shop", "blog", "kube-system", "openshift-dns"}
		}, []string{"istio-system/istiod-1", "edge/public-gw-1", "istio-system/istio-ingressgateway-1"}},
		{"pod selector", func(o *Options) { o.LabelSelector = "app=web" }, []string{"shop/web-a", "shop/web-b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			tc.o(&o)
			plan, err := (&Converter{Kube: w.kc, Options: o}).Plan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range plan.Pods {
				if it.Action == ActionEvict {
					got = append(got, it.Ref())
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("evicts %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBadInputIsUsageError(t *testing.T) {
	w := newWorld(t, mixedCluster()...)
	for _, tc := range []struct {
		name string
		o    func(*Options)
		want string
	}{
		{"max-unavailable 0", func(o *Options) { o.MaxUnavailable = 0 }, "--max-unavailable"},
		{"max-unavailable negative", func(o *Options) { o.MaxUnavailable = -2 }, "--max-unavailable"},
		{"bad pod selector", func(o *Options) { o.LabelSelector = "app=web,,=x" }, "--selector"},
		{"bad namespace selector", func(o *Options) { o.NamespaceSelector = "team in (" }, "--namespace-selector"},
		{"unknown namespace", func(o *Options) { o.Namespaces = []string{"shop", "nope"} }, "no namespace named nope"},
		{"unknown excluded namespace", func(o *Options) { o.ExcludeNamespaces = []string{"typo"} }, "no namespace named typo"},
		{"included and excluded", func(o *Options) { o.Namespaces = []string{"shop"}; o.ExcludeNamespaces = []string{"shop"} }, "both"},
		{"negative timeout", func(o *Options) { o.Timeout = -time.Second }, "--timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			tc.o(&o)
			_, err := (&Converter{Kube: w.kc, Options: o}).Plan(context.Background())
			var u *cli.UsageError
			if !errors.As(err, &u) || cli.ExitCode(err) != cli.ExitBadUsage {
				t.Fatalf("got %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("message %q: want one line mentioning %q", err, tc.want)
			}
		})
	}
}

// TestApplyBatches evicts a StatefulSet's pod and two ReplicaSet pods two
// at a time: the controller (the fake's eviction reactor) re-creates each
// evicted pod dual-stack; the third eviction waits for the first batch's
// replacements.
func TestApplyBatches(t *testing.T) {
	w := newWorld(t,
		ns("shop", nil),
		pod("shop", "db-0", v4, owned("StatefulSet", "db", "sts-db")),
		pod("shop", "web-a", v4, owned("ReplicaSet", "web", "rs-web")),
		pod("shop", "web-b", v4, owned("ReplicaSet", "web", "rs-web")),
	)
	w.replace = dualStackReplacement
	replacementsAtThird := -1
	w.atEviction = func(p *corev1.Pod) {
		if len(w.evicted) != 2 {
			return
		}
		objs, _ := w.kc.Tracker().List(podsGVR, corev1.SchemeGroupVersion.WithKind("Pod"), "shop", metav1.ListOptions{})
		replacementsAtThird = 0
		for _, p := range objs.(*corev1.PodList).Items {
			if dualStack(&p) && ready(&p) {
				replacementsAtThird++
			}
		}
	}
	o := opts()
	o.MaxUnavailable = 2
	var log bytes.Buffer
	c := &Converter{Kube: w.kc, Options: o, Log: &log}
	plan, err := c.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Apply(context.Background(), plan)
	if err != nil {
		t.Fatalf("apply: %v\nlog:\n%s", err, log.String())
	}
	got := w.evictions()
	if !slices.Equal(got, []string{"shop/db-0", "shop/web-a", "shop/web-b"}) && !slices.Equal(got, []string{"shop/web-a", "shop/db-0", "shop/web-b"}) {
		t.Errorf("evictions %v: want db-0 and web-a, then web-b", got)
	}
	if replacementsAtThird != 2 {
		t.Errorf("when web-b was evicted, %d dual-stack replacements were Ready, want 2 (the first batch's)", replacementsAtThird)
	}
	if res.Recreated != 3 || res.Failed+res.Evicted+res.NotRun != 0 {
		t.Errorf("result %+v", res)
	}
	want := map[string]string{"db-0": "db-0", "web-a": "web-a-new", "web-b": "web-b-new"}
	for _, o := range res.Pods {
		if o.Status != StatusRecreated || o.Replacement != want[o.Name] || len(o.ReplacementIPs) != 2 {
			t.Errorf("%s: %+v", o.Name, o)
		}
	}
	if len(res.Namespaces) != 1 || len(res.Namespaces[0].Moved) != 3 || len(res.Namespaces[0].Left) != 0 {
		t.Errorf("per namespace: %+v", res.Namespaces)
	}
	if !strings.Contains(log.String(), "workloads: 3 of 3 pods re-created (shop)") || !strings.Contains(log.String(), "workloads: evicting pod shop/db-0") {
		t.Errorf("log:\n%s", log.String())
	}
}

// TestApplyWaitsForReady: the replacement comes up without being Ready;
// Apply waits (on a watch) until it is, and no longer.
func TestApplyWaitsForReady(t *testing.T) {
	w := newWorld(t, ns("shop", nil), pod("shop", "web-a", v4, owned("ReplicaSet", "web", "rs-web")))
	w.replace = func(old *corev1.Pod) *corev1.Pod {
		np := dualStackReplacement(old)
		np.Status.Conditions[0].Status = corev1.ConditionFalse
		return np
	}
	opened := w.signalWatches()
	go func() {
		select {
		case <-opened:
		case <-time.After(5 * time.Second):
			return
		}
		obj, err := w.kc.Tracker().Get(podsGVR, "shop", "web-a-new")
		if err != nil {
			t.Errorf("replacement: %v", err)
			return
		}
		p := obj.(*corev1.Pod).DeepCopy()
		p.Status.Conditions[0].Status = corev1.ConditionTrue
		if err := w.kc.Tracker().Update(podsGVR, p, "shop"); err != nil {
			t.Errorf("marking it Ready: %v", err)
		}
	}()
	c := &Converter{Kube: w.kc, Options: opts()}
	plan, err := c.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := c.Apply(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pods[0].Status != StatusRecreated || res.Pods[0].Replacement != "web-a-new" {
		t.Errorf("outcome %+v", res.Pods[0])
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %s: the wait should end as the replacement turns Ready", d)
	}
}

// TestApplyNotReadyTimesOut: a replacement that never turns Ready leaves
// the pod evicted, named in the error.
func TestApplyNotReadyTimesOut(t *testing.T) {
	w := newWorld(t, ns("shop", nil), pod("shop", "web-a", v4, owned("ReplicaSet", "web", "rs-web")))
	w.replace = func(old *corev1.Pod) *corev1.Pod {
		np := dualStackReplacement(old)
		np.Status.Conditions[0].Status = corev1.ConditionFalse
		return np
	}
	o := opts()
	o.Timeout = 300 * time.Millisecond
	c := &Converter{Kube: w.kc, Options: o}
	plan, _ := c.Plan(context.Background())
	res, err := c.Apply(context.Background(), plan)
	if err == nil || !strings.Contains(err.Error(), "shop/web-a: its replacement web-a-new is not Ready") {
		t.Fatalf("error %v", err)
	}
	if res.Pods[0].Status != StatusEvicted || res.Evicted != 1 || !slices.Equal(res.Namespaces[0].Left, []string{"web-a"}) {
		t.Errorf("result %+v", res)
	}
}

// TestApplyStopsOnIPv4OnlyReplacement: a cluster network without IPv6
// gives the replacement IPv4 only; Apply stops after the first batch
// instead of churning every pod.
func TestApplyStopsOnIPv4OnlyReplacement(t *testing.T) {
	w := newWorld(t, ns("shop", nil),
		pod("shop", "web-a", v4, owned("ReplicaSet", "web", "rs-web")),
		pod("shop", "web-b", v4, owned("ReplicaSet", "web", "rs-web")))
	w.replace = func(old *corev1.Pod) *corev1.Pod {
		np := dualStackReplacement(old)
		setIPs(np, []string{"10.128.0.99"})
		return np
	}
	c := &Converter{Kube: w.kc, Options: opts()}
	plan, _ := c.Plan(context.Background())
	res, err := c.Apply(context.Background(), plan)
	if !errors.Is(err, errIPv4Only) {
		t.Fatalf("error %v, want errIPv4Only", err)
	}
	if got := w.evictions(); !slices.Equal(got, []string{"shop/web-a"}) {
		t.Errorf("evictions %v, want only the first batch", got)
	}
	if res.NotRun != 1 || res.Evicted != 1 {
		t.Errorf("result %+v", res)
	}
}

func tooManyRequests(pdbName string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: 429, Reason: metav1.StatusReasonTooManyRequests,
		Message: "Cannot evict pod as it would violate the pod's disruption budget.",
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause,
			Message: "The disruption budget " + pdbName + " needs 2 healthy pods and has 2 currently"}}},
	}}
}

// TestApplyPDBNeverAllows: the budget of shop's web pods answers every
// eviction 429. The DNS pod before them moves; then the drain helper
// retries until the time limit and Apply names the budget, its numbers and
// the pods not moved.
func TestApplyPDBNeverAllows(t *testing.T) {
	w := newWorld(t, ns("kube-system", nil), ns("shop", nil),
		pod("kube-system", "coredns-1", v4, owned("ReplicaSet", "coredns", "rs-dns"), labelled("k8s-app", "kube-dns")),
		pod("shop", "web-a", v4, owned("ReplicaSet", "web", "rs-web"), labelled("app", "web")),
		pod("shop", "web-b", v4, owned("ReplicaSet", "web", "rs-web"), labelled("app", "web")),
		pdb("shop", "web", map[string]string{"app": "web"}, 2, 2, 0),
		pdb("shop", "unrelated", map[string]string{"app": "db"}, 1, 1, 0),
	)
	w.replace = dualStackReplacement
	w.refuse = func(p *corev1.Pod) error {
		if p.Labels["app"] == "web" {
			return tooManyRequests("web")
		}
		return nil
	}
	o := opts()
	o.Timeout, o.MaxUnavailable = 400*time.Millisecond, 2
	var log bytes.Buffer
	c := &Converter{Kube: w.kc, Options: o, RetryDelay: 20 * time.Millisecond, Log: &log}
	plan, err := c.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := c.Apply(context.Background(), plan)
	elapsed := time.Since(start)
	var blocked *BlockedError
	if !errors.As(err, &blocked) {
		t.Fatalf("error %v, want a *BlockedError", err)
	}
	if len(blocked.PDBs) != 1 || blocked.PDBs[0] != (PDBStatus{Namespace: "shop", Name: "web", CurrentHealthy: 2, DesiredHealthy: 2, DisruptionsAllowed: 0}) {
		t.Errorf("PDBs %+v, want only shop/web with its numbers", blocked.PDBs)
	}
	msg := err.Error()
	for _, want := range []string{"PodDisruptionBudget shop/web (currentHealthy 2, desiredHealthy 2, disruptionsAllowed 0)", "shop/web-a", "shop/web-b", "1 pods moved, 2 not"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "unrelated") {
		t.Errorf("error names a budget that selects none of the pods: %s", msg)
	}
	if res.Recreated != 1 || res.Failed != 2 || res.Pods[0].Status != StatusRecreated {
		t.Errorf("result %+v", res)
	}
	if elapsed < o.Timeout || elapsed > 3*time.Second {
		t.Errorf("took %s, want just over the %s limit", elapsed, o.Timeout)
	}
	w.mu.Lock()
	attempts := w.attempts["shop/web-a"]
	w.mu.Unlock()
	if attempts < 3 {
		t.Errorf("the refused eviction was tried %d times: the drain helper should retry it", attempts)
	}
	if !strings.Contains(log.String(), "will retry after") {
		t.Errorf("log lacks the drain helper's retry lines:\n%s", log.String())
	}
}

// TestApplyInterrupted: Ctrl-C while a budget holds an eviction back ends
// the run at once, as an interruption, not as the budget's fault.
func TestApplyInterrupted(t *testing.T) {
	w := newWorld(t, ns("shop", nil), pod("shop", "web-a", v4, owned("ReplicaSet", "web", "rs-web"), labelled("app", "web")),
		pdb("shop", "web", map[string]string{"app": "web"}, 1, 1, 0))
	w.refuse = func(*corev1.Pod) error { return tooManyRequests("web") }
	c := &Converter{Kube: w.kc, Options: opts(), RetryDelay: 20 * time.Millisecond}
	plan, _ := c.Plan(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := c.Apply(ctx, plan)
	var blocked *BlockedError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &blocked) || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("error %v, want the interruption", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s after the interruption", d)
	}
	if res.Failed != 1 {
		t.Errorf("result %+v", res)
	}
}

func TestApplyForbidden(t *testing.T) {
	w := newWorld(t, ns("shop", nil), pod("shop", "web-a", v4, owned("ReplicaSet", "web", "rs-web")))
	w.refuse = func(p *corev1.Pod) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods/eviction"}, p.Name,
			errors.New(`User "bob" cannot create resource "pods/eviction" in API group "" in the namespace "shop"`))
	}
	c := &Converter{Kube: w.kc, Options: opts(), RetryDelay: 20 * time.Millisecond}
	plan, _ := c.Plan(context.Background())
	res, err := c.Apply(context.Background(), plan)
	if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `resources ["pods/eviction"], verbs ["create"]`) || !strings.Contains(err.Error(), "namespace shop") {
		t.Fatalf("error %v: want a Forbidden naming create on pods/eviction in shop", err)
	}
	if w.attempts["shop/web-a"] != 1 {
		t.Errorf("a forbidden eviction was tried %d times, want once", w.attempts["shop/web-a"])
	}
	if res.Failed != 1 {
		t.Errorf("result %+v", res)
	}
}

// TestApplyBudgetRefusalsWithoutRetry: the apiserver's other budget
// refusals (a Forbidden with a DisruptionBudget cause, the 500 of a pod
// two budgets select) end in a BlockedError at once, not as an RBAC error.
func TestApplyBudgetRefusalsWithoutRetry(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"negative disruptionsAllowed", func() error {
			e := apierrors.NewForbidden(policyv1.Resource("poddisruptionbudget"), "web", errors.New("pdb disruptions allowed is negative"))
			e.ErrStatus.Details.Causes = append(e.ErrStatus.Details.Causes, metav1.StatusCause{Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget web does not allow evicting pods currently"})
			return e
		}()},
		{"two budgets", &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 500,
			Message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, ns("shop", nil), pod("shop", "web-a", v4, owned("ReplicaSet", "web", "rs-web"), labelled("app", "web")),
				pdb("shop", "web", map[string]string{"app": "web"}, 2, 2, -1), pdb("shop", "web-too", map[string]string{"app": "web"}, 2, 2, 0))
			w.refuse = func(*corev1.Pod) error { return tc.err }
			c := &Converter{Kube: w.kc, Options: opts(), RetryDelay: 20 * time.Millisecond}
			plan, _ := c.Plan(context.Background())
			start := time.Now()
			_, err := c.Apply(context.Background(), plan)
			var blocked *BlockedError
			if !errors.As(err, &blocked) {
				t.Fatalf("error %v, want a *BlockedError", err)
			}
			var names []string
			for _, p := range blocked.PDBs {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, []string{"web", "web-too"}) {
				t.Errorf("PDBs %v: want both budgets that select the pod", names)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s: a refusal the drain helper does not retry should end at once", d)
			}
		})
	}
}

func TestBarePodNeedsForce(t *testing.T) {
	objs := []runtime.Object{ns("shop", nil), pod("shop", "bare", v4)}

	w := newWorld(t, objs...)
	c := &Converter{Kube: w.kc, Options: opts()}
	plan, err := c.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if plan.Evicts != 0 || plan.Pods[0].Action != ActionSkip || plan.Pods[0].Reason != ReasonNoController {
		t.Fatalf("without force: %+v", plan.Pods)
	}
	if _, err := c.Apply(context.Background(), plan); err != nil || len(w.evictions()) != 0 {
		t.Fatalf("without force: err %v, evictions %v", err, w.evictions())
	}

	w = newWorld(t, objs...)
	o := opts()
	o.Force = true
	c = &Converter{Kube: w.kc, Options: o}
	plan, err = c.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if plan.Evicts != 1 || plan.Pods[0].Reason != ReasonForced {
		t.Fatalf("with force: %+v", plan.Pods)
	}
	res, err := c.Apply(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.evictions(), []string{"shop/bare"}) || res.Removed != 1 || res.Pods[0].Status != StatusRemoved {
		t.Errorf("with force: evictions %v, result %+v", w.evictions(), res)
	}
	if _, err := w.kc.CoreV1().Pods("shop").Get(context.Background(), "bare", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the bare pod is still there: %v", err)
	}
}

// TestApplyRereads: pods that changed since the plan are not evicted.
func TestApplyRereads(t *testing.T) {
	w := newWorld(t, ns("shop", nil),
		pod("shop", "db-0", v4, owned("StatefulSet", "db", "sts-db")),
		pod("shop", "gone", v4, owned("ReplicaSet", "web", "rs-web")),
		pod("shop", "upgraded", v4, owned("ReplicaSet", "web", "rs-web")),
		pod("shop", "web-a", v4, owned("ReplicaSet", "web", "rs-web")))
	w.replace = dualStackReplacement
	o := opts()
	o.MaxUnavailable = 4
	c := &Converter{Kube: w.kc, Options: o}
	plan, err := c.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pods := w.kc.CoreV1().Pods("shop")
	// db-0 re-created by its StatefulSet (same name, another UID), gone
	// deleted, upgraded given IPv6.
	if err := w.kc.Tracker().Delete(podsGVR, "shop", "db-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Create(ctx, pod("shop", "db-0", v4, owned("StatefulSet", "db", "sts-db")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := w.kc.Tracker().Delete(podsGVR, "shop", "gone"); err != nil {
		t.Fatal(err)
	}
	up, _ := pods.Get(ctx, "upgraded", metav1.GetOptions{})
	setIPs(up, dual)
	if _, err := pods.UpdateStatus(ctx, up, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.evictions(), []string{"shop/web-a"}) {
		t.Errorf("evictions %v, want only web-a", w.evictions())
	}
	if res.AlreadyReplaced != 3 || res.Recreated != 1 {
		t.Errorf("result %+v", res)
	}
}

func TestDiff(t *testing.T) {
	mk := func(refs ...string) *Plan {
		p := &Plan{}
		for _, r := range refs {
			ns, name, _ := strings.Cut(r, "/")
			p.Pods = append(p.Pods, Item{Namespace: ns, Name: name, Action: ActionEvict})
		}
		p.Pods = append(p.Pods, Item{Namespace: "x", Name: "skipped", Action: ActionSkip})
		return p
	}
	if d := Diff(mk("a/1", "b/2"), mk("a/1", "b/2")); d != "" {
		t.Errorf("same plans: %q", d)
	}
	if d := Diff(mk("a/1", "b/2"), mk("a/1", "c/3")); d != "no longer evicted: b/2; newly evicted: c/3" {
		t.Errorf("diff %q", d)
	}
}

func TestCount(t *testing.T) {
	w := newWorld(t, mixedCluster()...)
	got, err := Count(context.Background(), w.kc)
	if err != nil {
		t.Fatal(err)
	}
	// The nine planned evictions, plus the bare pod; not the static,
	// hostNetwork, terminating, completed, pending or dual-stack ones.
	if got.IPv4Only != 10 || got.Uncontrolled != 1 || got.Namespaces["shop"] != 3 || got.Namespaces["blog"] != 2 || got.Namespaces["kube-system"] != 1 {
		t.Errorf("census %+v", got)
	}
}
