package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// TestControllersEvictionMeetsRealPDBs shows the conversion sandbox's
// workloads are kube-controller-manager's: its application starts Ready and
// IPv4-only with pods owned as a cluster owns them; the disruption
// controller computes the PDBs; the apiserver's Eviction API accepts an
// eviction the budget allows (201) and refuses one it does not (429); a
// ReplicaSet replaces its evicted pod and a StatefulSet re-creates its own
// under the same name with a new UID.
func TestControllersEvictionMeetsRealPDBs(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	ctx := context.Background()
	kc := s.API.Kube
	watch, err := harness.StartPDBWatch(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Stop()

	// Every pod is Ready and IPv4-only, owned by its real controller.
	pods, err := harness.ApplicationPods(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]int{}
	for _, p := range pods {
		ctlExpectIPv4Only(t, &p)
		owners[p.Namespace+" "+metav1.GetControllerOf(&p).Kind]++
	}
	want := map[string]int{"shop ReplicaSet": 3, "shop StatefulSet": 2, "billing ReplicaSet": 2, harness.DNSNamespace + " DaemonSet": len(s.World.AWS.Instances)}
	for k, n := range want {
		if owners[k] != n {
			t.Errorf("pods by namespace and owner: %v, want %v", owners, want)
			break
		}
	}
	debug, err := kc.CoreV1().Pods(harness.ApplicationNamespace).Get(ctx, harness.ApplicationBarePod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctlExpectIPv4Only(t, debug)
	t.Logf("%d controller-managed pods (%v) and %s/%s, all Ready and IPv4-only", len(pods), owners, debug.Namespace, debug.Name)

	// The disruption controller computed each budget.
	for _, ref := range []string{"shop/web", "shop/db", "billing/api"} {
		p := ctlPDB(t, kc, ref)
		t.Logf("pdb %s: healthy %d/%d desired, expected %d, %d disruptions allowed", ref, p.Status.CurrentHealthy, p.Status.DesiredHealthy, p.Status.ExpectedPods, p.Status.DisruptionsAllowed)
		if p.Status.DisruptionsAllowed != 1 || p.Status.ObservedGeneration != p.Generation {
			t.Errorf("pdb %s: %+v, want 1 disruption allowed", ref, p.Status)
		}
	}

	// An eviction the budget allows is accepted; the scheduler finds no
	// node for the replacement for now, so the budget stays spent.
	web := ctlPods(t, kc, "shop", "app=web")
	s.Pods.SetNoFit("0/6 nodes are available: 6 Insufficient cpu.")
	if code, err := ctlEvict(ctx, kc, web[0]); code != 201 || err != nil {
		t.Fatalf("evicting %s: %d %v", web[0].Name, code, err)
	}
	t.Logf("first eviction (%s): 201", web[0].Name)
	if p := ctlPDB(t, kc, "shop/web"); p.Status.DisruptionsAllowed != 0 {
		t.Fatalf("pdb shop/web after one eviction: %+v", p.Status)
	}
	code, err := ctlEvict(ctx, kc, web[1])
	if code != 429 || !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), "disruption budget") {
		t.Fatalf("a second eviction with 0 disruptions allowed: %d %v, want 429", code, err)
	}
	t.Logf("second eviction: %d %v", code, err)
	s.Pods.SetNoFit("")

	// The ReplicaSet's replacement starts and the budget is whole again.
	if err := harness.WaitFor(ctx, 15*time.Second, "a Ready replacement for "+web[0].Name, func(ctx context.Context) (bool, error) {
		now := ctlPods(t, kc, "shop", "app=web")
		ready := 0
		for _, p := range now {
			if p.UID == web[0].UID {
				return false, nil
			}
			if ctlReady(&p) {
				ready++
			}
		}
		return ready == 3 && ctlPDB(t, kc, "shop/web").Status.DisruptionsAllowed == 1, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range ctlPods(t, kc, "shop", "app=web") {
		if p.Name == web[1].Name || p.Name == web[2].Name {
			continue
		}
		owner := metav1.GetControllerOf(&p)
		if owner == nil || owner.Kind != "ReplicaSet" || !strings.HasPrefix(p.Name, "web-") {
			t.Errorf("replacement %s is owned by %v", p.Name, owner)
		}
		ctlExpectIPv4Only(t, &p) // started before the conversion
		t.Logf("replacement %s (owner %s/%s) Ready with %v", p.Name, owner.Kind, owner.Name, p.Status.PodIPs)
	}

	// A StatefulSet's evicted pod comes back under its name.
	db1, err := kc.CoreV1().Pods("shop").Get(ctx, "db-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := ctlEvict(ctx, kc, *db1); code != 201 || err != nil {
		t.Fatalf("evicting db-1: %d %v", code, err)
	}
	var back *corev1.Pod
	if err := harness.WaitFor(ctx, 15*time.Second, "db-1 re-created and Ready", func(ctx context.Context) (bool, error) {
		back, err = kc.CoreV1().Pods("shop").Get(ctx, "db-1", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return back.UID != db1.UID && ctlReady(back) && ctlPDB(t, kc, "shop/db").Status.DisruptionsAllowed == 1, nil
	}); err != nil {
		t.Fatal(err)
	}
	if owner := metav1.GetControllerOf(back); owner == nil || owner.Kind != "StatefulSet" || owner.Name != "db" {
		t.Errorf("db-1 is owned by %v", owner)
	}
	t.Logf("db-1: UID %s -> %s", db1.UID, back.UID)

	// No budget was ever broken; the minimums say how close it came.
	for _, l := range watch.Summary() {
		t.Log(l)
	}
	if v := watch.Violations(); len(v) > 0 {
		t.Errorf("PDBs violated: %v", v)
	}
	pdbs, loads := watch.PDBs(), watch.Workloads()
	if pdbs["shop/web"].MinMargin != 0 || pdbs["shop/db"].MinMargin != 0 || pdbs["billing/api"].MinMargin != 1 {
		t.Errorf("PDB margins: %+v", pdbs)
	}
	if loads["Deployment/shop/web"].MinReady != 2 || loads["StatefulSet/shop/db"].MinReady != 1 || loads["Deployment/billing/api"].MinReady != 2 {
		t.Errorf("workloads' Ready minimums: %+v", loads)
	}
}

func ctlExpectIPv4Only(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if !ctlReady(p) || p.Status.Phase != corev1.PodRunning || len(p.Status.PodIPs) != 1 {
		t.Errorf("pod %s/%s: %s, ready %v, IPs %v", p.Namespace, p.Name, p.Status.Phase, ctlReady(p), p.Status.PodIPs)
		return
	}
	if a, err := netip.ParseAddr(p.Status.PodIPs[0].IP); err != nil || !a.Is4() {
		t.Errorf("pod %s/%s: IPs %v, want one IPv4", p.Namespace, p.Name, p.Status.PodIPs)
	}
}

func ctlReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ctlPods lists the pods of a selector that are not being deleted.
func ctlPods(t *testing.T, kc kubernetes.Interface, ns, selector string) []corev1.Pod {
	t.Helper()
	list, err := kc.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func ctlPDB(t *testing.T, kc kubernetes.Interface, ref string) *policyv1.PodDisruptionBudget {
	t.Helper()
	ns, name, _ := strings.Cut(ref, "/")
	p, err := kc.PolicyV1().PodDisruptionBudgets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ctlEvict posts a policy/v1 Eviction for the pod, as client-go's
// PolicyV1().Evictions().Evict does, and returns the HTTP status too.
func ctlEvict(ctx context.Context, kc kubernetes.Interface, p corev1.Pod) (int, error) {
	ev := &policyv1.Eviction{
		TypeMeta:      metav1.TypeMeta{APIVersion: "policy/v1", Kind: "Eviction"},
		ObjectMeta:    metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(p.UID)}},
	}
	code := 0
	err := kc.PolicyV1().RESTClient().Post().AbsPath("/api/v1").Namespace(p.Namespace).Resource("pods").Name(p.Name).
		SubResource("eviction").Body(ev).Do(ctx).StatusCode(&code).Error()
	return code, err
}
