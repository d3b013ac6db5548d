package policies

import (
	"context"
	"fmt"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// Actions of a policy in the plan.
const (
	ActionChange  = "change"  // twins are added
	ActionNothing = "nothing" // every IPv4 ipBlock has its twin, or it has none
	// ActionReport: no twin can be added, but some IPv4 ipBlock has none
	// (unmapped or in conflict): the plan says what to do by hand.
	ActionReport = "report"
)

// Item is one NetworkPolicy in the plan.
type Item struct {
	Namespace       string    `json:"namespace"`
	Name            string    `json:"name"`
	UID             types.UID `json:"uid"`
	ResourceVersion string    `json:"resourceVersion"`
	Action          string    `json:"action"`
	// Findings: what becomes of each IPv4 ipBlock.
	Findings []Finding `json:"findings,omitempty"`
	// Original and Target are the spec read and the spec written (change
	// only), so a saved plan is applied exactly.
	Original *networkingv1.NetworkPolicySpec `json:"original,omitempty"`
	Target   *networkingv1.NetworkPolicySpec `json:"target,omitempty"`
}

// Ref is "namespace/name".
func (it Item) Ref() string { return it.Namespace + "/" + it.Name }

// Count is how many of the item's IPv4 ipBlocks took each action.
func (it Item) Count(action string) int {
	n := 0
	for _, f := range it.Findings {
		if f.Action == action {
			n++
		}
	}
	return n
}

// Plan is every NetworkPolicy with an IPv4 ipBlock, and what to do.
type Plan struct {
	Namespaces kube.NamespaceSelection `json:"namespaces,omitzero"`
	Ranges     Ranges                  `json:"ranges"`
	Policies   []Item                  `json:"policies"`
	// Changes is the policies to update; Additions the ipBlocks added.
	Changes   int      `json:"changes"`
	Additions int      `json:"additions"`
	Unmapped  int      `json:"unmapped"`
	Conflicts int      `json:"conflicts"`
	Notes     []string `json:"notes,omitempty"`
}

// Judge is what the plan does with one policy, read-only.
func Judge(np *networkingv1.NetworkPolicy, rs Ranges) Item {
	it := Item{Namespace: np.Namespace, Name: np.Name, UID: np.UID, ResourceVersion: np.ResourceVersion, Action: ActionNothing}
	target, findings := rs.WithTwins(&np.Spec)
	it.Findings = findings
	switch {
	case it.Count(BlockAdd) > 0:
		it.Action = ActionChange
		it.Original, it.Target = np.Spec.DeepCopy(), target
	case it.Count(BlockUnmapped)+it.Count(BlockConflict) > 0:
		it.Action = ActionReport
	}
	return it
}

// Judged is the plan's judgement of policies already listed: those with
// an IPv4 ipBlock, in list order.
func Judged(list []networkingv1.NetworkPolicy, rs Ranges) *Plan {
	p := &Plan{Ranges: rs, Policies: []Item{}}
	for i := range list {
		it := Judge(&list[i], rs)
		if len(it.Findings) == 0 {
			continue // no IPv4 ipBlock: nothing of this package's
		}
		p.Policies = append(p.Policies, it)
		if it.Action == ActionChange {
			p.Changes++
		}
		p.Additions += it.Count(BlockAdd)
		p.Unmapped += it.Count(BlockUnmapped)
		p.Conflicts += it.Count(BlockConflict)
	}
	return p
}

// List reads every NetworkPolicy, page by page.
func List(ctx context.Context, kc kubernetes.Interface) ([]networkingv1.NetworkPolicy, error) {
	out, err := pager.ListAll[networkingv1.NetworkPolicy](ctx, metav1.ListOptions{}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return kc.NetworkingV1().NetworkPolicies(metav1.NamespaceAll).List(ctx, o)
	})
	if err != nil {
		return nil, kube.Explain("listing networkpolicies in all namespaces", err)
	}
	return out, nil
}

// MakePlan lists the NetworkPolicies of the selected namespaces and judges
// each. A namespace flag naming no namespace is bad input (cli.UsageError).
func MakePlan(ctx context.Context, kc kubernetes.Interface, rs Ranges, ns kube.NamespaceSelection) (*Plan, error) {
	allowed, note, err := ns.Resolve(ctx, kc)
	if err != nil {
		return nil, err
	}
	list, err := List(ctx, kc)
	if err != nil {
		return nil, err
	}
	if allowed != nil {
		var kept []networkingv1.NetworkPolicy
		for _, np := range list {
			if allowed[np.Namespace] {
				kept = append(kept, np)
			}
		}
		list = kept
	}
	p := Judged(list, rs)
	p.Namespaces = ns
	if note != "" {
		p.Notes = append(p.Notes, note)
	}
	for _, r := range rs {
		if !r.IPv6.IsValid() {
			p.Notes = append(p.Notes, fmt.Sprintf("the cluster's %s %s has no IPv6 range yet (%s): blocks naming it are reported, not mapped", r.What, r.IPv4, r.Missing))
		}
	}
	return p, nil
}

// Summary lines of the plan's changes, a few named: for upgrade's plan.
func (p *Plan) Summary(max int) []string {
	var out []string
	shown := 0
	for _, it := range p.Policies {
		if it.Action == ActionNothing {
			continue
		}
		if shown == max {
			out = append(out, "and more (-o json lists every one)")
			break
		}
		for _, f := range it.Findings {
			if f.Action != BlockPresent {
				out = append(out, it.Ref()+": "+f.String())
			}
		}
		shown++
	}
	return out
}

// Diff says how two plans' changes differ ("" when they change the same
// policies the same way).
func Diff(was, now *Plan) string {
	key := func(p *Plan) map[string]Item {
		m := map[string]Item{}
		for _, it := range p.Policies {
			if it.Action == ActionChange {
				m[it.Ref()] = it
			}
		}
		return m
	}
	w, n := key(was), key(now)
	var diffs []string
	for ref, it := range w {
		o, ok := n[ref]
		switch {
		case !ok:
			diffs = append(diffs, ref+" no longer needs a change")
		case o.UID != it.UID || !equality.Semantic.DeepEqual(o.Target, it.Target):
			diffs = append(diffs, ref+" would change differently")
		}
	}
	for ref := range n {
		if _, ok := w[ref]; !ok {
			diffs = append(diffs, ref+" needs a change now")
		}
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "; ")
}
