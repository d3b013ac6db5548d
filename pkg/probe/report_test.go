package probe

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

func TestMeshInstalled(t *testing.T) {
	istio := &metav1.APIResourceList{GroupVersion: "networking.istio.io/v1", APIResources: []metav1.APIResource{{Name: "gateways"}, {Name: "virtualservices"}}}
	onlyGateways := &metav1.APIResourceList{GroupVersion: "networking.istio.io/v1", APIResources: []metav1.APIResource{{Name: "gateways"}}}
	for _, tc := range []struct {
		name   string
		served []*metav1.APIResourceList
		s      Scenario
		want   string // "" for installed
	}{
		{"istio served", []*metav1.APIResourceList{istio}, Scenario{}, ""},
		{"no istio", nil, Scenario{}, "Istio is not installed"},
		{"half istio", []*metav1.APIResourceList{onlyGateways}, Scenario{}, "Istio is not installed"},
		{"no mesh needs none", nil, Scenario{NoMesh: true}, ""},
		{"gateway api missing", []*metav1.APIResourceList{istio}, Scenario{GatewayAPI: true}, "Gateway API is not installed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset()
			cs.Resources = tc.served
			err := tc.s.meshInstalled(cs)
			var missing *ErrMeshMissing
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want installed, got %v", err)
			case tc.want != "" && (!errors.As(err, &missing) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(missing.Fix, "--no-mesh")):
				t.Fatalf("want %q pointing at --no-mesh, got %v", tc.want, err)
			}
		})
	}
}

func terminatingNamespace() *corev1.Namespace {
	now := metav1.Now()
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "dualstack-validate", DeletionTimestamp: &now, Finalizers: []string{"kubernetes"},
		Labels: map[string]string{LabelManagedBy: ManagedBy},
	}}
}

func TestDeployWaitsForTerminatingNamespace(t *testing.T) {
	dc := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())

	// It never goes: the run's budget ends the wait, naming the state.
	cs := fake.NewClientset(terminatingNamespace())
	ctx, cancel := context.WithTimeoutCause(context.Background(), 700*time.Millisecond, errors.New("--timeout"))
	defer cancel()
	var heard []string
	s := scenario()
	s.Progress = func(m string) { heard = append(heard, m) }
	var d Deployment
	err := Deploy(ctx, cs, dc, s, &d)
	var term *ErrNamespaceTerminating
	if !errors.As(err, &term) || !strings.Contains(err.Error(), "still Terminating") || !strings.Contains(err.Error(), "-n") || strings.Contains(err.Error(), "left over") || strings.HasPrefix(err.Error(), "looking up") {
		t.Fatalf("want a Terminating error, got %v", err)
	}
	if len(heard) != 1 || !strings.Contains(heard[0], "Terminating") {
		t.Errorf("progress: %q", heard)
	}
	if d.OwnNamespace() {
		t.Error("a namespace being deleted is not validate's to delete again")
	}

	// It goes while validate waits: validate creates it afresh and goes on.
	cs = fake.NewClientset(terminatingNamespace())
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("namespaces"), "", "dualstack-validate")
	}()
	if err := Deploy(context.Background(), cs, dc, scenario(), &d); err != nil {
		t.Fatalf("after the namespace went: %v", err)
	}
	ns, err := cs.CoreV1().Namespaces().Get(context.Background(), "dualstack-validate", metav1.GetOptions{})
	if err != nil || ns.DeletionTimestamp != nil || ns.Labels[LabelRun] != "run1" || !d.OwnNamespace() {
		t.Fatalf("want a fresh namespace of this run: %+v %v", ns, err)
	}
}

func TestNotRun(t *testing.T) {
	v := &Validator{Checks: []string{CheckPodIPs, CheckServiceIPs, CheckCurlIngress}}
	// Before Deploy made the Services: every check says why it did not run.
	r := v.NotRun(nil, report.Fail, "Istio is not installed", "pass --no-mesh")
	if r.Summary.Total != 6 || r.Summary.Fail != 6 {
		t.Fatalf("summary %+v", r.Summary)
	}
	for _, c := range r.Checks {
		if c.Layer != report.LayerProof || c.Family == "" || c.Message != "not run: Istio is not installed" || c.Remediation != "pass --no-mesh" {
			t.Errorf("%+v", c)
		}
	}
	if r.Checks[0].Name != CheckPodIPs || r.Checks[1].Family != "IPv6" || r.Checks[5].Name != CheckCurlIngress {
		t.Errorf("order: %+v", r.Checks)
	}
	// With the Services made, service-ips is judged; the rest not run.
	r = v.NotRun(deployment(true), report.Inconclusive, "interrupted", "re-run")
	got := map[string]report.Status{}
	for _, c := range r.Checks {
		got[c.Name+"/"+c.Family] = c.Status
	}
	if got["service-ips/IPv4"] != report.Pass || got["service-ips/IPv6"] != report.Fail || got["pod-ips/IPv4"] != report.Inconclusive || r.Summary.Inconclusive != 4 {
		t.Errorf("got %v", got)
	}
}

