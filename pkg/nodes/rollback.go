package nodes

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cmtext"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// RollbackResult is one recorded change taken back (or left alone), as
// the other layers report theirs.
type RollbackResult = journal.UndoResult

// Undoable is the layer's entries rollback takes back, newest first: the
// done ones and the pending ones (which may or may not have happened).
func Undoable(j *journal.Journal) []journal.Entry {
	var out []journal.Entry
	for _, e := range slices.Backward(j.Layer(Layer)) {
		if e.State == journal.Done || e.State == journal.Pending {
			out = append(out, e)
		}
	}
	return out
}

// Rollback gives every cloud config the journal records as changed its
// original text back, byte for byte (or removes the key, if it had none),
// provided the ConfigMap still holds exactly what the tool wrote: one
// someone changed since (or deleted, or re-created) is left alone, and the
// result says so. Then it restarts the CCM workloads the journal records
// as restarted, so they read the original again. The nodes keep their
// IPv6 InternalIPs until the CCM next syncs them; nothing is waited for.
func Rollback(ctx context.Context, kc kubernetes.Interface, j Journal) ([]RollbackResult, error) {
	jr, err := j.Load(ctx)
	if err != nil {
		return nil, err
	}
	entries := Undoable(jr)
	var results []RollbackResult
	var failed []string
	record := func(e journal.Entry, r RollbackResult) error {
		results = append(results, r)
		if r.Status == "failed" {
			failed = append(failed, e.Resource+": "+r.Message)
			return nil
		}
		e.State = journal.Undone
		e.Undo = maps.Clone(e.Undo)
		if r.Message != "" {
			e.Undo["rollbackNote"] = r.Message
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := j.PutAll(wctx, []journal.Entry{e}); err != nil {
			return fmt.Errorf("nodes rollback: %s is %s but could not be recorded in the journal (a re-run finds it so): %w", e.Resource, r.Status, err)
		}
		return nil
	}
	restored := false
	for _, e := range entries {
		if e.Operation != OpUpdateCloudConfig {
			continue
		}
		r := RollbackResult{Operation: e.Operation, Resource: e.Resource}
		undone, msg, err := cmtext.Restore(ctx, kc, e)
		switch {
		case err != nil:
			r.Status, r.Message = "failed", err.Error()
		case undone:
			r.Status, r.Message = "undone", msg
			restored = true
		default:
			r.Status, r.Message = "skipped", msg
		}
		if err := record(e, r); err != nil {
			return results, err
		}
	}
	for _, e := range entries {
		if e.Operation != OpRestartCCM {
			continue
		}
		w := Workload{Kind: e.Undo["kind"], Namespace: e.Undo["namespace"], Name: e.Undo["name"]}
		r := RollbackResult{Operation: e.Operation, Resource: e.Resource}
		switch {
		case !restored:
			r.Status, r.Message = "skipped", "no cloud config was restored, so the cloud controller has nothing new to read"
		default:
			err := restartWorkload(ctx, kc.AppsV1(), w, time.Now())
			switch {
			case apierrors.IsNotFound(err):
				r.Status, r.Message = "skipped", w.String()+" no longer exists"
			case err != nil:
				r.Status, r.Message = "failed", err.Error()
			default:
				r.Status, r.Message = "undone", "restarted "+w.String()+" so it reads the original cloud config"
			}
		}
		if err := record(e, r); err != nil {
			return results, err
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("nodes rollback: %s", strings.Join(failed, "; "))
	}
	return results, nil
}
