package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cmtext"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// ErrChanged is an object that changed since it was planned: Apply does
// not overwrite it; plan again.
var ErrChanged = cmtext.ErrChanged

// Result is what Apply did.
type Result struct {
	// Changed are the objects written, Already those that already held
	// what the plan writes (a re-run), as "kind namespace/name".
	Changed []string `json:"changed"`
	Already []string `json:"already,omitempty"`
	// RolledOut says istiod's rollout was waited for and finished.
	RolledOut bool   `json:"rolledOut"`
	Message   string `json:"message"`
}

// Journal entry IDs: stable for an object, so a re-run finds its own.
func sailEntryID(name string) string { return Layer + "/" + OpPatchSailValues + "/" + name }
func meshEntryID(m *MeshConfigPlan) string {
	return Layer + "/" + OpUpdateMeshConfig + "/" + m.Namespace + "/" + m.Name + "/" + m.Key
}
func envEntryID(e *EnvPlan) string {
	return Layer + "/" + OpPatchIstiodEnv + "/" + e.Namespace + "/" + e.Deployment + "/" + e.Container
}
func serviceEntryID(s *ServicePlan) string {
	return Layer + "/" + OpPatchService + "/" + s.Namespace + "/" + s.Name
}

// Apply makes exactly the plan's changes. Each object's original is
// journalled in full (pending) before it is written, and every write
// carries a resourceVersion: an object changed since the plan is refused
// (by the apiserver, or seen here first) and Apply returns ErrChanged,
// leaving it as it is. For a Deployment and the Sail Istio resource, whose
// status writes move the resourceVersion, "changed" means a new
// metadata.generation (their spec moved) or a different value where the
// plan writes; their write then carries the resourceVersion just read.
// An object that already holds what the plan writes counts as done.
//
// The order on istioctl and manifest installs is istiod's Service, the
// mesh config, then istiod's env; then Apply waits for istiod's rollout.
// On a Sail install it patches the Istio resource and waits until the
// operator has rolled istiod out with the env. A plan with a blocker is
// not applied at all.
func (c *Converter) Apply(ctx context.Context, plan *Plan) (*Result, error) {
	if plan.Blocker != "" {
		return nil, fmt.Errorf("not applied: %s", plan.Blocker)
	}
	res := &Result{Changed: []string{}}
	if plan.Action != ActionChange {
		res.Message = "nothing to change: " + plan.Summary
		return res, nil
	}
	if c.Journal == nil {
		return nil, errors.New("applying the mesh phase needs the journal")
	}
	note := func(what string, changed bool) {
		if changed {
			res.Changed = append(res.Changed, what)
		} else {
			res.Already = append(res.Already, what)
		}
	}
	wait := false
	if plan.Sail != nil && len(plan.Sail.Changes) > 0 {
		changed, err := c.applySail(ctx, plan.Sail)
		if err != nil {
			return res, err
		}
		note("istio "+plan.Sail.Name, changed)
		wait = true
	}
	if h := plan.Helm; h != nil && len(h.Changes) > 0 {
		changed, err := c.applyHelm(ctx, h)
		if err != nil {
			return res, err
		}
		note("helm release "+h.Namespace+"/"+h.Release, changed)
		wait = true
	}
	if s := plan.Service; s != nil && s.Change {
		changed, err := c.applyService(ctx, s)
		if err != nil {
			return res, err
		}
		note("service "+s.Namespace+"/"+s.Name, changed)
	}
	if m := plan.MeshConfig; m != nil && m.Change {
		changed, err := c.applyMeshConfig(ctx, m)
		if err != nil {
			return res, c.partly(res, err)
		}
		note("configmap "+m.Namespace+"/"+m.Name, changed)
	}
	if e := plan.Env; e != nil && e.Change {
		changed, err := c.applyEnv(ctx, e)
		if err != nil {
			return res, c.partly(res, err)
		}
		note("deployment "+e.Namespace+"/"+e.Deployment, changed)
		wait = true
	}
	if wait {
		if err := c.waitRollout(ctx, plan); err != nil {
			return res, c.partly(res, err)
		}
		res.RolledOut = true
	}
	for _, gp := range plan.Gateways {
		changed, err := c.applyGateway(ctx, gp)
		if err != nil {
			return res, c.partly(res, err)
		}
		note("gateway "+gp.Namespace+"/"+gp.Name, changed)
	}
	if len(plan.Gateways) > 0 {
		if err := c.waitGatewayServices(ctx, plan); err != nil {
			return res, c.partly(res, err)
		}
	}
	res.Message = fmt.Sprintf("changed %s", orNone(res.Changed))
	if len(res.Already) > 0 {
		res.Message += fmt.Sprintf("; already so: %s", strings.Join(res.Already, ", "))
	}
	if res.RolledOut {
		res.Message += fmt.Sprintf("; istiod %s/%s rolled out with %s=true", plan.Namespace, plan.Istiod, istio.DualStackEnv)
	}
	return res, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

// partly adds to err what was changed before it: it is in the journal.
func (c *Converter) partly(res *Result, err error) error {
	if len(res.Changed) == 0 {
		return err
	}
	return fmt.Errorf("%w (already changed, and journalled in layer %q for rollback: %s)", err, Layer, strings.Join(res.Changed, ", "))
}

// record writes entries to the journal; final ones even after Ctrl-C.
func (c *Converter) record(ctx context.Context, final bool, e journal.Entry) error {
	if final {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		ctx = wctx
	}
	return c.Journal.PutAll(ctx, []journal.Entry{e})
}

// refused records an entry as not made when the apiserver refused the
// write (nothing changed); after no clear answer it stays pending, so
// rollback looks at the object itself.
func (c *Converter) refused(ctx context.Context, e journal.Entry, err error) {
	if !kube.Refused(err) {
		return
	}
	e.State = journal.Failed
	e.Undo["notMade"] = err.Error()
	_ = c.record(ctx, true, e)
}

func (c *Converter) done(ctx context.Context, e journal.Entry, what string) error {
	e.State = journal.Done
	if err := c.record(ctx, true, e); err != nil {
		return fmt.Errorf("changed %s but could not record it as done in the journal (its pending entry stays, so rollback still finds it): %w", what, err)
	}
	return nil
}

func withResourceVersion(patch, rv string) []byte {
	var m map[string]any
	_ = json.Unmarshal([]byte(patch), &m) // built by this package
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["resourceVersion"] = rv
	m["metadata"] = meta
	b, _ := json.Marshal(m)
	return b
}

// applySail patches the Istio resource's spec.values.
func (c *Converter) applySail(ctx context.Context, sp *SailPlan) (bool, error) {
	if c.Dynamic == nil {
		return false, errors.New("applying the mesh phase of a Sail install needs the dynamic client")
	}
	ri := c.Dynamic.Resource(istio.SailIstioGVR)
	ref := "the Sail Istio resource " + sp.Name
	cur, err := ri.Get(ctx, sp.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, fmt.Errorf("%s was deleted: %w", ref, ErrChanged)
	case err != nil:
		return false, kube.Explain("reading "+ref, err)
	case cur.GetUID() != sp.UID:
		return false, fmt.Errorf("%s was re-created: %w", ref, ErrChanged)
	}
	spec, _, _ := unstructured.NestedMap(cur.Object, "spec")
	switch sailState(spec, sp.Changes) {
	case stateApplied:
		return false, nil
	case stateOther:
		return false, fmt.Errorf("%s: its spec.values changed where this plan writes: %w", ref, ErrChanged)
	}
	if cur.GetGeneration() != sp.Generation {
		return false, fmt.Errorf("%s (generation %d, planned at %d): %w", ref, cur.GetGeneration(), sp.Generation, ErrChanged)
	}
	changes, _ := json.Marshal(sp.Changes)
	created, _ := json.Marshal(sp.Created)
	e := journal.Entry{ID: sailEntryID(sp.Name), Layer: Layer, Operation: OpPatchSailValues,
		Resource: "istio.sailoperator.io/" + sp.Name, State: journal.Pending,
		Undo: map[string]string{"name": sp.Name, "uid": string(sp.UID), "changes": string(changes), "created": string(created),
			"plannedResourceVersion": sp.ResourceVersion}}
	if err := c.record(ctx, false, e); err != nil {
		return false, fmt.Errorf("recording the original values of %s in the journal before changing them: %w", ref, err)
	}
	_, err = ri.Patch(ctx, sp.Name, types.MergePatchType, withResourceVersion(sp.Patch, cur.GetResourceVersion()), metav1.PatchOptions{})
	if err != nil {
		c.refused(ctx, e, err)
		if apierrors.IsConflict(err) {
			return false, fmt.Errorf("%s: %w", ref, ErrChanged)
		}
		return false, kube.Explain("patching "+ref, err)
	}
	c.logf("mesh: patched the Sail Istio resource %s\n", sp.Name)
	return true, c.done(ctx, e, ref)
}

// Where the leaves a plan writes stand.
type leafState int

const (
	stateOriginal leafState = iota // all as planned from
	stateApplied                   // all as the plan writes
	stateOther                     // someone else's
)

func sailState(spec map[string]any, changes []ValueChange) leafState {
	orig, applied := true, true
	for _, ch := range changes {
		v, present := leaf(spec, ch.Path)
		js := ""
		if present {
			b, _ := json.Marshal(v)
			js = string(b)
		}
		if present != ch.Present || (present && !jsonEqual(js, ch.Original)) {
			orig = false
		}
		if !present || !jsonEqual(js, ch.Target) {
			applied = false
		}
	}
	switch {
	case applied:
		return stateApplied
	case orig:
		return stateOriginal
	default:
		return stateOther
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	return reflect.DeepEqual(x, y)
}

// applyService patches istiod's Service to the planned shape.
func (c *Converter) applyService(ctx context.Context, sp *ServicePlan) (bool, error) {
	svcs := c.Kube.CoreV1().Services(sp.Namespace)
	ref := "istiod's Service " + sp.Namespace + "/" + sp.Name
	cur, err := svcs.Get(ctx, sp.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, fmt.Errorf("%s was deleted: %w", ref, ErrChanged)
	case err != nil:
		return false, kube.Explain("reading "+ref, err)
	case cur.UID != sp.UID:
		return false, fmt.Errorf("%s was re-created: %w", ref, ErrChanged)
	case policyOf(cur) == sp.TargetPolicy && slices.Equal(cur.Spec.IPFamilies, sp.TargetFamilies):
		return false, nil
	case cur.ResourceVersion != sp.ResourceVersion:
		return false, fmt.Errorf("%s (resourceVersion %s, planned at %s): %w", ref, cur.ResourceVersion, sp.ResourceVersion, ErrChanged)
	}
	e := journal.Entry{ID: serviceEntryID(sp), Layer: Layer, Operation: OpPatchService,
		Resource: "service/" + sp.Namespace + "/" + sp.Name, State: journal.Pending,
		Undo: map[string]string{"namespace": sp.Namespace, "name": sp.Name, "uid": string(sp.UID),
			"ipFamilyPolicy": string(sp.Policy), "ipFamilies": familiesString(sp.Families), "clusterIPs": strings.Join(sp.ClusterIPs, ","),
			"appliedPolicy": string(sp.TargetPolicy), "appliedFamilies": familiesString(sp.TargetFamilies)}}
	if err := c.record(ctx, false, e); err != nil {
		return false, fmt.Errorf("recording %s's families in the journal before changing them: %w", ref, err)
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": sp.ResourceVersion},
		"spec":     map[string]any{"ipFamilyPolicy": sp.TargetPolicy, "ipFamilies": sp.TargetFamilies},
	})
	got, err := svcs.Patch(ctx, sp.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		c.refused(ctx, e, err)
		switch {
		case apierrors.IsConflict(err):
			return false, fmt.Errorf("%s: %w", ref, ErrChanged)
		case apierrors.IsInvalid(err) && strings.Contains(err.Error(), "not configured"):
			return false, fmt.Errorf("%s: the cluster has no IPv6 service range yet: run the network phase first (%v)", ref, err)
		}
		return false, kube.Explain("patching "+ref, err)
	}
	if err := c.done(ctx, e, ref); err != nil {
		return true, err
	}
	v4, v6 := ipfamily.Cover(got.Spec.ClusterIPs)
	if !slices.Equal(got.Spec.IPFamilies, sp.TargetFamilies) || !(v4 && v6) {
		return true, fmt.Errorf("%s: the apiserver answered with families [%s] and cluster IPs %s, not one of each family", ref, familiesString(got.Spec.IPFamilies), strings.Join(got.Spec.ClusterIPs, ","))
	}
	c.logf("mesh: istiod's Service %s/%s is %s with cluster IPs %s\n", sp.Namespace, sp.Name, sp.TargetPolicy, strings.Join(got.Spec.ClusterIPs, ","))
	return true, nil
}

func policyOf(svc *corev1.Service) corev1.IPFamilyPolicy {
	if svc.Spec.IPFamilyPolicy == nil {
		return ""
	}
	return *svc.Spec.IPFamilyPolicy
}

// applyMeshConfig writes the planned mesh config text.
func (c *Converter) applyMeshConfig(ctx context.Context, m *MeshConfigPlan) (bool, error) {
	ref := fmt.Sprintf("the mesh config %s/%s [%s]", m.Namespace, m.Name, m.Key)
	e := m.edit()
	already, _, err := cmtext.Write(ctx, c.Kube, c.Journal, e, e.Entry(meshEntryID(m), Layer, OpUpdateMeshConfig))
	if err != nil || already {
		return false, err
	}
	c.logf("mesh: %s now has defaultConfig.proxyMetadata.%s: \"true\"\n", ref, istio.DualStackEnv)
	return true, nil
}

// edit is the planned update as package cmtext writes it.
func (m *MeshConfigPlan) edit() cmtext.Edit {
	return cmtext.Edit{Namespace: m.Namespace, Name: m.Name, Key: m.Key, UID: m.UID, ResourceVersion: m.ResourceVersion,
		KeyPresent: m.KeyPresent, Original: m.Original, New: m.New}
}

// applyEnv sets the variable in istiod's container.
func (c *Converter) applyEnv(ctx context.Context, ep *EnvPlan) (bool, error) {
	deps := c.Kube.AppsV1().Deployments(ep.Namespace)
	ref := "istiod's Deployment " + ep.Namespace + "/" + ep.Deployment
	cur, err := deps.Get(ctx, ep.Deployment, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, fmt.Errorf("%s was deleted: %w", ref, ErrChanged)
	case err != nil:
		return false, kube.Explain("reading "+ref, err)
	case cur.UID != ep.UID:
		return false, fmt.Errorf("%s was re-created: %w", ref, ErrChanged)
	}
	switch envState(cur, ep) {
	case stateApplied:
		return false, nil
	case stateOther:
		return false, fmt.Errorf("%s: its %s variable changed since the plan: %w", ref, istio.DualStackEnv, ErrChanged)
	}
	if cur.Generation != ep.Generation {
		return false, fmt.Errorf("%s (generation %d, planned at %d): %w", ref, cur.Generation, ep.Generation, ErrChanged)
	}
	e := journal.Entry{ID: envEntryID(ep), Layer: Layer, Operation: OpPatchIstiodEnv,
		Resource: "deployment/" + ep.Namespace + "/" + ep.Deployment, State: journal.Pending,
		Undo: map[string]string{"namespace": ep.Namespace, "name": ep.Deployment, "uid": string(ep.UID), "container": ep.Container,
			"present": strconv.FormatBool(ep.Present), "originalValue": ep.OriginalValue, "originalValueFrom": ep.OriginalValueFrom,
			"plannedResourceVersion": ep.ResourceVersion}}
	if err := c.record(ctx, false, e); err != nil {
		return false, fmt.Errorf("recording %s's original %s in the journal before changing it: %w", ref, istio.DualStackEnv, err)
	}
	if _, err := deps.Patch(ctx, ep.Deployment, types.StrategicMergePatchType, withResourceVersion(ep.Patch, cur.ResourceVersion), metav1.PatchOptions{}); err != nil {
		c.refused(ctx, e, err)
		if apierrors.IsConflict(err) {
			return false, fmt.Errorf("%s: %w", ref, ErrChanged)
		}
		return false, kube.Explain("patching "+ref, err)
	}
	c.logf("mesh: set %s=true in %s (container %s)\n", istio.DualStackEnv, ref, ep.Container)
	return true, c.done(ctx, e, ref)
}

// envState says whether the container's variable is as planned from, as
// written, or someone else's.
func envState(d *appsv1.Deployment, ep *EnvPlan) leafState {
	var ct *corev1.Container
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == ep.Container {
			ct = &d.Spec.Template.Spec.Containers[i]
		}
	}
	if ct == nil {
		return stateOther
	}
	e := findEnv(ct.Env)
	if e != nil && e.ValueFrom == nil && e.Value == "true" {
		return stateApplied
	}
	valueFrom := ""
	if e != nil && e.ValueFrom != nil {
		b, _ := json.Marshal(e.ValueFrom)
		valueFrom = string(b)
	}
	if (e != nil) == ep.Present && (e == nil || (e.Value == ep.OriginalValue && jsonEqualOrEmpty(valueFrom, ep.OriginalValueFrom))) {
		return stateOriginal
	}
	return stateOther
}

