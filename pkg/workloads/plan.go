package workloads

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// DefaultTimeout is Options.Timeout when none is given.
const DefaultTimeout = 5 * time.Minute

// Options select the pods and shape a run.
type Options struct {
	// Namespaces, when set, are the only namespaces looked at; each must
	// exist.
	Namespaces []string `json:"namespaces,omitempty"`
	// ExcludeNamespaces are never looked at; each must exist (a typo must
	// not turn an exclusion into an eviction).
	ExcludeNamespaces []string `json:"excludeNamespaces,omitempty"`
	// NamespaceSelector is a label selector on Namespaces.
	NamespaceSelector string `json:"namespaceSelector,omitempty"`
	// LabelSelector is a label selector on pods.
	LabelSelector string `json:"labelSelector,omitempty"`
	// MaxUnavailable is how many pods are evicted at once (a batch); at
	// least 1.
	MaxUnavailable int `json:"maxUnavailable"`
	// Force evicts pods that no controller re-creates, as kubectl drain
	// --force does: they are gone for good.
	Force bool `json:"force,omitempty"`
	// Timeout bounds each batch twice: the evictions (the drain helper's
	// timeout, during which a PodDisruptionBudget's refusals are retried)
	// and then the wait for the replacements. 0 is DefaultTimeout. It is a
	// knob of the run, not of what the plan changes, so it is not part of
	// the plan's data.
	Timeout time.Duration `json:"-"`
}

// Validate checks the options on their own, before the cluster is asked.
// Errors are cli.UsageError (exit 2).
func (o *Options) Validate() error {
	if o.MaxUnavailable < 1 {
		return cli.Usagef("--max-unavailable must be at least 1, got %d: it is how many pods are evicted at once", o.MaxUnavailable)
	}
	if o.Timeout < 0 {
		return cli.Usagef("--timeout must not be negative, got %s", o.Timeout)
	}
	return o.namespaceSelection().Validate(o.LabelSelector)
}

func (o *Options) namespaceSelection() kube.NamespaceSelection {
	return kube.NamespaceSelection{Include: o.Namespaces, Exclude: o.ExcludeNamespaces, Selector: o.NamespaceSelector}
}

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

// Action is what a plan does with one pod.
type Action string

const (
	ActionEvict Action = "evict"
	ActionSkip  Action = "skip"
)

// Owner is a pod's controller.
type Owner struct {
	Kind string    `json:"kind"`
	Name string    `json:"name"`
	UID  types.UID `json:"uid"`
}

// Item is one pod in a plan. Field names are part of the JSON contract.
type Item struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       types.UID `json:"uid"`
	// Owner is the pod's controller; nil for a pod no controller manages.
	Owner *Owner `json:"owner,omitempty"`
	// Group is cluster-dns, istiod, gateway or workload; Rank its place in
	// the order (0 first).
	Group  string   `json:"group"`
	Rank   int      `json:"rank"`
	Action Action   `json:"action"`
	Reason string   `json:"reason"`
	PodIPs []string `json:"podIPs,omitempty"`
	// PDBs are the PodDisruptionBudgets (names, in the pod's namespace)
	// that select the pod: the ones that can hold its eviction back.
	PDBs []string `json:"pdbs,omitempty"`
}

// Ref is namespace/name.
func (it Item) Ref() string { return it.Namespace + "/" + it.Name }

// Plan is what Apply does: every selected pod that lacks IPv6, evicted or
// skipped, in the order they are evicted (cluster DNS, istiod, gateways,
// then namespace by namespace and by name). Pods that already have IPv6
// are only counted. It is plain data: the upgrade engine shows it, saves
// it and compares it.
type Plan struct {
	Options Options `json:"options"`
	Pods    []Item  `json:"pods"`
	Evicts  int     `json:"evicts"`
	Skips   int     `json:"skips"`
	// DualStack counts the selected pods that already have an IPv6 pod IP.
	DualStack int      `json:"dualStack"`
	Notes     []string `json:"notes,omitempty"`
}

// Converter plans and applies the workloads phase.
type Converter struct {
	Kube    kubernetes.Interface
	Options Options
	// RetryDelay is how long the drain helper waits before retrying an
	// eviction a PodDisruptionBudget refused (429); 0 is 5s, kubectl
	// drain's default.
	RetryDelay time.Duration
	// Log hears progress and warnings (stderr); nil is silent.
	Log io.Writer
}

