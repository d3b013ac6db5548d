// Package cmtext changes the text under one key of a ConfigMap the way
// every layer of this tool that edits a configuration file kept in the API
// does (the cloud provider's config, kubeadm's ClusterConfiguration,
// kube-proxy's config): the whole original text journalled before the
// write, the write carrying the resourceVersion the plan read (a change
// since is refused, never overwritten), and a restore that puts the
// original back byte for byte only while the key still holds exactly what
// the tool wrote.
package cmtext

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// ErrChanged is a ConfigMap that changed since it was planned: nothing of
// it was overwritten; plan again.
var ErrChanged = errors.New("changed since it was planned: plan again (nothing was overwritten)")

// Journal is where the originals are recorded. *journal.Store has it.
type Journal interface {
	PutAll(ctx context.Context, entries []journal.Entry) error
}

// Edit is one key's planned change.
type Edit struct {
	Namespace       string    `json:"namespace"`
	Name            string    `json:"name"`
	Key             string    `json:"key"`
	UID             types.UID `json:"uid"`
	ResourceVersion string    `json:"resourceVersion"`
	KeyPresent      bool      `json:"keyPresent"`
	// Original is the text planned from, in full; New the exact text
	// written.
	Original string `json:"original"`
	New      string `json:"new"`
}

// Ref names the key: "ns/name [key]".
func (e Edit) Ref() string { return e.Namespace + "/" + e.Name + " [" + e.Key + "]" }

// Entry is the journal entry of the edit (pending): the whole original
// text and what is written.
func (e Edit) Entry(id, layer, operation string) journal.Entry {
	present := "false"
	if e.KeyPresent {
		present = "true"
	}
	return journal.Entry{
		ID: id, Layer: layer, Operation: operation,
		Resource: "configmap/" + e.Namespace + "/" + e.Name + "[" + e.Key + "]", State: journal.Pending,
		Undo: map[string]string{
			"namespace": e.Namespace, "name": e.Name, "key": e.Key, "uid": string(e.UID),
			"keyPresent": present, "original": e.Original, "applied": e.New,
			"plannedResourceVersion": e.ResourceVersion,
		},
	}
}

// Write makes the edit: the entry (from Entry) is journalled pending,
// then the ConfigMap is updated with the plan's resourceVersion, then the
// entry is recorded done. A key that already holds New counts as done
// (already=true, nothing written); a ConfigMap changed, deleted or
// re-created since the plan is ErrChanged. A write the apiserver refused
// is recorded as not made; one with no clear answer stays pending, so
// rollback looks at the ConfigMap itself. rv is the resourceVersion after
// the write.
func Write(ctx context.Context, kc kubernetes.Interface, j Journal, e Edit, entry journal.Entry) (already bool, rv string, err error) {
	cms := kc.CoreV1().ConfigMaps(e.Namespace)
	cur, err := cms.Get(ctx, e.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, "", fmt.Errorf("%s was deleted since it was planned: %w", e.Ref(), ErrChanged)
	case err != nil:
		return false, "", kube.Explain("reading "+e.Ref(), err)
	case cur.UID != e.UID:
		return false, "", fmt.Errorf("%s was re-created since it was planned: %w", e.Ref(), ErrChanged)
	}
	text, present := cur.Data[e.Key]
	switch {
	case present && text == e.New:
		return true, cur.ResourceVersion, nil // a re-run after an interruption
	case cur.ResourceVersion != e.ResourceVersion || text != e.Original || present != e.KeyPresent:
		return false, "", fmt.Errorf("%s (resourceVersion %s, planned at %s): %w", e.Ref(), cur.ResourceVersion, e.ResourceVersion, ErrChanged)
	}
	if err := j.PutAll(ctx, []journal.Entry{entry}); err != nil {
		return false, "", fmt.Errorf("recording the original text of %s in the journal before changing it (nothing was changed): %w", e.Ref(), err)
	}
	upd := cur.DeepCopy()
	upd.ResourceVersion = e.ResourceVersion // the plan's: a change since is a conflict
	if upd.Data == nil {
		upd.Data = map[string]string{}
	}
	upd.Data[e.Key] = e.New
	got, err := cms.Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		if kube.Refused(err) {
			entry.State = journal.Failed
			entry.Undo["notMade"] = err.Error()
			_ = putFinal(ctx, j, entry)
		}
		if apierrors.IsConflict(err) {
			return false, "", fmt.Errorf("%s: %w", e.Ref(), ErrChanged)
		}
		return false, "", kube.Explain("updating "+e.Ref(), err)
	}
	entry.State = journal.Done
	entry.Undo["appliedResourceVersion"] = got.ResourceVersion
	if err := putFinal(ctx, j, entry); err != nil {
		return false, got.ResourceVersion, fmt.Errorf("changed %s but could not record it as done in the journal (its pending entry stays, so rollback still finds it): %w", e.Ref(), err)
	}
	return false, got.ResourceVersion, nil
}

// putFinal records an entry even after Ctrl-C.
func putFinal(ctx context.Context, j Journal, e journal.Entry) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return j.PutAll(wctx, []journal.Entry{e})
}

// Restore puts an entry's original text back (or removes the key, if it
// had none), provided the ConfigMap still holds exactly what the tool
// wrote: one changed since, deleted or re-created is left alone
// (undone=false and msg say so).
func Restore(ctx context.Context, kc kubernetes.Interface, e journal.Entry) (undone bool, msg string, err error) {
	u := e.Undo
	ns, name, key := u["namespace"], u["name"], u["key"]
	ref := ns + "/" + name + " [" + key + "]"
	original, applied, hadKey := u["original"], u["applied"], u["keyPresent"] == "true"
	cms := kc.CoreV1().ConfigMaps(ns)
	for attempt := 0; ; attempt++ {
		cur, err := cms.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, fmt.Sprintf("%s no longer exists; left alone", ref), nil
		}
		if err != nil {
			return false, "", fmt.Errorf("reading %s: %w", ref, err)
		}
		if cur.UID != types.UID(u["uid"]) {
			return false, fmt.Sprintf("%s was re-created since (another UID); left alone", ref), nil
		}
		text, present := cur.Data[key]
		switch {
		case present == hadKey && text == original:
			return false, "already as before", nil
		case !present || text != applied:
			return false, fmt.Sprintf("%s was changed by someone else since this tool wrote it; left alone (the original text is in the journal entry %s)", ref, e.ID), nil
		}
		upd := cur.DeepCopy()
		if hadKey {
			upd.Data[key] = original
		} else {
			delete(upd.Data, key)
		}
		_, err = cms.Update(ctx, upd, metav1.UpdateOptions{}) // cur's resourceVersion: a change in between is a conflict
		if apierrors.IsConflict(err) && attempt < 3 {
			continue // read again and judge afresh
		}
		if err != nil {
			return false, "", fmt.Errorf("restoring %s: %w", ref, err)
		}
		if hadKey {
			return true, "restored the original text", nil
		}
		return true, "removed the key, which did not exist before", nil
	}
}
