package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// Selection is which Services a run looks at. The zero value is every
// Service in every namespace.
type Selection struct {
	// NamespaceSelector is a label selector on Namespaces.
	NamespaceSelector string `json:"namespaceSelector,omitempty"`
	// IncludeNamespaces, when set, are the only namespaces looked at; each
	// must exist.
	IncludeNamespaces []string `json:"includeNamespaces,omitempty"`
	// ExcludeNamespaces are never looked at; each must exist (a typo must
	// not turn an exclusion into a change).
	ExcludeNamespaces []string `json:"excludeNamespaces,omitempty"`
	// Selector is a label selector on Services.
	Selector string `json:"selector,omitempty"`
}

// Options shape a run.
type Options struct {
	Selection
	// Policy is what changed Services get: PreferDualStack (the default)
	// or RequireDualStack.
	Policy corev1.IPFamilyPolicy `json:"policy"`
}

// Validate checks the options on their own, before the cluster is asked:
// malformed selectors, a bad policy, a namespace both included and
// excluded. Errors are cli.UsageError (exit 2).
func (o *Options) Validate() error {
	if o.Policy == "" {
		o.Policy = corev1.IPFamilyPolicyPreferDualStack
	}
	if o.Policy != corev1.IPFamilyPolicyPreferDualStack && o.Policy != corev1.IPFamilyPolicyRequireDualStack {
		return cli.Usagef("the policy must be PreferDualStack or RequireDualStack, got %q", o.Policy)
	}
	return o.namespaceSelection().Validate(o.Selector)
}

func (o *Options) namespaceSelection() kube.NamespaceSelection {
	return kube.NamespaceSelection{Include: o.IncludeNamespaces, Exclude: o.ExcludeNamespaces, Selector: o.NamespaceSelector}
}

// Action is what a plan does with one Service.
type Action string

const (
	ActionChange Action = "change"
	ActionSkip   Action = "skip"
)

// Item is one Service in a plan. Field names are part of the JSON contract.
type Item struct {
	Namespace       string             `json:"namespace"`
	Name            string             `json:"name"`
	UID             types.UID          `json:"uid"`
	ResourceVersion string             `json:"resourceVersion"`
	Type            corev1.ServiceType `json:"type"`
	// System is cluster-dns or istiod for the Services changed first.
	System string `json:"system,omitempty"`
	Action Action `json:"action"`
	Reason string `json:"reason"`
	// Current is the Service's policy and families as planned from; Target
	// what a change gives it.
	Current    Shape    `json:"current"`
	Target     *Shape   `json:"target,omitempty"`
	ClusterIPs []string `json:"clusterIPs,omitempty"`
	// RollbackNote says what rollback cannot give back exactly, if anything.
	RollbackNote string `json:"rollbackNote,omitempty"`
}

// Ref is namespace/name.
func (it Item) Ref() string { return it.Namespace + "/" + it.Name }

// Plan is what Apply does: every selected Service, changed or skipped, in
// the order they are changed (cluster DNS, istiod, then by namespace and
// name). It is plain data: the upgrade engine shows it, saves it and
// compares it.
type Plan struct {
	Options  Options `json:"options"`
	Services []Item  `json:"services"`
	Changes  int     `json:"changes"`
	Skips    int     `json:"skips"`
	// Blocker, when set, is why nothing of the plan can be applied yet.
	Blocker string `json:"blocker,omitempty"`
	// NeedsIPv6ServiceRange says, as data, that the blocker is the
	// cluster's missing IPv6 service range: the network phase gives it, and
	// a plan made after that phase is the one to apply.
	NeedsIPv6ServiceRange bool     `json:"needsIPv6ServiceRange,omitempty"`
	Notes                 []string `json:"notes,omitempty"`
}

// BlockerNoIPv6Range is the blocker of a cluster whose apiserver cannot
// give a Service a cluster IP of the second family.
const BlockerNoIPv6Range = "the cluster has no IPv6 service range yet: run the network phase first"

// Journal is where changes are recorded before they are made.
// *journal.Store has it.
type Journal interface {
	Load(ctx context.Context) (*journal.Journal, error)
	PutAll(ctx context.Context, entries []journal.Entry) error
}

// Converter plans and applies the Services phase.
type Converter struct {
	Kube    kubernetes.Interface
	Journal Journal // not needed to plan, nor for a server-side dry run
	Options Options
	// ServerDryRun makes Apply send every patch as a server-side dry run:
	// nothing is changed and nothing journalled.
	ServerDryRun bool
	// Parallel is how many patches are in flight at once (default 4).
	Parallel int
	// Log hears progress and warnings (stderr); nil is silent.
	Log io.Writer
}

// Plan reads the namespaces and Services the options select and says what
// Apply would do with each. It changes nothing: besides lists, it sends one
// server-side dry run of the first change, to learn whether the apiserver
// can allocate the second family. Bad input (a namespace that does not
// exist) is a cli.UsageError.
func (c *Converter) Plan(ctx context.Context) (*Plan, error) {
	if err := c.Options.Validate(); err != nil {
		return nil, err
	}
	o := c.Options
	plan := &Plan{Options: o, Services: []Item{}}
	nsAllowed, note, err := c.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	if note != "" {
		plan.Notes = append(plan.Notes, note)
	}
	svcs, err := c.list(ctx, nsAllowed)
	if err != nil {
		return nil, err
	}
	for i := range svcs {
		svc := &svcs[i]
		it := Item{Namespace: svc.Namespace, Name: svc.Name, UID: svc.UID, ResourceVersion: svc.ResourceVersion,
			Type: svc.Spec.Type, System: systemRole(svc), Current: ShapeOf(svc), ClusterIPs: svc.Spec.ClusterIPs}
		change, reason := Judge(svc)
		it.Reason = reason
		if change {
			t := Target(svc, o.Policy)
			it.Action, it.Target = ActionChange, &t
			it.RollbackNote = rollbackNote(it.Current)
			plan.Changes++
		} else {
			it.Action = ActionSkip
			plan.Skips++
		}
		plan.Services = append(plan.Services, it)
	}
	sort.SliceStable(plan.Services, func(a, b int) bool {
		x, y := plan.Services[a], plan.Services[b]
		if rx, ry := systemRank(x.System), systemRank(y.System); rx != ry {
			return rx < ry
		}
		return x.Ref() < y.Ref()
	})
	if plan.Changes > 0 {
		c.checkFamilies(ctx, plan)
	}
	return plan, nil
}

