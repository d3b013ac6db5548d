package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

var (
	gatewayGVR      = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	gatewayClassGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gatewayclasses"}
)

// GatewayDeployer is what istiod's Gateway API deployment controller does
// with Services, and no more: for every Gateway of a class whose
// controllerName is istio.io/gateway-controller it applies (server-side,
// forced, as istiod does) the Service <gateway>-<class>, labelled
// gateway.istio.io/managed, with a port per listener, and with the
// "service" key of the ConfigMap named by the Gateway's
// spec.infrastructure.parametersRef merged in as a strategic merge patch
// (Istio 1.24+ resource customization). It renders again whenever the
// Gateway or that ConfigMap changes; it never reads this tool's journal.
type GatewayDeployer struct {
	kube kubernetes.Interface
	dyn  dynamic.Interface
	stop context.CancelFunc
	done chan struct{}

	mu       sync.Mutex
	rendered map[string]string // ns/gateway -> the last applied Service JSON
}

// StartGatewayDeployer starts the controller; Stop ends it.
func StartGatewayDeployer(kc kubernetes.Interface, dc dynamic.Interface) *GatewayDeployer {
	ctx, cancel := context.WithCancel(context.Background())
	g := &GatewayDeployer{kube: kc, dyn: dc, stop: cancel, done: make(chan struct{}), rendered: map[string]string{}}
	go func() {
		defer close(g.done)
		for ctx.Err() == nil {
			g.sync(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return g
}

// Stop ends the controller.
func (g *GatewayDeployer) Stop() {
	g.stop()
	<-g.done
}

func (g *GatewayDeployer) sync(ctx context.Context) {
	classes, err := g.dyn.Resource(gatewayClassGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	istio := map[string]bool{}
	for _, c := range classes.Items {
		ctrl, _, _ := unstructured.NestedString(c.Object, "spec", "controllerName")
		istio[c.GetName()] = ctrl == "istio.io/gateway-controller"
	}
	gws, err := g.dyn.Resource(gatewayGVR).Namespace("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, gw := range gws.Items {
		class, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName")
		if !istio[class] {
			continue
		}
		if err := g.render(ctx, &gw, class); err != nil {
			continue // tried again on the next pass
		}
	}
}

func (g *GatewayDeployer) render(ctx context.Context, gw *unstructured.Unstructured, class string) error {
	name := gw.GetName() + "-" + class
	base := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: gw.GetNamespace(),
			Labels:          map[string]string{"gateway.networking.k8s.io/gateway-name": gw.GetName(), "gateway.istio.io/managed": "istio.io-gateway-controller"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway", Name: gw.GetName(), UID: gw.GetUID()}}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"gateway.networking.k8s.io/gateway-name": gw.GetName()}},
	}
	listeners, _, _ := unstructured.NestedSlice(gw.Object, "spec", "listeners")
	for _, l := range listeners {
		m, _ := l.(map[string]any)
		port, _ := m["port"].(int64)
		lname, _ := m["name"].(string)
		base.Spec.Ports = append(base.Spec.Ports, corev1.ServicePort{Name: lname, Port: int32(port)})
	}
	obj, err := json.Marshal(base)
	if err != nil {
		return err
	}
	if ref, ok, _ := unstructured.NestedMap(gw.Object, "spec", "infrastructure", "parametersRef"); ok && ref["kind"] == "ConfigMap" {
		cmName, _ := ref["name"].(string)
		cm, err := g.kube.CoreV1().ConfigMaps(gw.GetNamespace()).Get(ctx, cmName, metav1.GetOptions{})
		if err != nil {
			return err // istiod reports the Gateway not programmed and waits
		}
		if overlay := cm.Data["service"]; overlay != "" {
			patch, err := yaml.YAMLToJSON([]byte(overlay))
			if err != nil {
				return err
			}
			if obj, err = strategicpatch.StrategicMergePatch(obj, patch, corev1.Service{}); err != nil {
				return err
			}
		}
	}
	key := gw.GetNamespace() + "/" + gw.GetName()
	g.mu.Lock()
	same := g.rendered[key] == string(obj)
	g.mu.Unlock()
	if same {
		return nil
	}
	force := true
	if _, err := g.kube.CoreV1().Services(gw.GetNamespace()).Patch(ctx, name, types.ApplyPatchType, obj,
		metav1.PatchOptions{FieldManager: "istio.io/gateway-controller", Force: &force}); err != nil {
		return fmt.Errorf("applying service %s/%s: %w", gw.GetNamespace(), name, err)
	}
	g.mu.Lock()
	g.rendered[key] = string(obj)
	g.mu.Unlock()
	return nil
}
