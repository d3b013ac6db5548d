package policies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Layer is the journal layer of the NetworkPolicies' changes.
const Layer = "policies"

// OpUpdatePolicy is the journal operation of one policy's update.
const OpUpdatePolicy = "update-networkpolicy"

// ErrChanged is a policy that changed since the plan: it was not written.
var ErrChanged = errors.New("changed since the plan: plan again (nothing of it was overwritten)")

// Journal is where the originals are recorded. *journal.Store has it.
type Journal interface {
	Load(ctx context.Context) (*journal.Journal, error)
	PutAll(ctx context.Context, entries []journal.Entry) error
}

// Statuses of one policy in a Result.
const (
	StatusChanged = "changed"
	StatusDryRun  = "dry-run" // the apiserver accepted it in a server-side dry run
	StatusAlready = "already" // it holds the target spec already (a re-run)
	StatusFailed  = "failed"
	StatusNotRun  = "not-run"
)

// Outcome is what became of one planned change.
type Outcome struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message,omitempty"`
	Added     int    `json:"added"`
}

// Result is what Apply did, one Outcome per planned change.
type Result struct {
	Policies []Outcome `json:"policies"`
	Changed  int       `json:"changed"`
	Failed   int       `json:"failed"`
}

// Applier applies a plan.
type Applier struct {
	Kube    kubernetes.Interface
	Journal Journal
	// ServerDryRun sends each update as a server-side dry run, unjournalled.
	ServerDryRun bool
}

func entryID(ns, name string) string { return Layer + "/" + OpUpdatePolicy + "/" + ns + "/" + name }

func specJSON(s *networkingv1.NetworkPolicySpec) string {
	b, _ := json.Marshal(s) // a typed struct: cannot fail
	return string(b)
}

// entryFor is the pending entry of a planned change: the whole original
// spec and the spec written.
func entryFor(it Item) journal.Entry {
	return journal.Entry{
		ID: entryID(it.Namespace, it.Name), Layer: Layer, Operation: OpUpdatePolicy,
		Resource: "networkpolicy/" + it.Namespace + "/" + it.Name, State: journal.Pending,
		Undo: map[string]string{
			"namespace": it.Namespace, "name": it.Name, "uid": string(it.UID),
			"plannedResourceVersion": it.ResourceVersion,
			"original":               specJSON(it.Original), "applied": specJSON(it.Target),
		},
	}
}

// Apply makes the plan's changes, one policy at a time, in plan order:
// the original spec journalled first, then the update carrying the
// resourceVersion the plan read, so a policy changed since is refused
// (ErrChanged), never overwritten; then the entry recorded done. It stops
// at the first failure.
func (a *Applier) Apply(ctx context.Context, p *Plan) (*Result, error) {
	if a.Journal == nil && !a.ServerDryRun {
		return nil, errors.New("applying the policies needs the journal")
	}
	res := &Result{Policies: []Outcome{}}
	var changes []Item
	for _, it := range p.Policies {
		if it.Action == ActionChange {
			changes = append(changes, it)
			res.Policies = append(res.Policies, Outcome{Namespace: it.Namespace, Name: it.Name, Status: StatusNotRun, Added: it.Count(BlockAdd)})
		}
	}
	for i, it := range changes {
		o := &res.Policies[i]
		msg, status, err := a.applyOne(ctx, it)
		o.Status, o.Message = status, msg
		if err != nil {
			o.Status, o.Message = StatusFailed, err.Error()
			res.Failed++
			return res, fmt.Errorf("networkpolicy %s: %w", it.Ref(), err)
		}
		if status == StatusChanged || status == StatusDryRun {
			res.Changed++
		}
	}
	return res, nil
}

func (a *Applier) applyOne(ctx context.Context, it Item) (string, string, error) {
	nps := a.Kube.NetworkingV1().NetworkPolicies(it.Namespace)
	cur, err := nps.Get(ctx, it.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", "", fmt.Errorf("deleted since the plan: %w", ErrChanged)
	case err != nil:
		return "", "", kube.Explain("reading networkpolicy "+it.Ref(), err)
	case cur.UID != it.UID:
		return "", "", fmt.Errorf("re-created since the plan (another UID): %w", ErrChanged)
	case equality.Semantic.DeepEqual(&cur.Spec, it.Target):
		return "has its IPv6 twins already", StatusAlready, nil // a re-run after an interruption
	case cur.ResourceVersion != it.ResourceVersion:
		return "", "", fmt.Errorf("resourceVersion %s, planned at %s: %w", cur.ResourceVersion, it.ResourceVersion, ErrChanged)
	}
	upd := cur.DeepCopy()
	upd.Spec = *it.Target.DeepCopy()
	upd.ResourceVersion = it.ResourceVersion // the plan's: a change since is a conflict
	if a.ServerDryRun {
		if _, err := nps.Update(ctx, upd, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			return "", "", kube.Explain("dry-run update of networkpolicy "+it.Ref(), err)
		}
		return "", StatusDryRun, nil
	}
	entry := entryFor(it)
	if err := a.Journal.PutAll(ctx, []journal.Entry{entry}); err != nil {
		return "", "", fmt.Errorf("recording its original spec in the journal before changing it (nothing was changed): %w", err)
	}
	got, err := nps.Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		if kube.Refused(err) {
			entry.State = journal.Failed
			entry.Undo["notMade"] = err.Error()
			_ = putFinal(ctx, a.Journal, entry)
		}
		if apierrors.IsConflict(err) {
			return "", "", fmt.Errorf("%v: %w", err, ErrChanged)
		}
		return "", "", kube.Explain("updating networkpolicy "+it.Ref(), err)
	}
	entry.State = journal.Done
	entry.Undo["appliedResourceVersion"] = got.ResourceVersion
	if err := putFinal(ctx, a.Journal, entry); err != nil {
		return "", "", fmt.Errorf("changed it but could not record that in the journal (its pending entry stays, so rollback still finds it): %w", err)
	}
	return fmt.Sprintf("added %d IPv6 ipBlocks", it.Count(BlockAdd)), StatusChanged, nil
}

// putFinal records an entry even after Ctrl-C.
func putFinal(ctx context.Context, j Journal, e journal.Entry) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return j.PutAll(wctx, []journal.Entry{e})
}
