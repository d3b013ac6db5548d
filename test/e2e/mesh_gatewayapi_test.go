package e2e

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

var (
	gatewayGVR      = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	gatewayClassGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gatewayclasses"}
)

// TestMeshGatewayAPIParametersRef: a Gateway API Gateway deployed by
// istiod gets its Service's families through the Gateway's
// spec.infrastructure.parametersRef, never by patching the Service istiod
// re-applies: the mesh phase creates a parameters ConfigMap with the
// Service overlay and points the Gateway at it; istiod (the harness's
// GatewayDeployer) re-renders the Service with both families; --revert
// gives the Gateway its spec back exactly and deletes the ConfigMap. A
// Gateway that already names parameters is not edited behind its owner:
// the plan is blocked with the lines to add, and nothing changes.
func TestMeshGatewayAPIParametersRef(t *testing.T) {
	ctx := context.Background()
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16,fd02::/112"})
	kc, dc := api.Kube, api.Dynamic
	if err := harness.InstallIstio(ctx, kc, harness.IstioInstall{Version: "1.24.2", DualStack: true, Method: "istioctl"}); err != nil {
		t.Fatal(err)
	}
	if err := harness.EnsureNamespace(ctx, kc, "edge", nil); err != nil {
		t.Fatal(err)
	}
	mk := func(gvr schema.GroupVersionResource, ns string, obj map[string]any) {
		t.Helper()
		u := &unstructured.Unstructured{Object: obj}
		var err error
		if ns == "" {
			_, err = dc.Resource(gvr).Create(ctx, u, metav1.CreateOptions{})
		} else {
			_, err = dc.Resource(gvr).Namespace(ns).Create(ctx, u, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	mk(gatewayClassGVR, "", map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
		"metadata": map[string]any{"name": "istio"}, "spec": map[string]any{"controllerName": "istio.io/gateway-controller"}})
	mk(gatewayGVR, "edge", map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": "public"},
		"spec":     map[string]any{"gatewayClassName": "istio", "listeners": []any{map[string]any{"name": "http", "port": int64(80), "protocol": "HTTP"}}}})
	gd := harness.StartGatewayDeployer(kc, dc)
	defer gd.Stop()
	svcIPs := func() []string {
		svc, err := kc.CoreV1().Services("edge").Get(ctx, "public-istio", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return svc.Spec.ClusterIPs
	}
	if err := harness.WaitFor(ctx, 10*time.Second, "istiod to render the Gateway's Service", func(context.Context) (bool, error) { return len(svcIPs()) == 1, nil }); err != nil {
		t.Fatal(err)
	}
	gw0, err := dc.Resource(gatewayGVR).Namespace("edge").Get(ctx, "public", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec0, _, _ := unstructured.NestedMap(gw0.Object, "spec")

	r := plugin(t, api.Kubeconfig, nil, "mesh", "--dry-run=client", "-o", "json")
	var m struct {
		Outcome string `json:"outcome"`
		Plan    struct {
			Gateways []struct {
				Name, Service, ConfigMap, Overlay string
			} `json:"gateways"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &m); err != nil || r.Code != 0 || m.Outcome != "planned" || len(m.Plan.Gateways) != 1 ||
		m.Plan.Gateways[0].Service != "public-istio" || !strings.Contains(m.Plan.Gateways[0].Overlay, "ipFamilyPolicy: PreferDualStack") {
		t.Fatalf("mesh plan with a Gateway API Gateway: %v\n%s", err, r)
	}

	r = plugin(t, api.Kubeconfig, nil, "mesh", "--yes", "--timeout", "30s", "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"converted"`) || len(svcIPs()) != 2 {
		t.Fatalf("mesh --yes with a Gateway API Gateway (Service IPs %v):\n%s", svcIPs(), r)
	}
	gw, _ := dc.Resource(gatewayGVR).Namespace("edge").Get(ctx, "public", metav1.GetOptions{})
	if name, _, _ := unstructured.NestedString(gw.Object, "spec", "infrastructure", "parametersRef", "name"); name != "public-dualstack" {
		t.Errorf("the Gateway's parametersRef: %q", name)
	}

	r = plugin(t, api.Kubeconfig, nil, "mesh", "--revert", "--yes", "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"reverted"`) {
		t.Fatalf("mesh --revert:\n%s", r)
	}
	gw, _ = dc.Resource(gatewayGVR).Namespace("edge").Get(ctx, "public", metav1.GetOptions{})
	if spec, _, _ := unstructured.NestedMap(gw.Object, "spec"); !reflect.DeepEqual(spec, spec0) {
		t.Errorf("the Gateway's spec after --revert:\n%v\nwant\n%v", spec, spec0)
	}
	if _, err := kc.CoreV1().ConfigMaps("edge").Get(ctx, "public-dualstack", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the parameters ConfigMap after --revert: %v", err)
	}

	// A Gateway with parameters of its own: blocked, with the lines to add.
	mk(gatewayGVR, "edge", map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": "internal"},
		"spec": map[string]any{"gatewayClassName": "istio", "listeners": []any{map[string]any{"name": "http", "port": int64(8080), "protocol": "HTTP"}},
			"infrastructure": map[string]any{"parametersRef": map[string]any{"group": "", "kind": "ConfigMap", "name": "internal-params"}}}})
	if _, err := kc.CoreV1().ConfigMaps("edge").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "internal-params"},
		Data: map[string]string{"service": "metadata:\n  annotations:\n    team: edge\n"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := harness.WaitFor(ctx, 10*time.Second, "istiod to render the second Gateway's Service", func(ctx context.Context) (bool, error) {
		_, err := kc.CoreV1().Services("edge").Get(ctx, "internal-istio", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	r = plugin(t, api.Kubeconfig, nil, "mesh", "--yes", "-o", "json")
	if r.Code != 1 || !strings.Contains(r.Stdout, "internal-params") || !strings.Contains(r.Stdout, "ipFamilyPolicy: PreferDualStack") {
		t.Fatalf("mesh with a Gateway that names its own parameters:\n%s", r)
	}
	if cm, _ := kc.CoreV1().ConfigMaps("edge").Get(ctx, "internal-params", metav1.GetOptions{}); cm.Data["service"] != "metadata:\n  annotations:\n    team: edge\n" {
		t.Errorf("the Gateway owner's ConfigMap was edited: %q", cm.Data["service"])
	}
}