func jsonEqualOrEmpty(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	return jsonEqual(a, b)
}

// rolledOut is `kubectl rollout status`'s test: the controller has seen
// the latest spec, and every replica is updated and available, with no
// old one left.
func rolledOut(d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	msg := fmt.Sprintf("%d of %d replicas updated, %d available", s.UpdatedReplicas, want, s.AvailableReplicas)
	if s.ObservedGeneration < d.Generation {
		return false, "waiting for the deployment controller to see the new spec; " + msg
	}
	if s.Replicas > s.UpdatedReplicas {
		msg += fmt.Sprintf(", %d old pending termination", s.Replicas-s.UpdatedReplicas)
	}
	return s.UpdatedReplicas == want && s.AvailableReplicas == want && s.Replicas == want, msg
}

// envOn says istiod's container runs with the variable "true".
func envOn(d *appsv1.Deployment) bool {
	for _, ct := range d.Spec.Template.Spec.Containers {
		if ct.Name != DiscoveryContainer && len(d.Spec.Template.Spec.Containers) > 1 {
			continue
		}
		if e := findEnv(ct.Env); e != nil && e.ValueFrom == nil && strings.EqualFold(e.Value, "true") {
			return true
		}
	}
	return false
}

// waitRollout follows istiod's Deployment (one list, then a watch) until
// it runs with the variable and its rollout is done, with progress lines
// on Log. On a Sail install the operator makes the Deployment change, so
// the env is part of what is waited for.
func (c *Converter) waitRollout(ctx context.Context, plan *Plan) error {
	ns, name := plan.Namespace, plan.Istiod
	byName := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return c.Kube.AppsV1().Deployments(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return c.Kube.AppsV1().Deployments(ns).Watch(ctx, o)
		},
	}, c.Kube)
	timeout := plan.Options.timeout()
	last := ""
	c.logf("mesh: waiting up to %s for istiod %s/%s to roll out\n", timeout, ns, name)
	err := kube.Wait(ctx, timeout, func(objs []map[string]runtime.Object) (bool, error) {
		d, _ := objs[0][ns+"/"+name].(*appsv1.Deployment)
		var ok bool
		var msg string
		switch {
		case d == nil:
			msg = "the Deployment is not there"
		case !envOn(d):
			msg = fmt.Sprintf("waiting for %s=true in its env (the Sail operator renders it from the Istio resource)", istio.DualStackEnv)
		default:
			ok, msg = rolledOut(d)
		}
		if msg != last {
			c.logf("mesh: istiod %s/%s: %s\n", ns, name, msg)
			last = msg
		}
		return ok, nil
	}, kube.Watched{What: "deployment " + ns + "/" + name, LW: lw, Type: &appsv1.Deployment{}})
	if err == nil {
		return nil
	}
	var te *kube.TimeoutError
	if !errors.As(err, &te) {
		return fmt.Errorf("waiting for istiod's rollout: %w", err)
	}
	who := "istiod's rollout"
	if plan.Helm != nil {
		who = fmt.Sprintf("the rollout of istiod with %s=true after the Helm upgrade of %s/%s", istio.DualStackEnv, plan.Helm.Namespace, plan.Helm.Release)
	}
	if plan.Sail != nil {
		who = fmt.Sprintf("the Sail operator's rollout of istiod with %s=true (from the Istio resource %s)", istio.DualStackEnv, plan.Sail.Name)
	}
	return fmt.Errorf("%s %s/%s did not finish within %s (last: %s); the changes stay, journalled in layer %q (rollback undoes them): %w", who, ns, name, timeout, last, Layer, err)
}
