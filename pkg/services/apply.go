package services

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Statuses of one planned change in a Result.
const (
	StatusChanged = "changed"
	StatusDryRun  = "dry-run" // the apiserver accepted it in a server-side dry run
	// StatusSkipped: the Service changed since the plan and no longer needs
	// it (or is gone); the message says how.
	StatusSkipped = "skipped"
	StatusFailed  = "failed"
	StatusNotRun  = "not-run" // an earlier failure or Ctrl-C stopped the run first
)

// Outcome is what became of one planned change.
type Outcome struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message,omitempty"`
	Before    Shape  `json:"before"`
	After     *Shape `json:"after,omitempty"`
	// ClusterIPs are the Service's cluster IPs after the change.
	ClusterIPs []string `json:"clusterIPs,omitempty"`
}

// Result is what Apply did, one Outcome per planned change, in plan order.
type Result struct {
	Services []Outcome `json:"services"`
	Changed  int       `json:"changed"`
	Skipped  int       `json:"skipped"`
	Failed   int       `json:"failed"`
	NotRun   int       `json:"notRun"`
}

// batchSize is how many changes are recorded as pending in one journal
// write before any of them is made, and as done in one write after.
const batchSize = 50

// errNoIPv6Range marks a patch the apiserver refused for want of an IPv6
// service range: every other patch would fail the same way.
var errNoIPv6Range = errors.New(BlockerNoIPv6Range)

// Apply makes the plan's changes, and only those, in its order. Each batch
// of changes is recorded in the journal as pending before any of them is
// made, and as done (or failed) after. A Service that changed since the
// plan (its resourceVersion moved on) is read again and judged afresh: it
// is patched only if it still needs exactly the change, and a new original
// is journalled first if its families moved. A plan with a blocker is not
// applied at all.
func (c *Converter) Apply(ctx context.Context, plan *Plan) (*Result, error) {
	if plan.Blocker != "" {
		return nil, fmt.Errorf("not applied: %s", plan.Blocker)
	}
	if c.Journal == nil && !c.ServerDryRun {
		return nil, errors.New("applying the Services phase needs the journal")
	}
	sel, err := labels.Parse(plan.Options.Selector)
	if err != nil {
		return nil, fmt.Errorf("the plan's selector %q: %w", plan.Options.Selector, err)
	}
	var changes []Item
	for _, it := range plan.Services {
		if it.Action == ActionChange {
			changes = append(changes, it)
		}
	}
	res := &Result{Services: make([]Outcome, len(changes))}
	for i, it := range changes {
		res.Services[i] = Outcome{Namespace: it.Namespace, Name: it.Name, Status: StatusNotRun, Before: it.Current}
	}
	parallel := c.Parallel
	if parallel <= 0 {
		parallel = 4
	}
	var stop error
	for start := 0; start < len(changes) && stop == nil; start += batchSize {
		if err := ctx.Err(); err != nil {
			stop = err
			break
		}
		batch := changes[start:min(start+batchSize, len(changes))]
		if !c.ServerDryRun {
			pending := make([]journal.Entry, len(batch))
			for i, it := range batch {
				pending[i] = entryFor(it, plan.Options.Policy)
			}
			if err := c.Journal.PutAll(ctx, pending); err != nil {
				stop = fmt.Errorf("recording the next %d changes in the journal before making them: %w", len(batch), err)
				break
			}
		}
		finals := make([]journal.Entry, len(batch))
		sem := make(chan struct{}, parallel)
		var wg sync.WaitGroup
		for i := range batch {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				res.Services[start+i], finals[i] = c.applyOne(ctx, batch[i], plan.Options.Policy, sel)
			}()
		}
		wg.Wait()
		if !c.ServerDryRun {
			// Even after Ctrl-C: the journal must say what was done.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err := c.Journal.PutAll(wctx, finals)
			cancel()
			if err != nil {
				stop = fmt.Errorf("changed %d Services but could not record it in the journal (their pending entries stay, so rollback still finds them): %w", len(batch), err)
			}
		}
		for _, o := range res.Services[start : start+len(batch)] {
			if o.Status == StatusFailed && strings.HasPrefix(o.Message, BlockerNoIPv6Range) && stop == nil {
				stop = errNoIPv6Range
			}
		}
		c.logf("services: %d of %d planned changes done\n", min(start+len(batch), len(changes)), len(changes))
	}
	for _, o := range res.Services {
		switch o.Status {
		case StatusChanged, StatusDryRun:
			res.Changed++
		case StatusSkipped:
			res.Skipped++
		case StatusFailed:
			res.Failed++
		case StatusNotRun:
			res.NotRun++
		}
	}
	if stop != nil {
		return res, stop
	}
	if res.Failed > 0 {
		var first Outcome
		for _, o := range res.Services {
			if o.Status == StatusFailed {
				first = o
				break
			}
		}
		return res, fmt.Errorf("%d of %d Services could not be changed (first: %s/%s: %s); run again to retry them", res.Failed, len(changes), first.Namespace, first.Name, first.Message)
	}
	return res, nil
}

func (c *Converter) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format, args...)
	}
}

