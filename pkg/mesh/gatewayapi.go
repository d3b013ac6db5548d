package mesh

// Gateway API gateways that istiod deploys: istiod generates each one's
// Service (named <gateway>-<class>, labelled gateway.istio.io/managed) and
// re-applies it, so a patch of that Service would be undone. Its shape is
// changed where Istio takes it: the Gateway's
// spec.infrastructure.parametersRef names a ConfigMap whose "service" key
// is an overlay istiod merges into the Service it generates (Istio 1.24+,
// "Gateway API: resource customization").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Journal operations of the Gateway API part.
const (
	OpCreateGatewayParams = "create-gateway-parameters"   // the ConfigMap parametersRef names
	OpPatchGatewayParams  = "patch-gateway-parametersref" // the Gateway's spec.infrastructure.parametersRef
)

var (
	// GatewayGVR and GatewayClassGVR are Gateway API's resources.
	GatewayGVR      = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	GatewayClassGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gatewayclasses"}
)

// IstioGatewayController is the controllerName of Istio's GatewayClasses.
const IstioGatewayController = "istio.io/gateway-controller"

// ServiceOverlayKey is the key of the parametersRef ConfigMap istiod
// merges into the Service it generates.
const ServiceOverlayKey = "service"

// ParamsManagedBy labels the ConfigMaps this tool creates.
const ParamsManagedBy = "kubectl-dualstack"

// GatewayPlan is one Gateway whose generated Service is single-stack.
type GatewayPlan struct {
	Namespace       string    `json:"namespace"`
	Name            string    `json:"name"`
	UID             types.UID `json:"uid"`
	ResourceVersion string    `json:"resourceVersion"`
	Class           string    `json:"class"`
	Service         string    `json:"service"`
	Families        []string  `json:"families"`
	// ConfigMap is the parameters ConfigMap this tool creates with Overlay
	// under the "service" key, and Patch the merge patch that points the
	// Gateway at it (with the resourceVersion added).
	ConfigMap string `json:"configMap"`
	Overlay   string `json:"overlay"`
	Patch     string `json:"patch"`
	// HadInfrastructure says spec.infrastructure existed (rollback then
	// only takes parametersRef out of it).
	HadInfrastructure bool `json:"hadInfrastructure"`
}

// gatewayOverlay is the "service" overlay: the policy and families.
func gatewayOverlay(policy corev1.IPFamilyPolicy, fams []corev1.IPFamily) string {
	b, _ := yaml.Marshal(map[string]any{"spec": map[string]any{"ipFamilyPolicy": policy, "ipFamilies": fams}})
	return string(b)
}

// planGateways plans the Gateway API gateways istiod deploys. A Gateway
// that already names a parameters ConfigMap is a blocker with the lines
// to add to it (its owner's object, which this tool does not edit).
func (c *Converter) planGateways(ctx context.Context, p *Plan) error {
	if c.Dynamic == nil {
		return nil
	}
	gws, err := kube.ListUnstructured(ctx, c.Dynamic, GatewayGVR, "", metav1.ListOptions{})
	switch {
	case apierrors.IsNotFound(err): // also a 404 for an API that is not served
		return nil // no Gateway API
	case err != nil:
		return kube.Explain("listing Gateway API Gateways", err)
	}
	if len(gws) == 0 {
		return nil
	}
	istioClass := map[string]bool{"istio": true}
	classes, err := kube.ListUnstructured(ctx, c.Dynamic, GatewayClassGVR, "", metav1.ListOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return kube.Explain("listing Gateway API GatewayClasses", err)
	}
	for _, gc := range classes {
		ctrl, _, _ := unstructured.NestedString(gc.Object, "spec", "controllerName")
		istioClass[gc.GetName()] = ctrl == IstioGatewayController
	}
	var blockers []string
	for _, gw := range gws {
		class, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName")
		if !istioClass[class] {
			continue
		}
		svcs, err := c.Kube.CoreV1().Services(gw.GetNamespace()).List(ctx, metav1.ListOptions{LabelSelector: "gateway.networking.k8s.io/gateway-name=" + gw.GetName()})
		if err != nil {
			return kube.Explain("listing the Services of Gateway "+gw.GetNamespace()+"/"+gw.GetName(), err)
		}
		var svc *corev1.Service
		for i := range svcs.Items {
			if svcs.Items[i].Labels[istioManagedLabel] != "" {
				svc = &svcs.Items[i]
			}
		}
		if svc == nil || serviceDual(svc) || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		fams := targetFamilies(svc)
		overlay := gatewayOverlay(c.Options.Policy, fams)
		ref, hasRef, _ := unstructured.NestedMap(gw.Object, "spec", "infrastructure", "parametersRef")
		if hasRef {
			blockers = append(blockers, fmt.Sprintf("Gateway %s/%s names its parameters (%v %v): add to the %q key of that ConfigMap, which istiod merges into the Service %s it generates:\n%s", gw.GetNamespace(), gw.GetName(), ref["kind"], ref["name"], ServiceOverlayKey, svc.Name, overlay))
			continue
		}
		_, hadInfra, _ := unstructured.NestedMap(gw.Object, "spec", "infrastructure")
		gp := &GatewayPlan{Namespace: gw.GetNamespace(), Name: gw.GetName(), UID: gw.GetUID(), ResourceVersion: gw.GetResourceVersion(),
			Class: class, Service: svc.Name, ConfigMap: gw.GetName() + "-dualstack", Overlay: overlay, HadInfrastructure: hadInfra}
		for _, f := range svc.Spec.IPFamilies {
			gp.Families = append(gp.Families, string(f))
		}
		b, _ := json.Marshal(map[string]any{"spec": map[string]any{"infrastructure": map[string]any{
			"parametersRef": map[string]any{"group": "", "kind": "ConfigMap", "name": gp.ConfigMap}}}})
		gp.Patch = string(b)
		p.Gateways = append(p.Gateways, gp)
	}
	if len(blockers) > 0 && p.Blocker == "" {
		p.Blocker = strings.Join(blockers, "; ")
	}
	return nil
}

