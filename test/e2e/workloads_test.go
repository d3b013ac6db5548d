package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// workloadsJSON mirrors the stable fields of `workloads -o json`.
type workloadsJSON struct {
	Outcome string `json:"outcome"`
	Message string `json:"message"`
	Plan    *struct {
		Evicts int `json:"evicts"`
		Skips  int `json:"skips"`
		Pods   []struct {
			Namespace string   `json:"namespace"`
			Name      string   `json:"name"`
			Action    string   `json:"action"`
			Reason    string   `json:"reason"`
			PDBs      []string `json:"pdbs"`
		} `json:"pods"`
	} `json:"plan"`
	Result *struct {
		Recreated int `json:"recreated"`
		Removed   int `json:"removed"`
	} `json:"result"`
	Blocked []struct {
		Namespace          string `json:"namespace"`
		Name               string `json:"name"`
		DisruptionsAllowed int32  `json:"disruptionsAllowed"`
	} `json:"blockedBy"`
}

func parseWorkloads(t *testing.T, r result) workloadsJSON {
	t.Helper()
	var w workloadsJSON
	if err := json.Unmarshal([]byte(r.Stdout), &w); err != nil {
		t.Fatalf("workloads -o json is not JSON: %v\n%s", err, r)
	}
	return w
}

// podUIDs are the UIDs of the pods of a namespace.
func podUIDs(t *testing.T, s *harness.ConversionSandbox, ns string) map[types.UID]string {
	t.Helper()
	pods, err := s.API.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[types.UID]string{}
	for _, p := range pods.Items {
		out[p.UID] = p.Name
	}
	return out
}

// TestWorkloadsCommand: bad input exits 2 before anything; before the
// cluster network has IPv6 the command has pods to move but the upgrade
// phase would wait; a PodDisruptionBudget that allows no eviction ends the
// run with exit 1 naming it, with nothing lost; once it allows one, the
// pods are re-created with both families; a bare pod moves only with
// --force.
func TestWorkloadsCommand(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	ctx := context.Background()

	for _, args := range [][]string{
		{"workloads", "--include-namespaces", "nope"},
		{"workloads", "-l", "app in (web"},
		{"workloads", "--namespace-selector", "=x"},
		{"workloads", "--max-unavailable", "0"},
		{"workloads", "--max-unavailable", "-1"},
		{"upgrade", "--max-unavailable", "0"},
		{"upgrade", "--namespace-selector", "=x"},
		{"upgrade", "--include-namespaces", "nope", "--dry-run=client"},
	} {
		// One line of error (upgrade's progress line may come first).
		if r := plugin(t, kcfg, env, args...); r.Code != 2 || strings.Count(r.Stderr, "error: ") != 1 || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 1 {
			t.Errorf("%v: want exit 2 and one line:\n%s", args, r)
		}
	}

	// The cluster network gets IPv6 first (the pods re-created before it
	// would come back IPv4-only).
	r := plugin(t, kcfg, env, "upgrade", "--yes", "--phases", "aws,nodes,network", "--timeout", "60s")
	if r.Code != 0 {
		t.Fatalf("upgrade --phases aws,nodes,network:\n%s", r)
	}

	// billing/api's budget allows no eviction: minAvailable = replicas.
	pdbs := s.API.Kube.PolicyV1().PodDisruptionBudgets(harness.BillingNamespace)
	strict := []byte(`{"spec":{"maxUnavailable":null,"minAvailable":2}}`)
	if _, err := pdbs.Patch(ctx, "api", types.MergePatchType, strict, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := harness.WaitFor(ctx, 10*time.Second, "the budget to allow no disruption", func(ctx context.Context) (bool, error) {
		p, err := pdbs.Get(ctx, "api", metav1.GetOptions{})
		return err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.DisruptionsAllowed == 0, err
	}); err != nil {
		t.Fatal(err)
	}
	before := podUIDs(t, s, harness.BillingNamespace)
	shopBefore := podUIDs(t, s, harness.ApplicationNamespace)
	r = plugin(t, kcfg, env, "workloads", "--include-namespaces", harness.BillingNamespace, "--timeout", "4s", "--yes", "-o", "json")
	w := parseWorkloads(t, r)
	if r.Code != 1 || w.Outcome != "failed" || len(w.Blocked) != 1 || w.Blocked[0].Namespace != harness.BillingNamespace || w.Blocked[0].Name != "api" ||
		!strings.Contains(r.Stderr, "billing/api") {
		t.Fatalf("workloads behind a budget that allows nothing: want exit 1 naming billing/api:\n%s", r)
	}
	if after := podUIDs(t, s, harness.BillingNamespace); len(after) != len(before) {
		t.Errorf("pods were lost: %v before, %v after", before, after)
	} else {
		for uid := range before {
			if _, ok := after[uid]; !ok {
				t.Errorf("pod %s was evicted despite its budget", before[uid])
			}
		}
	}
	if shopAfter := podUIDs(t, s, harness.ApplicationNamespace); len(shopAfter) != len(shopBefore) {
		t.Errorf("a namespace not selected was touched: %v -> %v", shopBefore, shopAfter)
	}

	// The budget allows one at a time again: both pods move.
	loose := []byte(`{"spec":{"minAvailable":null,"maxUnavailable":1}}`)
	if _, err := pdbs.Patch(ctx, "api", types.MergePatchType, loose, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	r = plugin(t, kcfg, env, "workloads", "--include-namespaces", harness.BillingNamespace, "--timeout", "60s", "--yes", "-o", "json")
	if w = parseWorkloads(t, r); r.Code != 0 || w.Outcome != "converted" || w.Result == nil || w.Result.Recreated != 2 {
		t.Fatalf("workloads once the budget allows it:\n%s", r)
	}
	pods, err := s.API.Kube.CoreV1().Pods(harness.BillingNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if len(p.Status.PodIPs) != 2 {
			t.Errorf("billing pod %s: %v", p.Name, p.Status.PodIPs)
		}
	}

	// The bare pod: left alone without --force, removed with it.
	sel := "--include-namespaces=" + harness.ApplicationNamespace
	r = plugin(t, kcfg, env, "workloads", sel, "-l", "app=debug", "--dry-run=client", "-o", "json")
	if w = parseWorkloads(t, r); r.Code != 0 || w.Plan == nil || w.Plan.Evicts != 0 || w.Plan.Skips != 1 || !strings.Contains(w.Plan.Pods[0].Reason, "--force") {
		t.Fatalf("the bare pod without --force:\n%s", r)
	}
	r = plugin(t, kcfg, env, "workloads", sel, "-l", "app=debug", "--force", "--yes", "-o", "json")
	if w = parseWorkloads(t, r); r.Code != 0 || w.Result == nil || w.Result.Removed != 1 {
		t.Fatalf("the bare pod with --force:\n%s", r)
	}
}