// applyOne patches one Service and returns its outcome and the journal
// entry's final state (done, or failed when nothing was changed).
func (c *Converter) applyOne(ctx context.Context, it Item, policy corev1.IPFamilyPolicy, sel labels.Selector) (Outcome, journal.Entry) {
	out := Outcome{Namespace: it.Namespace, Name: it.Name, Before: it.Current}
	entry := entryFor(it, policy)
	notMade := func(status, msg string) (Outcome, journal.Entry) {
		out.Status, out.Message = status, msg
		entry.State = journal.Failed
		entry.Undo = maps.Clone(entry.Undo)
		entry.Undo["notMade"] = msg
		return out, entry
	}
	svcs := c.Kube.CoreV1().Services(it.Namespace)
	opts := metav1.PatchOptions{}
	if c.ServerDryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	rv, target := it.ResourceVersion, *it.Target
	for attempt := 0; ; attempt++ {
		got, err := svcs.Patch(ctx, it.Name, types.MergePatchType, patch(target, rv), opts)
		switch {
		case err == nil:
			return c.applied(out, entry, got, target)
		case apierrors.IsConflict(err) && attempt == 0:
			// Changed since the plan: judged afresh below.
		case apierrors.IsConflict(err):
			return notMade(StatusFailed, "changed again while being patched; run again to plan it afresh")
		case FamilyNotConfigured(err):
			return notMade(StatusFailed, fmt.Sprintf("%s (%v)", BlockerNoIPv6Range, err))
		case apierrors.IsNotFound(err):
			return notMade(StatusSkipped, "deleted since the plan")
		case !kube.Refused(err):
			// No answer (Ctrl-C, a dropped connection) or one that leaves it
			// open (a timeout, a 5xx): the patch may have been applied. The
			// entry stays pending, so rollback and the next run look at the
			// Service itself.
			out.Status, out.Message = StatusFailed, fmt.Sprintf("no clear answer to the patch (%v): it may or may not have been applied; run again or roll back", err)
			return out, entry
		default:
			return notMade(StatusFailed, fmt.Sprintf("patching: %v", err))
		}
		fresh, err := svcs.Get(ctx, it.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return notMade(StatusSkipped, "deleted since the plan")
		case err != nil:
			return notMade(StatusFailed, fmt.Sprintf("changed since the plan, and reading it again failed: %v", err))
		case fresh.UID != it.UID:
			return notMade(StatusSkipped, "re-created since the plan (another UID); run again to plan it")
		case !sel.Matches(labels.Set(fresh.Labels)):
			return notMade(StatusSkipped, "changed since the plan: its labels no longer match the selector")
		}
		if change, reason := Judge(fresh); !change {
			return notMade(StatusSkipped, "changed since the plan: "+reason)
		}
		if now := ShapeOf(fresh); !now.Equal(it.Current) {
			// Its families moved: what rollback restores is the new original,
			// recorded before the change.
			it.Current, it.ClusterIPs = now, fresh.Spec.ClusterIPs
			out.Before = now
			target = Target(fresh, policy)
			entry = entryFor(Item{Namespace: it.Namespace, Name: it.Name, UID: it.UID, Current: now, Target: &target, ClusterIPs: fresh.Spec.ClusterIPs}, policy)
			if !c.ServerDryRun {
				if err := c.Journal.PutAll(ctx, []journal.Entry{entry}); err != nil {
					return notMade(StatusFailed, fmt.Sprintf("changed since the plan, and recording its new original in the journal failed: %v", err))
				}
			}
		}
		rv = fresh.ResourceVersion
	}
}

// applied checks the patched Service: the families asked for and, unless
// it is headless, a cluster IP of each.
func (c *Converter) applied(out Outcome, entry journal.Entry, got *corev1.Service, target Shape) (Outcome, journal.Entry) {
	after := ShapeOf(got)
	out.After, out.ClusterIPs = &after, got.Spec.ClusterIPs
	entry.State = journal.Done
	entry.Undo = maps.Clone(entry.Undo)
	// What was really set is what rollback expects to find.
	entry.Undo["appliedPolicy"] = string(after.Policy)
	entry.Undo["appliedFamilies"] = familiesString(after.Families)
	entry.Undo["clusterIPsAfter"] = strings.Join(got.Spec.ClusterIPs, ",")
	v4, v6 := ipfamily.Cover(got.Spec.ClusterIPs)
	switch {
	case !after.Equal(target):
		out.Status, out.Message = StatusFailed, fmt.Sprintf("the apiserver answered with %s, not %s", after, target)
	case got.Spec.ClusterIP != corev1.ClusterIPNone && !(v4 && v6):
		out.Status, out.Message = StatusFailed, fmt.Sprintf("the apiserver gave it cluster IPs %s, not one of each family", strings.Join(got.Spec.ClusterIPs, ","))
	case c.ServerDryRun:
		out.Status = StatusDryRun
	default:
		out.Status = StatusChanged
	}
	return out, entry
}

// entryID is stable for a Service, so a re-run finds its own entry.
func entryID(ns, name string) string { return Layer + "/" + OpPatchService + "/" + ns + "/" + name }

// entryFor is the pending journal entry of a planned change: the original
// policy, families and cluster IPs, what is set, and the inverse patch.
func entryFor(it Item, policy corev1.IPFamilyPolicy) journal.Entry {
	target := Shape{Policy: policy}
	if it.Target != nil {
		target = *it.Target
	}
	return journal.Entry{
		ID: entryID(it.Namespace, it.Name), Layer: Layer, Operation: OpPatchService,
		Resource: "service/" + it.Namespace + "/" + it.Name, State: journal.Pending,
		Undo: map[string]string{
			"namespace": it.Namespace, "name": it.Name, "uid": string(it.UID),
			"ipFamilyPolicy":  string(it.Current.Policy),
			"ipFamilies":      familiesString(it.Current.Families),
			"clusterIPs":      strings.Join(it.ClusterIPs, ","),
			"appliedPolicy":   string(target.Policy),
			"appliedFamilies": familiesString(target.Families),
			"inversePatch":    string(inversePatch(it.Current, it.ClusterIPs)),
		},
	}
}
