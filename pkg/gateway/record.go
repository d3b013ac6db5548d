package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// Layer is the journal layer of the gateway's own changes (the NLB's
// address type is an underlay change: `aws rollback` undoes it).
const Layer = "gateway"

// Journal operations of the gateway layer.
const (
	OpPatchService    = "patch-service"
	OpRecreateService = "recreate-service"
)

// Journal is where the gateway records its changes before making them.
// *journal.Store has it.
type Journal interface {
	Load(ctx context.Context) (*journal.Journal, error)
	PutAll(ctx context.Context, entries []journal.Entry) error
}

func entryID(op string, svc *corev1.Service) string {
	return Layer + "/" + op + "/" + svc.Namespace + "/" + svc.Name
}

// Manifest is svc as a user would write it: no status, no server-set
// metadata, no allocated cluster IPs (a re-created Service gets new ones);
// nodePorts stay, since firewall rules and load balancers point at them.
func Manifest(svc *corev1.Service) (string, error) {
	clean := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: svc.Name, Namespace: svc.Namespace, Labels: svc.Labels,
			Annotations: svc.Annotations, OwnerReferences: svc.OwnerReferences,
		},
		Spec: *svc.Spec.DeepCopy(),
	}
	clean.Spec.ClusterIP, clean.Spec.ClusterIPs = "", nil
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(clean)
	if err != nil {
		return "", fmt.Errorf("writing the manifest of %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	delete(obj, "status")
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	b, err := yaml.Marshal(obj)
	if err != nil {
		return "", fmt.Errorf("writing the manifest of %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return string(b), nil
}

// FromManifest reads what Manifest wrote.
func FromManifest(s string) (*corev1.Service, error) {
	var svc corev1.Service
	if err := yaml.UnmarshalStrict([]byte(s), &svc); err != nil {
		return nil, fmt.Errorf("reading a Service manifest from the journal: %w", err)
	}
	return &svc, nil
}

// InversePatch is the merge patch that puts back the fields Patch changes,
// as they are in before: what rollback sends.
func InversePatch(before *corev1.Service) ([]byte, error) {
	spec := map[string]any{"ipFamilyPolicy": before.Spec.IPFamilyPolicy, "ipFamilies": before.Spec.IPFamilies}
	if len(before.Spec.ClusterIPs) > 0 && len(before.Spec.ClusterIPs) < 2 {
		// Going back to one family: the apiserver releases the second IP.
		spec["clusterIPs"] = before.Spec.ClusterIPs
	}
	annotations := map[string]any{}
	for k := range wantedAnnotations(before) {
		if v, ok := before.Annotations[k]; ok {
			annotations[k] = v
		} else {
			annotations[k] = nil
		}
	}
	return json.Marshal(map[string]any{"spec": spec, "metadata": map[string]any{"annotations": annotations}})
}

// patchEntry is the journal record of a Service patch, with its inverse.
func patchEntry(svc *corev1.Service) (journal.Entry, error) {
	inv, err := InversePatch(svc)
	if err != nil {
		return journal.Entry{}, err
	}
	return journal.Entry{ID: entryID(OpPatchService, svc), Layer: Layer, Operation: OpPatchService,
		Resource: "service/" + svc.Namespace + "/" + svc.Name, State: journal.Pending,
		Undo: map[string]string{"namespace": svc.Namespace, "name": svc.Name, "uid": string(svc.UID), "inversePatch": string(inv)}}, nil
}

// recreateEntry is the journal record of a re-creation: both manifests, so
// a re-run can finish it and a rollback can put the original back.
func recreateEntry(svc, fresh *corev1.Service) (journal.Entry, error) {
	orig, err := Manifest(svc)
	if err != nil {
		return journal.Entry{}, err
	}
	repl, err := Manifest(fresh)
	if err != nil {
		return journal.Entry{}, err
	}
	return journal.Entry{ID: entryID(OpRecreateService, svc), Layer: Layer, Operation: OpRecreateService,
		Resource: "service/" + svc.Namespace + "/" + svc.Name, State: journal.Pending,
		Undo: map[string]string{"namespace": svc.Namespace, "name": svc.Name, "uid": string(svc.UID),
			"original": orig, "replacement": repl, "previousHostname": hostname(svc)}}, nil
}

func setState(ctx context.Context, j Journal, e journal.Entry, state journal.State, extra map[string]string) error {
	e.State = state
	e.Undo = maps.Clone(e.Undo)
	maps.Copy(e.Undo, extra)
	// Even after Ctrl-C: the record must match what was done.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return j.PutAll(wctx, []journal.Entry{e})
}

// pendingRecreation is an interrupted re-creation of the Service ref (or of
// any gateway Service when ref is empty), if the journal has one.
func pendingRecreation(ctx context.Context, j Journal, ref string) (*journal.Entry, error) {
	jr, err := j.Load(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range slices.Backward(jr.Layer(Layer)) {
		if e.Operation != OpRecreateService || e.State != journal.Pending {
			continue
		}
		if ref == "" || ref == e.Undo["namespace"]+"/"+e.Undo["name"] {
			return &e, nil
		}
	}
	return nil, nil
}

// waitGoneAfterDelete waits until the deleted Service is gone (a finalizer, such as the
// cloud controller's service.kubernetes.io/load-balancer-cleanup, holds it
// until its load balancer is deleted). It keeps waiting after ctx is
// cancelled, for at most grace, so that an interrupted re-creation can
// still create its replacement.
func waitGoneAfterDelete(ctx context.Context, kc kubernetes.Interface, ns, name string, timeout, grace time.Duration) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(wctx, func() { t.Stop() })
	})
	defer stop()
	return waitGone(wctx, kc, ns, name, timeout)
}

// finishRecreation creates the replacement recorded in e, once the old
// Service is gone. ctx may already be cancelled: the create gets its own bound.
func finishRecreation(ctx context.Context, kc kubernetes.Interface, j Journal, e journal.Entry) (*corev1.Service, error) {
	fresh, err := FromManifest(e.Undo["replacement"])
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	created, err := createService(cctx, kc, fresh)
	if err != nil {
		return nil, err
	}
	if err := setState(ctx, j, e, journal.Done, map[string]string{"replacementUID": string(created.UID)}); err != nil {
		return created, fmt.Errorf("re-created service %s/%s but could not record it in the journal: %w", fresh.Namespace, fresh.Name, err)
	}
	return created, nil
}

// stuckMessage says why a deleted Service is still there and what to do.
func stuckMessage(ctx context.Context, kc kubernetes.Interface, ns, name, command string, waitErr error) string {
	why := "timed out"
	if errors.Is(ctx.Err(), context.Canceled) {
		why = "interrupted"
	}
	detail := ""
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if cur, err := kc.CoreV1().Services(ns).Get(gctx, name, metav1.GetOptions{}); err == nil && len(cur.Finalizers) > 0 {
		detail = fmt.Sprintf(" it is still being deleted, held by the finalizer(s) %s (the cloud controller removes service.kubernetes.io/load-balancer-cleanup once it has deleted the old load balancer);",
			strings.Join(cur.Finalizers, ", "))
	}
	return fmt.Sprintf("%s while re-creating service %s/%s (%v):%s the new Service is not created yet. Its manifest and the original's are recorded in the journal: run `%s gateway --recreate` to finish once the old one is gone, or `%s rollback` to put the original back",
		why, ns, name, waitErr, detail, command, command)
}

// RollbackResult is one change of the layer taken back (or left alone).
type RollbackResult = journal.UndoResult

// Undoable is the layer's entries rollback takes back, newest first.
func Undoable(j *journal.Journal) []journal.Entry { return j.Undoable(Layer) }

// Rollback puts the gateway Service back as the journal recorded it:
// the inverse of a patch, or the original Service in place of its
// re-created twin. An entry whose Service has since been replaced by
// someone else is left alone and said so.
func Rollback(ctx context.Context, kc kubernetes.Interface, j Journal, timeout time.Duration) ([]RollbackResult, error) {
	return rollback(ctx, kc, j, timeout, func(journal.Entry) bool { return true })
}

// RollbackMigration takes back only a migration's entries (gateway
// --revert): the new Service deleted, external-dns annotations and a
// retired Service put back. The names go back first (dns.RollbackMoves).
func RollbackMigration(ctx context.Context, kc kubernetes.Interface, j Journal, timeout time.Duration) ([]RollbackResult, error) {
	return rollback(ctx, kc, j, timeout, func(e journal.Entry) bool {
		return e.Operation == OpMigrateService || e.Operation == OpMoveExternalDNS || e.Operation == OpRetireService
	})
}

func rollback(ctx context.Context, kc kubernetes.Interface, j Journal, timeout time.Duration, which func(journal.Entry) bool) ([]RollbackResult, error) {
	jr, err := j.Load(ctx)
	if err != nil {
		return nil, err
	}
	var results []RollbackResult
	var failed []string
	for _, e := range slices.DeleteFunc(Undoable(jr), func(e journal.Entry) bool { return !which(e) }) {
		r := RollbackResult{Operation: e.Operation, Resource: e.Resource}
		var msg string
		var restored map[string]string // a retired Service created again: its new hostname
		if e.Operation == OpRetireService {
			var host string
			host, msg, err = recreateRetired(ctx, kc, e, timeout)
			if err == nil && host == "" {
				err = fmt.Errorf("service %s/%s has no load balancer hostname to move the records back to; re-run the rollback once it has one", e.Undo["namespace"], e.Undo["name"])
			}
			restored = map[string]string{"recreatedHostname": host, "rollbackNote": msg}
		} else {
			msg, err = undoOne(ctx, kc, j, e, timeout)
		}
		switch {
		case err != nil:
			r.Status, r.Message = "failed", err.Error()
			failed = append(failed, e.Resource+": "+err.Error())
		case restored != nil:
			r.Status, r.Message = "undone", msg
			err = setState(ctx, j, e, journal.Undone, restored)
		case msg != "":
			r.Status, r.Message = "skipped", msg
			err = setState(ctx, j, e, journal.Undone, map[string]string{"rollbackNote": msg})
		default:
			r.Status = "undone"
			err = setState(ctx, j, e, journal.Undone, nil)
		}
		if err != nil && r.Status != "failed" {
			r.Status, r.Message = "failed", "undone but not recorded: "+err.Error()
			failed = append(failed, e.Resource+": "+r.Message)
		}
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("gateway rollback: %s", strings.Join(failed, "; "))
	}
	return results, ctx.Err()
}

// undoOne takes back one entry; a non-empty message says why nothing was
// needed or possible.
func undoOne(ctx context.Context, kc kubernetes.Interface, j Journal, e journal.Entry, timeout time.Duration) (string, error) {
	ns, name, uid := e.Undo["namespace"], e.Undo["name"], types.UID(e.Undo["uid"])
	svcs := kc.CoreV1().Services(ns)
	cur, err := svcs.Get(ctx, name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return "", err
	}
	switch e.Operation {
	case OpMigrateService, OpMoveExternalDNS:
		return undoMigration(ctx, kc, e, timeout)
	case OpPatchService:
		if apierrors.IsNotFound(err) || cur.UID != uid {
			return fmt.Sprintf("service %s/%s is not the one that was patched any more; left alone", ns, name), nil
		}
		if _, err := svcs.Patch(ctx, name, types.MergePatchType, []byte(e.Undo["inversePatch"]), metav1.PatchOptions{}); err != nil {
			return "", fmt.Errorf("patching service %s/%s back: %w", ns, name, err)
		}
		return "", nil
	case OpRecreateService:
		orig, ferr := FromManifest(e.Undo["original"])
		if ferr != nil {
			return "", ferr
		}
		if err == nil && e.Undo["restoredUID"] != "" && string(cur.UID) == e.Undo["restoredUID"] {
			// An earlier rollback created the original again: wait for its load balancer.
			return "", waitAnyHostname(ctx, kc, ns, name, timeout)
		}
		if err == nil {
			switch {
			case cur.UID == uid && cur.DeletionTimestamp == nil:
				return fmt.Sprintf("service %s/%s was never deleted; nothing to put back", ns, name), nil
			case cur.UID != uid && e.Undo["replacementUID"] != "" && string(cur.UID) != e.Undo["replacementUID"]:
				return fmt.Sprintf("service %s/%s was re-created by someone else since; left alone (the original is in the journal entry %s)", ns, name, e.ID), nil
			case cur.UID != uid:
				u := cur.UID
				if err := svcs.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &u}}); err != nil && !apierrors.IsNotFound(err) {
					return "", fmt.Errorf("deleting the re-created service %s/%s: %w", ns, name, err)
				}
			}
			if err := waitGoneAfterDelete(ctx, kc, ns, name, timeout, 30*time.Second); err != nil {
				return "", fmt.Errorf("service %s/%s is still being deleted (%v); re-run rollback once it is gone", ns, name, err)
			}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		created, err := createService(cctx, kc, orig)
		if err != nil {
			return "", fmt.Errorf("creating the original service %s/%s again (its manifest is in the journal entry %s): %w", ns, name, e.ID, err)
		}
		if err := setState(ctx, j, e, e.State, map[string]string{"restoredUID": string(created.UID)}); err != nil {
			return "", fmt.Errorf("created the original service %s/%s again but could not record it: %w", ns, name, err)
		}
		if e.Undo["previousHostname"] != "" && orig.Spec.Type == corev1.ServiceTypeLoadBalancer {
			// Restored means serving again: wait for its new load balancer.
			if err := waitAnyHostname(ctx, kc, ns, name, timeout); err != nil {
				return "", fmt.Errorf("created the original service %s/%s again, but it has no load balancer yet: %w", ns, name, err)
			}
		}
		return "", nil
	}
	return "", fmt.Errorf("unknown gateway operation %q in the journal", e.Operation)
}

// waitAnyHostname waits until the Service's status names a load balancer.
func waitAnyHostname(ctx context.Context, kc kubernetes.Interface, ns, name string, timeout time.Duration) error {
	_, err := untilHostname(ctx, kc, ns, name, "", timeout)
	return err
}

// createService creates svc, retrying briefly while the apiserver still
// holds the nodePorts of the Service just deleted (it releases them after
// the delete is visible).
func createService(ctx context.Context, kc kubernetes.Interface, svc *corev1.Service) (*corev1.Service, error) {
	var created *corev1.Service
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 100 * time.Millisecond, Factor: 1.5, Steps: 12, Cap: 2 * time.Second},
		func(ctx context.Context) (bool, error) {
			var err error
			created, err = kc.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{})
			if apierrors.IsInvalid(err) && strings.Contains(err.Error(), "already allocated") {
				return false, nil
			}
			return err == nil, err
		})
	if wait.Interrupted(err) {
		return nil, fmt.Errorf("creating service %s/%s: its ports are still allocated to the Service just deleted: %w", svc.Namespace, svc.Name, err)
	}
	return created, err
}
