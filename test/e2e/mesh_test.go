package e2e

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// meshJSON mirrors the stable fields of `mesh -o json`.
type meshJSON struct {
	Outcome string `json:"outcome"`
	Message string `json:"message"`
	Plan    *struct {
		Action string `json:"action"`
		Method string `json:"method"`
		Sail   *struct {
			Name    string `json:"name"`
			Changes []struct {
				Path   []string `json:"path"`
				Target string   `json:"target"`
			} `json:"changes"`
		} `json:"sail"`
	} `json:"plan"`
	Revert []struct {
		Resource string `json:"resource"`
		Status   string `json:"status"`
	} `json:"revert"`
}

func parseMesh(t *testing.T, r result) meshJSON {
	t.Helper()
	var m meshJSON
	if err := json.Unmarshal([]byte(r.Stdout), &m); err != nil {
		t.Fatalf("mesh -o json is not JSON: %v\n%s", err, r)
	}
	return m
}

// TestMeshOnSail: Istio installed by the Sail operator is switched through
// its Istio resource, never behind its back: the plan names the values,
// the operator renders istiod with them (env, mesh config, Service), the
// command waits for that rollout, and --revert gives the resource its
// spec back exactly, which the operator renders again.
func TestMeshOnSail(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{Istio: "sail"})
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	ctx := context.Background()
	sail := s.API.Dynamic.Resource(harness.SailIstioGVR)
	before, err := sail.Get(ctx, harness.SailIstioName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	specBefore, _, _ := unstructured.NestedMap(before.Object, "spec")
	if harness.IstioDualStackNow(ctx, s.API.Kube) {
		t.Fatal("the Sail install should start single-stack")
	}

	r := plugin(t, kcfg, env, "mesh", "--dry-run=client", "-o", "json")
	m := parseMesh(t, r)
	if r.Code != 0 || m.Outcome != "planned" || m.Plan == nil || m.Plan.Method != "sail" || m.Plan.Sail == nil || m.Plan.Sail.Name != harness.SailIstioName {
		t.Fatalf("mesh --dry-run=client on Sail:\n%s", r)
	}
	var paths []string
	for _, c := range m.Plan.Sail.Changes {
		paths = append(paths, strings.Join(c.Path, "."))
	}
	for _, want := range []string{"values.pilot.env.ISTIO_DUAL_STACK", "values.meshConfig.defaultConfig.proxyMetadata.ISTIO_DUAL_STACK", "values.pilot.ipFamilyPolicy"} {
		if !strings.Contains(strings.Join(paths, " "), want) {
			t.Errorf("the plan does not set %s: %v", want, paths)
		}
	}

	r = plugin(t, kcfg, env, "mesh", "--yes", "--timeout", "60s", "-o", "json")
	if m = parseMesh(t, r); r.Code != 0 || m.Outcome != "converted" {
		t.Fatalf("mesh --yes on Sail:\n%s", r)
	}
	// The operator rendered it: istiod's env, the mesh config, the Service.
	if !harness.IstioDualStackNow(ctx, s.API.Kube) {
		t.Error("after mesh, istiod and the mesh config are not dual-stack")
	}
	svc, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, "istiod", metav1.GetOptions{})
	if err != nil || len(svc.Spec.ClusterIPs) != 2 {
		t.Errorf("istiod's Service after mesh: %v %v", err, svc.Spec.ClusterIPs)
	}
	if r := plugin(t, kcfg, env, "mesh", "--yes", "-o", "json"); r.Code != 0 || parseMesh(t, r).Outcome != "nothing-to-do" {
		t.Errorf("a second mesh:\n%s", r)
	}

	r = plugin(t, kcfg, env, "mesh", "--revert", "--yes", "-o", "json")
	if m = parseMesh(t, r); r.Code != 0 || m.Outcome != "reverted" {
		t.Fatalf("mesh --revert on Sail:\n%s", r)
	}
	after, err := sail.Get(ctx, harness.SailIstioName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	specAfter, _, _ := unstructured.NestedMap(after.Object, "spec")
	if !reflect.DeepEqual(specBefore, specAfter) {
		t.Errorf("the Istio resource's spec after --revert:\n%v\nwant\n%v", specAfter, specBefore)
	}
	if err := harness.WaitFor(ctx, 10*time.Second, "the operator to render the original", func(ctx context.Context) (bool, error) {
		return !harness.IstioDualStackNow(ctx, s.API.Kube), nil
	}); err != nil {
		t.Error(err)
	}
}