// Plan reads the namespaces, pods and PodDisruptionBudgets the options
// select and says what Apply would do with each pod that lacks IPv6. It
// changes nothing. Bad input (a namespace that does not exist) is a
// cli.UsageError.
func (c *Converter) Plan(ctx context.Context) (*Plan, error) {
	if err := c.Options.Validate(); err != nil {
		return nil, err
	}
	plan := &Plan{Options: c.Options, Pods: []Item{}}
	allowed, note, err := c.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	if note != "" {
		plan.Notes = append(plan.Notes, note)
	}
	pods, err := listIn[corev1.Pod](ctx, c.Options.Namespaces, allowed, metav1.ListOptions{LabelSelector: c.Options.LabelSelector}, "pods",
		func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return c.Kube.CoreV1().Pods(ns).List(ctx, o)
		})
	if err != nil {
		return nil, err
	}
	for i := range pods {
		p := &pods[i]
		evict, reason := Judge(p, c.Options.Force)
		if !evict && reason == "" {
			plan.DualStack++
			continue
		}
		it := Item{Namespace: p.Namespace, Name: p.Name, UID: p.UID, Group: groupOf(p), Reason: reason, PodIPs: podIPs(p)}
		it.Rank = rankOf(it.Group)
		if ref := metav1.GetControllerOf(p); ref != nil {
			it.Owner = &Owner{Kind: ref.Kind, Name: ref.Name, UID: ref.UID}
		}
		if evict {
			it.Action = ActionEvict
			plan.Evicts++
		} else {
			it.Action = ActionSkip
			plan.Skips++
		}
		plan.Pods = append(plan.Pods, it)
	}
	sort.SliceStable(plan.Pods, func(a, b int) bool {
		x, y := plan.Pods[a], plan.Pods[b]
		if x.Rank != y.Rank {
			return x.Rank < y.Rank
		}
		if x.Namespace != y.Namespace {
			return x.Namespace < y.Namespace
		}
		return x.Name < y.Name
	})
	if plan.Evicts > 0 {
		if err := c.addPDBs(ctx, plan, pods, allowed); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// addPDBs names, on each evicted pod of the plan, the PodDisruptionBudgets
// that select it.
func (c *Converter) addPDBs(ctx context.Context, plan *Plan, pods []corev1.Pod, allowed map[string]bool) error {
	pdbs, err := listIn[policyv1.PodDisruptionBudget](ctx, c.Options.Namespaces, allowed, metav1.ListOptions{}, "poddisruptionbudgets",
		func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return c.Kube.PolicyV1().PodDisruptionBudgets(ns).List(ctx, o)
		})
	if err != nil {
		return err
	}
	byNS := map[string][]policyv1.PodDisruptionBudget{}
	for _, pdb := range pdbs {
		byNS[pdb.Namespace] = append(byNS[pdb.Namespace], pdb)
	}
	podByUID := map[types.UID]*corev1.Pod{}
	for i := range pods {
		podByUID[pods[i].UID] = &pods[i]
	}
	for i := range plan.Pods {
		it := &plan.Pods[i]
		if it.Action != ActionEvict {
			continue
		}
		for _, pdb := range selecting(byNS[it.Namespace], podByUID[it.UID]) {
			it.PDBs = append(it.PDBs, pdb.Name)
		}
	}
	return nil
}

// selecting is the budgets among pdbs (of p's namespace) whose selector
// matches p. In policy/v1 a null selector selects nothing and an empty one
// every pod of the namespace; metav1.LabelSelectorAsSelector says the same.
func selecting(pdbs []policyv1.PodDisruptionBudget, p *corev1.Pod) []policyv1.PodDisruptionBudget {
	if p == nil {
		return nil
	}
	var out []policyv1.PodDisruptionBudget
	for _, pdb := range pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		out = append(out, pdb)
	}
	return out
}

// namespaces resolves the namespace options to the set of namespaces
// looked at; nil means every namespace. Names that do not exist are bad
// input.
func (c *Converter) namespaces(ctx context.Context) (map[string]bool, string, error) {
	o := c.Options
	return o.namespaceSelection().Resolve(ctx, c.Kube)
}

// listIn reads objects page by page: one list per named namespace when the
// user named them, else one list of the whole cluster, filtered by allowed
// (nil: every namespace).
func listIn[T any](ctx context.Context, named []string, allowed map[string]bool, opts metav1.ListOptions, what string,
	list func(context.Context, string, metav1.ListOptions) (runtime.Object, error)) ([]T, error) {
	one := func(ns string) ([]T, error) {
		out, err := pager.ListAll[T](ctx, opts, func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			return list(ctx, ns, lo)
		})
		if err != nil {
			where := "all namespaces"
			if ns != "" {
				where = "namespace " + ns
			}
			return nil, kube.Explain("listing "+what+" in "+where, err)
		}
		return out, nil
	}
	if len(named) > 0 {
		var out []T
		for _, ns := range sortedKeys(allowed) {
			items, err := one(ns)
			if err != nil {
				return nil, err
			}
			out = append(out, items...)
		}
		return out, nil
	}
	items, err := one(metav1.NamespaceAll)
	if err != nil || allowed == nil {
		return items, err
	}
	return slices.DeleteFunc(items, func(x T) bool {
		m, ok := any(&x).(metav1.Object)
		return ok && !allowed[m.GetNamespace()]
	}), nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Diff says how two plans differ in the pods they evict, "" when they
// evict the same ones: the pods (namespace/name) that left the evict list
// and those that joined it. Pods are named, not identified by UID: a
// StatefulSet pod re-created since keeps its name, and Apply skips a pod
// whose UID moved on as already replaced.
func Diff(was, now *Plan) string {
	evicts := func(p *Plan) map[string]bool {
		m := map[string]bool{}
		for _, it := range p.Pods {
			if it.Action == ActionEvict {
				m[it.Ref()] = true
			}
		}
		return m
	}
	a, b := evicts(was), evicts(now)
	var gone, added []string
	for _, k := range sortedKeys(a) {
		if !b[k] {
			gone = append(gone, k)
		}
	}
	for _, k := range sortedKeys(b) {
		if !a[k] {
			added = append(added, k)
		}
	}
	var parts []string
	if len(gone) > 0 {
		parts = append(parts, "no longer evicted: "+listSome(gone))
	}
	if len(added) > 0 {
		parts = append(parts, "newly evicted: "+listSome(added))
	}
	return strings.Join(parts, "; ")
}

// listSome joins names, at most a handful of them.
func listSome(names []string) string {
	const show = 5
	if len(names) > show {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:show], ", "), len(names)-show)
	}
	return strings.Join(names, ", ")
}
