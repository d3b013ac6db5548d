package mesh

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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cmtext"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// RollbackResult is one recorded change taken back (or left alone).
type RollbackResult = journal.UndoResult

// Undoable is the layer's entries rollback takes back, newest first: the
// done ones and the pending ones (which may or may not have happened).
func Undoable(j *journal.Journal) []journal.Entry { return j.Undoable(Layer) }

// Rollback takes back every change the journal records for the layer,
// newest first, each only if its object still holds what this tool wrote:
// the mesh config text byte for byte (or the key removed, if there was
// none), istiod's env variable as it was (or removed), istiod's Service's
// policy, family and cluster IP, and the Sail Istio resource's leaves
// (the keys this tool added removed, with the maps it created for them
// when nothing else went in). An object someone changed since, or deleted
// or re-created, is left alone and the result says so. A Helm upgrade is
// taken back with a Helm rollback to the revision before it, when the
// release's newest revision is still that upgrade. dc may be nil when the
// journal has no Sail entry, helm when it has no Helm entry. Nothing is waited for: istiod rolls out
// again on its own.
func Rollback(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, helm HelmConfigs, j Journal) ([]RollbackResult, error) {
	jr, err := j.Load(ctx)
	if err != nil {
		return nil, err
	}
	var results []RollbackResult
	var failed []string
	for _, e := range Undoable(jr) {
		r := RollbackResult{Operation: e.Operation, Resource: e.Resource}
		var undone bool
		var msg string
		var err error
		switch e.Operation {
		case OpUpdateMeshConfig:
			undone, msg, err = cmtext.Restore(ctx, kc, e)
		case OpPatchIstiodEnv:
			undone, msg, err = undoEnv(ctx, kc, e)
		case OpPatchService:
			undone, msg, err = undoService(ctx, kc, e)
		case OpPatchSailValues:
			undone, msg, err = undoSail(ctx, dc, e)
		case OpHelmUpgrade:
			undone, msg, err = undoHelm(ctx, helm, e)
		case OpPatchGatewayParams:
			undone, msg, err = undoGatewayPatch(ctx, dc, e)
		case OpCreateGatewayParams:
			undone, msg, err = undoGatewayParams(ctx, kc, e)
		default:
			err = fmt.Errorf("unknown operation %q in the journal", e.Operation)
		}
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
		if r.Status == "failed" {
			continue
		}
		e.State = journal.Undone
		e.Undo = maps.Clone(e.Undo)
		if r.Message != "" {
			e.Undo["rollbackNote"] = r.Message
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err = j.PutAll(wctx, []journal.Entry{e})
		cancel()
		if err != nil {
			return results, fmt.Errorf("mesh rollback: %s is %s but could not be recorded in the journal (a re-run finds it so): %w", e.Resource, r.Status, err)
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("mesh rollback: %s", strings.Join(failed, "; "))
	}
	return results, nil
}

const leftAlone = "changed by someone else since this tool wrote it; left alone"

// undoEnv gives istiod's container its original variable back (or none).
func undoEnv(ctx context.Context, kc kubernetes.Interface, e journal.Entry) (bool, string, error) {
	u := e.Undo
	ns, name := u["namespace"], u["name"]
	ref := "deployment " + ns + "/" + name
	ep := &EnvPlan{Namespace: ns, Deployment: name, Container: u["container"], Present: u["present"] == "true",
		OriginalValue: u["originalValue"], OriginalValueFrom: u["originalValueFrom"]}
	envEntry := map[string]any{"name": istio.DualStackEnv}
	if !ep.Present {
		envEntry["$patch"] = "delete"
	} else {
		envEntry["value"] = nil
		if ep.OriginalValue != "" {
			envEntry["value"] = ep.OriginalValue
		}
		envEntry["valueFrom"] = nil
		if ep.OriginalValueFrom != "" {
			var vf any
			if err := json.Unmarshal([]byte(ep.OriginalValueFrom), &vf); err != nil {
				return false, "", fmt.Errorf("the journal's original valueFrom of %s is not JSON: %w", ref, err)
			}
			envEntry["valueFrom"] = vf
		}
	}
	deps := kc.AppsV1().Deployments(ns)
	for attempt := 0; ; attempt++ {
		cur, err := deps.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return false, ref + " no longer exists; left alone", nil
		case err != nil:
			return false, "", fmt.Errorf("reading %s: %w", ref, err)
		case cur.UID != types.UID(u["uid"]):
			return false, ref + " was re-created since (another UID); left alone", nil
		}
		switch envState(cur, ep) {
		case stateOriginal:
			return false, "already as before", nil
		case stateOther:
			return false, fmt.Sprintf("%s=%s in %s was %s", istio.DualStackEnv, "true", ref, leftAlone), nil
		}
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": cur.ResourceVersion},
			"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
				"containers": []any{map[string]any{"name": ep.Container, "env": []any{envEntry}}}}}},
		})
		_, err = deps.Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		if apierrors.IsConflict(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return false, "", fmt.Errorf("restoring %s's %s: %w", ref, istio.DualStackEnv, err)
		}
		if !ep.Present {
			return true, "removed " + istio.DualStackEnv + " from istiod's env, which did not have it before (istiod rolls out again)", nil
		}
		return true, "restored istiod's original " + istio.DualStackEnv + " (istiod rolls out again)", nil
	}
}