// namespaces resolves the namespace options to the set of namespaces
// looked at; nil means every namespace. Names that do not exist are bad
// input.
func (c *Converter) namespaces(ctx context.Context) (map[string]bool, string, error) {
	o := c.Options
	return o.namespaceSelection().Resolve(ctx, c.Kube)
}

// list reads the selected Services, page by page: one list per included
// namespace when the user named them, else one list of the whole cluster.
func (c *Converter) list(ctx context.Context, allowed map[string]bool) ([]corev1.Service, error) {
	opts := metav1.ListOptions{LabelSelector: c.Options.Selector}
	listIn := func(ns string) ([]corev1.Service, error) {
		out, err := pager.ListAll[corev1.Service](ctx, opts, func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			return c.Kube.CoreV1().Services(ns).List(ctx, lo)
		})
		if err != nil {
			where := "all namespaces"
			if ns != "" {
				where = "namespace " + ns
			}
			return nil, kube.Explain("listing services in "+where, err)
		}
		return out, nil
	}
	if len(c.Options.IncludeNamespaces) > 0 {
		var out []corev1.Service
		for _, ns := range sortedKeys(allowed) {
			svcs, err := listIn(ns)
			if err != nil {
				return nil, err
			}
			out = append(out, svcs...)
		}
		return out, nil
	}
	svcs, err := listIn(metav1.NamespaceAll)
	if err != nil || allowed == nil {
		return svcs, err
	}
	return slices.DeleteFunc(svcs, func(s corev1.Service) bool { return !allowed[s.Namespace] }), nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkFamilies asks the apiserver, with a server-side dry run of the
// first change, whether it can give a Service its second family: a
// cluster without an IPv6 service range refuses ("not configured on this
// cluster"), which becomes the plan's blocker.
func (c *Converter) checkFamilies(ctx context.Context, plan *Plan) {
	var first *Item
	for i := range plan.Services {
		if plan.Services[i].Action == ActionChange {
			first = &plan.Services[i]
			break
		}
	}
	got, err := DryRunShape(ctx, c.Kube, first.Namespace, first.Name, *first.Target)
	switch {
	case err == nil && !got.Equal(*first.Target):
		plan.Blocker = fmt.Sprintf("%s (a server-side dry run gave %s %s, not %s)", BlockerNoIPv6Range, first.Ref(), got, first.Target)
		plan.NeedsIPv6ServiceRange = true
	case err == nil:
	case FamilyNotConfigured(err):
		plan.Blocker, plan.NeedsIPv6ServiceRange = BlockerNoIPv6Range, true
	case apierrors.IsForbidden(err):
		plan.Notes = append(plan.Notes, fmt.Sprintf("could not check that the cluster can allocate IPv6 service IPs: the server-side dry run of the patch of %s was forbidden (%v)", first.Ref(), err))
	default:
		plan.Notes = append(plan.Notes, fmt.Sprintf("a server-side dry run of the patch of %s failed: %v", first.Ref(), err))
	}
}

// DryRunShape sends the patch that gives ns/name the target shape as a
// server-side dry run and returns the shape the apiserver would give it;
// FamilyNotConfigured tells its refusal for want of a service range.
func DryRunShape(ctx context.Context, kc kubernetes.Interface, ns, name string, target Shape) (Shape, error) {
	got, err := kc.CoreV1().Services(ns).Patch(ctx, name, types.MergePatchType, patch(target, ""), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return Shape{}, err
	}
	return ShapeOf(got), nil
}

// FamilyNotConfigured tells the apiserver's refusals of a family its
// service ranges do not have.
func FamilyNotConfigured(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "not configured on this cluster") || strings.Contains(msg, "not configured for dual-stack")
}

// Diff says how two plans differ in what they change, "" when they make
// the same changes: the same Services (by UID), from the same shape to the
// same target. Resource versions and skips do not count, so a plan saved
// earlier still matches one made now if the changes are the same.
func Diff(was, now *Plan) string {
	key := func(it Item) string {
		return fmt.Sprintf("%s (uid %s): %s -> %s", it.Ref(), it.UID, it.Current, it.Target)
	}
	changes := func(p *Plan) map[string]bool {
		m := map[string]bool{}
		for _, it := range p.Services {
			if it.Action == ActionChange {
				m[key(it)] = true
			}
		}
		return m
	}
	a, b := changes(was), changes(now)
	var diffs []string
	for _, k := range sortedKeys(a) {
		if !b[k] {
			diffs = append(diffs, "no longer planned: "+k)
		}
	}
	for _, k := range sortedKeys(b) {
		if !a[k] {
			diffs = append(diffs, "newly planned: "+k)
		}
	}
	if was.Blocker != now.Blocker {
		diffs = append(diffs, fmt.Sprintf("blocker %q, now %q", was.Blocker, now.Blocker))
	}
	const show = 5
	if len(diffs) > show {
		diffs = append(diffs[:show], fmt.Sprintf("and %d more", len(diffs)-show))
	}
	return strings.Join(diffs, "; ")
}
