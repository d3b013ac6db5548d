package probe

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
)

func gatewaySvc(name, host string, labels map[string]string) *corev1.Service {
	l := map[string]string{"istio": "ingressgateway"}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: name, Labels: l},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "http2", Port: 80}}},
		Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: host}}}},
	}
}

func waitAddress(t *testing.T, fl *IngressFollower, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, why := fl.Address()
		got := why
		if a != nil {
			got = a.Hostname
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the follower is at %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIngressFollowerFollowsAMigration: the prober stays on the old
// gateway while a migration's twin comes up next to it, and moves to the
// twin when the old Service is retired.
func TestIngressFollowerFollowsAMigration(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kc := fake.NewClientset(gatewaySvc("istio-ingressgateway", "old-elb.example", nil))
	fl, err := FollowIngress(ctx, kc, "", "ingressgateway")
	if err != nil {
		t.Fatal(err)
	}
	waitAddress(t, fl, "old-elb.example")
	twin := gatewaySvc("istio-ingressgateway-dualstack", "new-nlb.example", map[string]string{gateway.LabelMigratedFrom: "istio-ingressgateway"})
	if _, err := kc.CoreV1().Services("istio-system").Create(ctx, twin, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An unrelated Service in the namespace changes nothing.
	if _, err := kc.CoreV1().Services("istio-system").Create(ctx, gatewaySvc("other", "other.example", map[string]string{"istio": "other"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	waitAddress(t, fl, "old-elb.example")
	if err := kc.CoreV1().Services("istio-system").Delete(ctx, "istio-ingressgateway", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAddress(t, fl, "new-nlb.example")

	// Started after the migration, with both still there: the twin, which
	// FindIngressService picks too.
	kc2 := fake.NewClientset(gatewaySvc("istio-ingressgateway", "old-elb.example", nil), twin)
	svc, err := FindIngressService(ctx, kc2, "", "ingressgateway")
	if err != nil || svc.Name != twin.Name {
		t.Fatalf("FindIngressService after a migration: %v %v", svc, err)
	}
	fl2, err := FollowIngress(ctx, kc2, "", "ingressgateway")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	waitAddress(t, fl2, "new-nlb.example")
	if fl2.Name != "istio-ingressgateway" {
		t.Errorf("the lane is named after %q, want the gateway's own name", fl2.Name)
	}
}