// undoService takes istiod's Service back to its one family: SingleStack,
// the original family and cluster IP (the apiserver releases the second).
func undoService(ctx context.Context, kc kubernetes.Interface, e journal.Entry) (bool, string, error) {
	u := e.Undo
	ns, name := u["namespace"], u["name"]
	ref := "service " + ns + "/" + name
	before := splitFamilies(u["ipFamilies"])
	applied := splitFamilies(u["appliedFamilies"])
	clusterIPs := splitList(u["clusterIPs"])
	svcs := kc.CoreV1().Services(ns)
	for attempt := 0; ; attempt++ {
		cur, err := svcs.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return false, ref + " no longer exists; left alone", nil
		case err != nil:
			return false, "", fmt.Errorf("reading %s: %w", ref, err)
		case cur.UID != types.UID(u["uid"]):
			return false, ref + " was re-created since (another UID); left alone", nil
		}
		pol := policyOf(cur)
		switch {
		case slices.Equal(cur.Spec.IPFamilies, before) && samePolicy(pol, corev1.IPFamilyPolicy(u["ipFamilyPolicy"])):
			return false, "already as before", nil
		case !slices.Equal(cur.Spec.IPFamilies, applied) || pol != corev1.IPFamilyPolicy(u["appliedPolicy"]):
			return false, fmt.Sprintf("%s was %s (now %s [%s])", ref, leftAlone, pol, familiesString(cur.Spec.IPFamilies)), nil
		}
		spec := map[string]any{"ipFamilyPolicy": corev1.IPFamilyPolicySingleStack, "ipFamilies": before}
		if len(clusterIPs) == 1 {
			spec["clusterIPs"] = clusterIPs
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": cur.ResourceVersion}, "spec": spec})
		_, err = svcs.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		if apierrors.IsConflict(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return false, "", fmt.Errorf("restoring %s's families: %w", ref, err)
		}
		msg := "restored its family " + familiesString(before) + " and cluster IP"
		if p := corev1.IPFamilyPolicy(u["ipFamilyPolicy"]); p != "" && p != corev1.IPFamilyPolicySingleStack {
			msg += fmt.Sprintf(" as SingleStack, not its original %s: while the cluster has two service families Kubernetes gives a %s Service both", p, p)
		}
		return true, msg, nil
	}
}

func samePolicy(a, b corev1.IPFamilyPolicy) bool {
	norm := func(p corev1.IPFamilyPolicy) corev1.IPFamilyPolicy {
		if p == "" {
			return corev1.IPFamilyPolicySingleStack
		}
		return p
	}
	return norm(a) == norm(b)
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

// undoSail gives the Istio resource's leaves their original values back,
// removing the keys (and the maps) this tool added.
func undoSail(ctx context.Context, dc dynamic.Interface, e journal.Entry) (bool, string, error) {
	u := e.Undo
	name := u["name"]
	ref := "the Sail Istio resource " + name
	if dc == nil {
		return false, "", errors.New("restoring " + ref + " needs the dynamic client")
	}
	var changes []ValueChange
	var created [][]string
	if err := json.Unmarshal([]byte(u["changes"]), &changes); err != nil {
		return false, "", fmt.Errorf("the journal's changes of %s are not JSON: %w", ref, err)
	}
	if c := u["created"]; c != "" && c != "null" {
		if err := json.Unmarshal([]byte(c), &created); err != nil {
			return false, "", fmt.Errorf("the journal's created maps of %s are not JSON: %w", ref, err)
		}
	}
	ri := dc.Resource(istio.SailIstioGVR)
	for attempt := 0; ; attempt++ {
		cur, err := ri.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return false, ref + " no longer exists; left alone", nil
		case err != nil:
			return false, "", fmt.Errorf("reading %s: %w", ref, err)
		case cur.GetUID() != types.UID(u["uid"]):
			return false, ref + " was re-created since (another UID); left alone", nil
		}
		spec, _, _ := unstructured.NestedMap(cur.Object, "spec")
		switch sailState(spec, changes) {
		case stateOriginal:
			return false, "already as before", nil
		case stateOther:
			return false, fmt.Sprintf("%s was %s (the original values are in the journal entry %s)", ref, leftAlone, e.ID), nil
		}
		patch, err := inverseSailPatch(spec, changes, created)
		if err != nil {
			return false, "", fmt.Errorf("%s: %w", ref, err)
		}
		patch["metadata"] = map[string]any{"resourceVersion": cur.GetResourceVersion()}
		b, _ := json.Marshal(patch)
		_, err = ri.Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{})
		if apierrors.IsConflict(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return false, "", fmt.Errorf("restoring %s: %w", ref, err)
		}
		return true, "restored the original spec.values (the Sail operator rolls istiod out again)", nil
	}
}

// inverseSailPatch is the merge patch that gives every changed leaf its
// original value (null: remove it), then removes each map this tool
// created that holds nothing else, innermost first.
func inverseSailPatch(spec map[string]any, changes []ValueChange, created [][]string) (map[string]any, error) {
	restored := deepCopyMap(spec)
	patch := map[string]any{}
	for _, ch := range changes {
		var v any
		if ch.Present {
			if err := json.Unmarshal([]byte(ch.Original), &v); err != nil {
				return nil, fmt.Errorf("the journal's original of spec.%s is not JSON: %w", strings.Join(ch.Path, "."), err)
			}
			setPath(restored, ch.Path, v)
		} else {
			deletePath(restored, ch.Path)
		}
		setPath(patch, ch.Path, v)
	}
	byDepth := slices.Clone(created)
	slices.SortStableFunc(byDepth, func(a, b []string) int { return len(b) - len(a) })
	for _, path := range byDepth {
		v, present := leaf(restored, path)
		if m, ok := v.(map[string]any); present && (!ok || len(m) > 0) {
			continue // something else went in: it stays
		}
		deletePath(restored, path)
		setPath(patch, path, nil)
	}
	return map[string]any{"spec": patch}, nil
}

func deletePath(m map[string]any, path []string) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	delete(m, path[len(path)-1])
}