// istioManagedLabel marks the Services istiod generates for Gateways.
const istioManagedLabel = "gateway.istio.io/managed"

func gatewayEntryID(op string, gp *GatewayPlan) string {
	return Layer + "/" + op + "/" + gp.Namespace + "/" + gp.Name
}

// applyGateway creates the parameters ConfigMap and points the Gateway at
// it, each journalled first; the Gateway's patch carries the plan's
// resourceVersion unless only its status moved since.
func (c *Converter) applyGateway(ctx context.Context, gp *GatewayPlan) (bool, error) {
	if c.Dynamic == nil {
		return false, errors.New("applying the mesh phase to a Gateway API Gateway needs the dynamic client")
	}
	ref := fmt.Sprintf("gateway %s/%s", gp.Namespace, gp.Name)
	gws := c.Dynamic.Resource(GatewayGVR).Namespace(gp.Namespace)
	cur, err := gws.Get(ctx, gp.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, fmt.Errorf("%s was deleted since it was planned: %w", ref, ErrChanged)
	case err != nil:
		return false, kube.Explain("reading "+ref, err)
	case cur.GetUID() != gp.UID:
		return false, fmt.Errorf("%s was re-created since it was planned: %w", ref, ErrChanged)
	}
	if name, _, _ := unstructured.NestedString(cur.Object, "spec", "infrastructure", "parametersRef", "name"); name == gp.ConfigMap {
		return false, nil // a re-run: done before
	}
	if cur.GetResourceVersion() != gp.ResourceVersion {
		return false, fmt.Errorf("%s (resourceVersion %s, planned at %s): %w", ref, cur.GetResourceVersion(), gp.ResourceVersion, ErrChanged)
	}
	// The ConfigMap.
	cms := c.Kube.CoreV1().ConfigMaps(gp.Namespace)
	ce := journal.Entry{ID: gatewayEntryID(OpCreateGatewayParams, gp), Layer: Layer, Operation: OpCreateGatewayParams,
		Resource: "configmap/" + gp.Namespace + "/" + gp.ConfigMap, State: journal.Pending,
		Undo: map[string]string{"namespace": gp.Namespace, "name": gp.ConfigMap, "overlay": gp.Overlay}}
	existing, err := cms.Get(ctx, gp.ConfigMap, metav1.GetOptions{})
	switch {
	case err == nil && existing.Labels["app.kubernetes.io/managed-by"] == ParamsManagedBy && existing.Data[ServiceOverlayKey] == gp.Overlay:
		// Created by an interrupted run: its entry is in the journal.
	case err == nil:
		return false, fmt.Errorf("a ConfigMap %s/%s exists and is not this tool's: nothing was changed (rename or remove it)", gp.Namespace, gp.ConfigMap)
	case !apierrors.IsNotFound(err):
		return false, kube.Explain("reading configmap "+gp.Namespace+"/"+gp.ConfigMap, err)
	default:
		if err := c.record(ctx, false, ce); err != nil {
			return false, fmt.Errorf("journalling the parameters of %s before creating them (nothing was changed): %w", ref, err)
		}
		made, err := cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: gp.ConfigMap, Namespace: gp.Namespace,
				Labels:      map[string]string{"app.kubernetes.io/managed-by": ParamsManagedBy},
				Annotations: map[string]string{"dualstack.kubectl.io/for-gateway": gp.Name}},
			Data: map[string]string{ServiceOverlayKey: gp.Overlay},
		}, metav1.CreateOptions{})
		if err != nil {
			c.refused(ctx, ce, err)
			return false, kube.Explain("creating configmap "+gp.Namespace+"/"+gp.ConfigMap, err)
		}
		ce.Undo["uid"] = string(made.UID)
		if err := c.done(ctx, ce, "configmap "+gp.Namespace+"/"+gp.ConfigMap); err != nil {
			return true, err
		}
	}
	// The Gateway.
	pe := journal.Entry{ID: gatewayEntryID(OpPatchGatewayParams, gp), Layer: Layer, Operation: OpPatchGatewayParams, Resource: ref, State: journal.Pending,
		Undo: map[string]string{"namespace": gp.Namespace, "name": gp.Name, "uid": string(gp.UID), "configMap": gp.ConfigMap,
			"hadInfrastructure": fmt.Sprint(gp.HadInfrastructure)}}
	if err := c.record(ctx, false, pe); err != nil {
		return true, fmt.Errorf("journalling %s before its patch: %w", ref, err)
	}
	if _, err := gws.Patch(ctx, gp.Name, types.MergePatchType, withResourceVersion(gp.Patch, gp.ResourceVersion), metav1.PatchOptions{}); err != nil {
		c.refused(ctx, pe, err)
		if apierrors.IsConflict(err) {
			return true, fmt.Errorf("%s: %w", ref, ErrChanged)
		}
		return true, kube.Explain("patching "+ref, err)
	}
	return true, c.done(ctx, pe, ref)
}

