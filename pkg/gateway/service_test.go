package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

func gatewaySvc(ns, name string, annotations map[string]string) *corev1.Service {
	single := corev1.IPFamilyPolicySingleStack
	local := corev1.ServiceExternalTrafficPolicyLocal
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"},
			Annotations: annotations, ResourceVersion: "7", UID: "u1"},
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeLoadBalancer,
			Selector:                 map[string]string{"istio": "ingressgateway"},
			Ports:                    []corev1.ServicePort{{Name: "http2", Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: 31380}},
			ClusterIP:                "172.30.1.2",
			ClusterIPs:               []string{"172.30.1.2"},
			IPFamilyPolicy:           &single,
			IPFamilies:               []corev1.IPFamily{corev1.IPv4Protocol},
			ExternalTrafficPolicy:    local,
			HealthCheckNodePort:      32000,
			LoadBalancerSourceRanges: []string{"203.0.113.0/24"},
		},
	}
}

func TestFind(t *testing.T) {
	ctx := context.Background()
	one := fake.NewClientset(gatewaySvc("istio-system", "istio-ingressgateway", nil))
	svc, err := Find(ctx, one, "", "kubectl dualstack gateway")
	if err != nil || svc.Name != "istio-ingressgateway" {
		t.Fatalf("single gateway: %v %v", svc, err)
	}

	two := fake.NewClientset(gatewaySvc("istio-system", "istio-ingressgateway", nil), gatewaySvc("edge", "public-gw", nil))
	_, err = Find(ctx, two, "", "kubectl dualstack gateway")
	if cli.ExitCode(err) != cli.ExitBadUsage || !strings.Contains(err.Error(), "edge/public-gw, istio-system/istio-ingressgateway") ||
		!strings.Contains(err.Error(), "--ingress-service") {
		t.Fatalf("two gateways must ask for --service, listing both: %v", err)
	}
	svc, err = Find(ctx, two, "edge/public-gw", "x")
	if err != nil || svc.Namespace != "edge" {
		t.Fatalf("--service: %v %v", svc, err)
	}
	if _, err := Find(ctx, two, "bad", "x"); cli.ExitCode(err) != cli.ExitBadUsage {
		t.Fatalf("--service without a slash: %v", err)
	}
	if _, err := Find(ctx, fake.NewClientset(), "", "x"); err == nil || !strings.Contains(err.Error(), "no Service labelled") {
		t.Fatalf("no gateway: %v", err)
	}
}

func TestPatch(t *testing.T) {
	svc := gatewaySvc("istio-system", "gw", map[string]string{AnnotationLBType: "nlb", "owner": "helm"})
	p, err := Patch(svc, Want{Policy: corev1.IPFamilyPolicyRequireDualStack})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(p, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"annotations":{"service.beta.kubernetes.io/aws-load-balancer-ip-address-type":"dualstack"}},"spec":{"ipFamilies":["IPv4","IPv6"],"ipFamilyPolicy":"RequireDualStack"}}`
	if string(p) != want {
		t.Fatalf("patch\n%s\nwant\n%s", p, want)
	}

	// Already dual-stack: no patch at all.
	dual := corev1.IPFamilyPolicyRequireDualStack
	svc.Spec.IPFamilyPolicy = &dual
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	svc.Annotations[AnnotationIPAddressType] = "dualstack"
	if p, err := Patch(svc, Want{Policy: dual}); err != nil || p != nil {
		t.Fatalf("idempotent: %s %v", p, err)
	}

	// The primary family stays first on an IPv6-primary Service.
	v6 := gatewaySvc("a", "b", nil)
	v6.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	if got := families(v6); got[0] != corev1.IPv6Protocol || got[1] != corev1.IPv4Protocol {
		t.Fatalf("families %v", got)
	}

	// The AWS Load Balancer Controller's type is left alone.
	ext := gatewaySvc("a", "b", map[string]string{AnnotationLBType: "external"})
	p, _ = Patch(ext, Want{Policy: corev1.IPFamilyPolicyPreferDualStack})
	if strings.Contains(string(p), `"nlb"`) || !strings.Contains(string(p), "PreferDualStack") {
		t.Fatalf("external LB patch %s", p)
	}
}

func TestRecreatedKeepsWhatMatters(t *testing.T) {
	old := gatewaySvc("istio-system", "gw", map[string]string{"owner": "helm"})
	n := Recreated(old, Want{Policy: corev1.IPFamilyPolicyRequireDualStack})
	if n.ResourceVersion != "" || n.UID != "" || n.Spec.ClusterIP != "" || len(n.Spec.ClusterIPs) != 0 {
		t.Fatalf("identity and cluster IPs must not be copied: %+v", n)
	}
	if n.Spec.Ports[0].NodePort != 31380 || n.Spec.HealthCheckNodePort != 32000 ||
		n.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
		n.Spec.LoadBalancerSourceRanges[0] != "203.0.113.0/24" || n.Spec.Selector["istio"] != "ingressgateway" ||
		n.Labels["app"] != "istio-ingressgateway" || n.Annotations["owner"] != "helm" {
		t.Fatalf("lost something: %+v", n)
	}
	if n.Annotations[AnnotationLBType] != "nlb" || n.Annotations[AnnotationIPAddressType] != "dualstack" ||
		*n.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyRequireDualStack || len(n.Spec.IPFamilies) != 2 {
		t.Fatalf("not dual-stack NLB: %+v", n)
	}
	if _, ok := old.Annotations[AnnotationLBType]; ok {
		t.Fatal("the old Service must not be modified")
	}
}

func TestRequestedLB(t *testing.T) {
	for v, want := range map[string]LBKind{"": LBClassic, "nlb": LBNLB, "NLB": LBNLB, "external": LBExternal, "nlb-ip": LBExternal, "clb": LBClassic} {
		svc := gatewaySvc("a", "b", map[string]string{AnnotationLBType: v})
		if got := RequestedLB(svc); got != want {
			t.Errorf("%q: %s want %s", v, got, want)
		}
	}
}
