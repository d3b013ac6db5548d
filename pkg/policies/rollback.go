package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// Undoable is the layer's entries rollback takes back, newest first.
func Undoable(j *journal.Journal) []journal.Entry { return j.Undoable(Layer) }

// Rollback gives every policy the journal records as changed its original
// spec back, newest first, provided it still holds exactly the spec this
// tool wrote: one deleted, re-created or changed by someone else since is
// left alone and said so (its original stays in the journal entry).
func Rollback(ctx context.Context, kc kubernetes.Interface, j Journal) ([]journal.UndoResult, error) {
	jr, err := j.Load(ctx)
	if err != nil {
		return nil, err
	}
	var results []journal.UndoResult
	var failed []string
	for _, e := range Undoable(jr) {
		r := journal.UndoResult{Operation: e.Operation, Resource: e.Resource}
		undone, msg, err := undoOne(ctx, kc, e)
		switch {
		case err != nil:
			r.Status, r.Message = "failed", err.Error()
			failed = append(failed, e.Resource+": "+err.Error())
		case undone:
			r.Status, r.Message = "undone", msg
		default:
			r.Status, r.Message = "skipped", msg
		}
		results = append(results, r)
		if err != nil {
			continue
		}
		e.State = journal.Undone
		e.Undo = maps.Clone(e.Undo)
		if msg != "" {
			e.Undo["rollbackNote"] = msg
		}
		if err := putFinal(ctx, j, e); err != nil {
			return results, fmt.Errorf("policies rollback: restored %s but could not record it in the journal (a re-run finds it restored): %w", e.Resource, err)
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("policies rollback: %s", strings.Join(failed, "; "))
	}
	return results, ctx.Err()
}

func undoOne(ctx context.Context, kc kubernetes.Interface, e journal.Entry) (bool, string, error) {
	u := e.Undo
	ns, name := u["namespace"], u["name"]
	ref := ns + "/" + name
	var original, applied networkingv1.NetworkPolicySpec
	if err := json.Unmarshal([]byte(u["original"]), &original); err != nil {
		return false, "", fmt.Errorf("the journal's original spec of %s is not JSON: %w", ref, err)
	}
	if err := json.Unmarshal([]byte(u["applied"]), &applied); err != nil {
		return false, "", fmt.Errorf("the journal's applied spec of %s is not JSON: %w", ref, err)
	}
	nps := kc.NetworkingV1().NetworkPolicies(ns)
	for attempt := 0; ; attempt++ {
		cur, err := nps.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return false, fmt.Sprintf("networkpolicy %s no longer exists; left alone", ref), nil
		case err != nil:
			return false, "", fmt.Errorf("reading networkpolicy %s: %w", ref, err)
		case cur.UID != types.UID(u["uid"]):
			return false, fmt.Sprintf("networkpolicy %s was re-created since (another UID); left alone", ref), nil
		case equality.Semantic.DeepEqual(cur.Spec, original):
			return false, "already as before", nil
		case !equality.Semantic.DeepEqual(cur.Spec, applied):
			return false, fmt.Sprintf("networkpolicy %s was changed by someone else since this tool wrote it; left alone (its original spec is in the journal entry %s)", ref, e.ID), nil
		}
		upd := cur.DeepCopy()
		upd.Spec = original
		_, err = nps.Update(ctx, upd, metav1.UpdateOptions{}) // cur's resourceVersion: a change in between is a conflict
		if apierrors.IsConflict(err) && attempt < 3 {
			continue // read again and judge afresh
		}
		if err != nil {
			return false, "", fmt.Errorf("restoring networkpolicy %s: %w", ref, err)
		}
		return true, "restored the original spec", nil
	}
}
