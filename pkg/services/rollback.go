package services

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// RollbackResult is one change of the layer taken back (or left alone).
type RollbackResult = journal.UndoResult

// Undoable is the layer's entries rollback takes back, newest first.
func Undoable(j *journal.Journal) []journal.Entry { return j.Undoable(Layer) }

// Rollback gives every Service the journal records as changed its original
// policy, families and cluster IP back, newest first. A Service that was
// deleted or re-created since, or whose families someone else changed
// since, is left alone and said so. The Services are read with one list
// per namespace involved, never one GET each (a Service that changed while
// being restored is read again).
//
// A PreferDualStack Service that had one family is first made SingleStack
// with that family (the only way Kubernetes releases a second cluster IP),
// then PreferDualStack again if a server-side dry run shows the cluster
// keeps it at one family, which it does only once the cluster has one
// service family. Otherwise it stays SingleStack and the message says so.
func Rollback(ctx context.Context, kc kubernetes.Interface, j Journal) ([]RollbackResult, error) {
	jr, err := j.Load(ctx)
	if err != nil {
		return nil, err
	}
	entries := Undoable(jr)
	if len(entries) == 0 {
		return nil, nil
	}
	current, err := currentServices(ctx, kc, entries)
	if err != nil {
		return nil, err
	}
	results := make([]RollbackResult, len(entries))
	var failed []string
	for start := 0; start < len(entries); start += batchSize {
		if ctx.Err() != nil {
			break
		}
		batch := entries[start:min(start+batchSize, len(entries))]
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for i, e := range batch {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				r := RollbackResult{Operation: e.Operation, Resource: e.Resource}
				msg, err := undoOne(ctx, kc, e, current[e.Undo["namespace"]+"/"+e.Undo["name"]])
				switch {
				case err != nil:
					r.Status, r.Message = "failed", err.Error()
				case strings.HasPrefix(msg, skipPrefix):
					r.Status, r.Message = "skipped", strings.TrimPrefix(msg, skipPrefix)
				default:
					r.Status, r.Message = "undone", msg
				}
				results[start+i] = r
			}()
		}
		wg.Wait()
		var record []journal.Entry
		for i, e := range batch {
			r := results[start+i]
			if r.Status == "failed" {
				failed = append(failed, e.Resource+": "+r.Message)
				continue
			}
			e.State = journal.Undone
			e.Undo = maps.Clone(e.Undo)
			if r.Message != "" {
				e.Undo["rollbackNote"] = r.Message
			}
			record = append(record, e)
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err := j.PutAll(wctx, record)
		cancel()
		if err != nil {
			return results[:start+len(batch)], fmt.Errorf("services rollback: restored %d Services but could not record it in the journal (a re-run finds them restored): %w", len(record), err)
		}
	}
	var done []RollbackResult
	for _, r := range results {
		if r.Status != "" {
			done = append(done, r)
		}
	}
	if len(failed) > 0 {
		return done, fmt.Errorf("services rollback: %s", strings.Join(failed, "; "))
	}
	return done, ctx.Err()
}

// skipPrefix marks undoOne's messages that mean "left alone".
const skipPrefix = "skip: "

// currentServices reads the Services the entries name: one paginated
// list per namespace.
func currentServices(ctx context.Context, kc kubernetes.Interface, entries []journal.Entry) (map[string]*corev1.Service, error) {
	var namespaces []string
	for _, e := range entries {
		namespaces = append(namespaces, e.Undo["namespace"])
	}
	slices.Sort(namespaces)
	out := map[string]*corev1.Service{}
	for _, ns := range slices.Compact(namespaces) {
		svcs, err := pager.ListAll[corev1.Service](ctx, metav1.ListOptions{}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return kc.CoreV1().Services(ns).List(ctx, o)
		})
		if err != nil {
			return nil, kube.Explain("listing services in namespace "+ns+" to restore them", err)
		}
		for i := range svcs {
			out[ns+"/"+svcs[i].Name] = &svcs[i]
		}
	}
	return out, nil
}

// recorded is what an entry says of its Service.
type recorded struct {
	ns, name   string
	uid        types.UID
	before     Shape
	applied    Shape
	clusterIPs []string
	inverse    []byte
}

func readEntry(e journal.Entry) recorded {
	return recorded{
		ns: e.Undo["namespace"], name: e.Undo["name"], uid: types.UID(e.Undo["uid"]),
		before:     Shape{Policy: corev1.IPFamilyPolicy(e.Undo["ipFamilyPolicy"]), Families: splitFamilies(e.Undo["ipFamilies"])},
		applied:    Shape{Policy: corev1.IPFamilyPolicy(e.Undo["appliedPolicy"]), Families: splitFamilies(e.Undo["appliedFamilies"])},
		clusterIPs: splitList(e.Undo["clusterIPs"]),
		inverse:    []byte(e.Undo["inversePatch"]),
	}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func splitFamilies(s string) []corev1.IPFamily {
	var out []corev1.IPFamily
	for _, f := range splitList(s) {
		out = append(out, corev1.IPFamily(f))
	}
	return out
}

// withResourceVersion adds a resourceVersion precondition to a merge patch.
func withResourceVersion(p []byte, rv string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, fmt.Errorf("the journal's inverse patch is not JSON: %w", err)
	}
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["resourceVersion"] = rv
	m["metadata"] = meta
	return json.Marshal(m)
}