func TestRunCutShortIsInconclusive(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("validate did not finish within --timeout 1s"))
	v := &Validator{Checks: []string{CheckPodIPs, CheckDNSIngress}, IngressErr: errors.New("gone")}
	r := v.Run(ctx, deployment(true))
	got := map[string]report.Check{}
	for _, c := range r.Checks {
		got[c.Name+"/"+c.Family] = c
	}
	// pod-ips/IPv4 passed on what it saw; the rest may be the cut.
	if got["pod-ips/IPv4"].Status != report.Pass {
		t.Errorf("pod-ips/IPv4: %+v", got["pod-ips/IPv4"])
	}
	for _, k := range []string{"pod-ips/IPv6", "dns-ingress/IPv4", "dns-ingress/IPv6"} {
		if c := got[k]; c.Status != report.Inconclusive || !strings.Contains(c.Message, "cut short (validate did not finish within --timeout 1s)") {
			t.Errorf("%s: %+v", k, c)
		}
	}
}

func TestDiagnosePods(t *testing.T) {
	unschedulable := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sleep", Namespace: "dualstack-validate", Labels: map[string]string{LabelRun: "run1", "app": SleepName}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes are available"},
		}},
	}
	pulling := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "httpbin-1", Namespace: "dualstack-validate", Labels: map[string]string{LabelRun: "run1", "app": HTTPBinName}},
		Status: corev1.PodStatus{Phase: corev1.PodPending,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "httpbin", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "b"`}}}},
		},
	}
	event := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "e1", Namespace: "dualstack-validate"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "httpbin-1"}, Type: corev1.EventTypeWarning,
		Reason: "Failed", Message: "Failed to pull image \"b\": not found", LastTimestamp: metav1.Now(),
	}
	d := &Deployment{Scenario: scenario(), kube: fake.NewClientset(unschedulable, pulling, event)}
	got := d.DiagnosePods(context.Background())
	for _, want := range []string{
		"pod sleep Pending (PodScheduled=False Unschedulable: 0/2 nodes are available)",
		`pod httpbin-1 Pending (container httpbin ImagePullBackOff: Back-off pulling image "b"; event Failed: Failed to pull image "b": not found)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diagnosis %q\nwant it to contain %q", got, want)
		}
	}
	// No pod at all for httpbin: say so, and where to look.
	d = &Deployment{Scenario: scenario(), kube: fake.NewClientset(unschedulable)}
	if got := d.DiagnosePods(context.Background()); !strings.Contains(got, "httpbin: no pod was created") {
		t.Errorf("diagnosis %q", got)
	}
}

// A namespace of validate's own that an earlier run failed to delete is
// deleted and made afresh (a re-run converges); one kept on purpose with
// --keep is refused, as is anyone else's.
func TestDeployFinishesAnAbandonedNamespace(t *testing.T) {
	dc := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	abandoned := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dualstack-validate", UID: "old",
		Labels: map[string]string{LabelManagedBy: ManagedBy}}}
	cs := fake.NewClientset(abandoned)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var heard []string
	s := scenario()
	s.NoMesh = true
	s.Progress = func(m string) { heard = append(heard, m) }
	var d Deployment
	err := Deploy(ctx, cs, dc, s, &d)
	if err != nil && strings.Contains(err.Error(), "left over") {
		t.Fatalf("an abandoned namespace of validate's own must be cleaned up, got %v", err)
	}
	if !d.OwnNamespace() || len(heard) == 0 || !strings.Contains(heard[0], "cleanup failed") {
		t.Fatalf("own namespace %t, heard %q, err %v", d.OwnNamespace(), heard, err)
	}
	ns, gerr := cs.CoreV1().Namespaces().Get(ctx, "dualstack-validate", metav1.GetOptions{})
	if gerr != nil || ns.UID == "old" {
		t.Fatalf("the namespace was not made afresh: %v %+v", gerr, ns)
	}

	kept := abandoned.DeepCopy()
	kept.Annotations = map[string]string{AnnotationKept: "true"}
	cs = fake.NewClientset(kept)
	err = Deploy(ctx, cs, dc, scenario(), &Deployment{})
	var exists *ErrNamespaceExists
	if !errors.As(err, &exists) || !exists.Ours || !strings.Contains(err.Error(), "left over") {
		t.Fatalf("a kept namespace must be refused: %v", err)
	}
}

// Without an ingress gateway and without an error finding one, the check
// says so (it once printed "no ingress gateway: <nil>").
func TestNoIngressSaysWhatIsMissing(t *testing.T) {
	c := (&Validator{}).noIngress()
	if c.Status != report.Fail || c.Message != "no ingress gateway Service was found" || !strings.Contains(c.Remediation, "--checks") {
		t.Errorf("no ingress, no error: %+v", c)
	}
	c = (&Validator{IngressErr: errors.New("two gateways: a/x, b/y")}).noIngress()
	if c.Message != "no ingress gateway: two gateways: a/x, b/y" {
		t.Errorf("no ingress, an error: %+v", c)
	}
}