// waitGatewayServices waits until istiod has re-rendered each Gateway's
// Service with both families.
func (c *Converter) waitGatewayServices(ctx context.Context, plan *Plan) error {
	timeout := plan.Options.timeout()
	var lagging []string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		lagging = lagging[:0]
		for _, gp := range plan.Gateways {
			svc, err := c.Kube.CoreV1().Services(gp.Namespace).Get(ctx, gp.Service, metav1.GetOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return false, kube.Explain("reading service "+gp.Namespace+"/"+gp.Service, err)
			}
			if err != nil || len(svc.Spec.ClusterIPs) < 2 {
				lagging = append(lagging, gp.Namespace+"/"+gp.Service)
			}
		}
		return len(lagging) == 0, nil
	})
	if err != nil && len(lagging) > 0 {
		return fmt.Errorf("istiod did not re-render the Gateway Services %s with both families within %s (their Gateways name the parameters; the changes stay, journalled in layer %q)", strings.Join(lagging, ", "), timeout, Layer)
	}
	return err
}

// undoGatewayPatch takes parametersRef out of the Gateway again (and
// spec.infrastructure, when it was not there), if it still names the
// tool's ConfigMap.
func undoGatewayPatch(ctx context.Context, dc dynamic.Interface, e journal.Entry) (bool, string, error) {
	u := e.Undo
	if dc == nil {
		return false, "", errors.New("rolling back a Gateway needs the dynamic client")
	}
	gws := dc.Resource(GatewayGVR).Namespace(u["namespace"])
	cur, err := gws.Get(ctx, u["name"], metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, e.Resource + " no longer exists; left alone", nil
	case err != nil:
		return false, "", fmt.Errorf("reading %s: %w", e.Resource, err)
	case string(cur.GetUID()) != u["uid"]:
		return false, e.Resource + " was re-created since (another UID); left alone", nil
	}
	name, _, _ := unstructured.NestedString(cur.Object, "spec", "infrastructure", "parametersRef", "name")
	if name != u["configMap"] {
		return false, fmt.Sprintf("%s names other parameters (%q) since; left alone", e.Resource, name), nil
	}
	infra := map[string]any{"parametersRef": nil}
	var patch map[string]any
	if u["hadInfrastructure"] == "true" {
		patch = map[string]any{"spec": map[string]any{"infrastructure": infra}}
	} else {
		patch = map[string]any{"spec": map[string]any{"infrastructure": nil}}
	}
	patch["metadata"] = map[string]any{"resourceVersion": cur.GetResourceVersion()}
	b, _ := json.Marshal(patch)
	if _, err := gws.Patch(ctx, u["name"], types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
		return false, "", fmt.Errorf("patching %s: %w", e.Resource, err)
	}
	return true, "took parametersRef out again", nil
}

// undoGatewayParams deletes the ConfigMap the tool created, if it still
// holds what the tool wrote.
func undoGatewayParams(ctx context.Context, kc kubernetes.Interface, e journal.Entry) (bool, string, error) {
	u := e.Undo
	cms := kc.CoreV1().ConfigMaps(u["namespace"])
	cur, err := cms.Get(ctx, u["name"], metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, "already gone", nil
	case err != nil:
		return false, "", fmt.Errorf("reading %s: %w", e.Resource, err)
	case u["uid"] != "" && string(cur.UID) != u["uid"]:
		return false, e.Resource + " was re-created since (another UID); left alone", nil
	case cur.Labels["app.kubernetes.io/managed-by"] != ParamsManagedBy || cur.Data[ServiceOverlayKey] != u["overlay"] || len(cur.Data) != 1:
		return false, e.Resource + " was changed since this tool created it; left alone", nil
	}
	uid := cur.UID
	if err := cms.Delete(ctx, u["name"], metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &cur.ResourceVersion}}); err != nil && !apierrors.IsNotFound(err) {
		return false, "", fmt.Errorf("deleting %s: %w", e.Resource, err)
	}
	return true, "deleted the parameters ConfigMap this tool created", nil
}

// gatewayNames lists the plan's Gateways.
func gatewayNames(gs []*GatewayPlan) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		out = append(out, g.Namespace+"/"+g.Name)
	}
	slices.Sort(out)
	return out
}