// undoOne restores one Service, cur as listed (nil if gone). The message
// starts with skipPrefix when the Service was left alone.
func undoOne(ctx context.Context, kc kubernetes.Interface, e journal.Entry, cur *corev1.Service) (string, error) {
	r := readEntry(e)
	ref := r.ns + "/" + r.name
	svcs := kc.CoreV1().Services(r.ns)
	oneFamily := Shape{Policy: corev1.IPFamilyPolicySingleStack, Families: r.before.Families}
	preferOne := r.before.policy() == corev1.IPFamilyPolicyPreferDualStack && len(r.before.Families) == 1
	for attempt := 0; ; attempt++ {
		if cur == nil || cur.UID != r.uid {
			return skipPrefix + fmt.Sprintf("service %s is not the one that was changed any more (deleted or re-created); left alone", ref), nil
		}
		now := ShapeOf(cur)
		switch {
		case now.Equal(r.before):
			return skipPrefix + "already as before: " + now.String(), nil
		case preferOne && now.Equal(oneFamily):
			// An earlier rollback did the first step.
		case !now.Equal(r.applied):
			return skipPrefix + fmt.Sprintf("changed by someone else since (now %s; this tool set %s); left alone", now, r.applied), nil
		default:
			p, err := withResourceVersion(r.inverse, cur.ResourceVersion)
			if err != nil {
				return "", err
			}
			got, err := svcs.Patch(ctx, r.name, types.MergePatchType, p, metav1.PatchOptions{})
			if apierrors.IsConflict(err) && attempt < 3 {
				if cur, err = svcs.Get(ctx, r.name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
					cur = nil
				} else if err != nil {
					return "", fmt.Errorf("reading service %s again: %w", ref, err)
				}
				continue
			}
			if err != nil {
				return "", fmt.Errorf("patching service %s back to %s: %w", ref, oneFamily, err)
			}
			cur = got
		}
		break
	}
	if len(r.clusterIPs) > 0 && cur.Spec.ClusterIP != r.clusterIPs[0] {
		return "", fmt.Errorf("service %s has cluster IP %s, not its original %s", ref, cur.Spec.ClusterIP, r.clusterIPs[0])
	}
	if !preferOne {
		if now := ShapeOf(cur); !now.Equal(r.before) {
			return "", fmt.Errorf("service %s is %s after the patch, not %s", ref, now, r.before)
		}
		return "", nil
	}
	return restorePrefer(ctx, kc, r, cur)
}

// restorePrefer sets PreferDualStack again on a Service restored to one
// family, if the cluster keeps it at one family: a server-side dry run
// tells.
func restorePrefer(ctx context.Context, kc kubernetes.Interface, r recorded, cur *corev1.Service) (string, error) {
	ref := r.ns + "/" + r.name
	svcs := kc.CoreV1().Services(r.ns)
	p, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": cur.ResourceVersion},
		"spec":     map[string]any{"ipFamilyPolicy": corev1.IPFamilyPolicyPreferDualStack},
	})
	dry, err := svcs.Patch(ctx, r.name, types.MergePatchType, p, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return "", fmt.Errorf("service %s has its one family back as SingleStack; a dry run of setting PreferDualStack again failed: %w", ref, err)
	}
	if !ShapeOf(dry).Equal(r.before) {
		return fmt.Sprintf("restored its family %s and cluster IP as SingleStack, not its original PreferDualStack: while the cluster has two service families Kubernetes gives a PreferDualStack Service both (a dry run gave %s). Once the cluster is single-stack again: kubectl patch service -n %s %s -p '{\"spec\":{\"ipFamilyPolicy\":\"PreferDualStack\"}}'",
			familiesString(r.before.Families), ShapeOf(dry), r.ns, r.name), nil
	}
	got, err := svcs.Patch(ctx, r.name, types.MergePatchType, p, metav1.PatchOptions{})
	if err != nil {
		return "", fmt.Errorf("service %s has its one family back as SingleStack; setting PreferDualStack again failed: %w", ref, err)
	}
	if now := ShapeOf(got); !now.Equal(r.before) {
		return "", fmt.Errorf("service %s is %s after setting PreferDualStack again, not %s", ref, now, r.before)
	}
	return "", nil
}
