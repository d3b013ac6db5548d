package status

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

func gw(name, host string, labels map[string]string) corev1.Service {
	l := map[string]string{"istio": "ingressgateway"}
	for k, v := range labels {
		l[k] = v
	}
	return corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: name, Labels: l},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: host}}}}}
}

// TestMeshChecksDuringAMigration: behind a Classic ELB the fix is a
// migration; once migrated, the old Service still serving is a WARN whose
// fix retires it, and the ingress-gateway check judges the new one only.
func TestMeshChecksDuringAMigration(t *testing.T) {
	classic := awsx.LoadBalancer{Name: "a1b2", Type: "classic", DNSName: "a1b2.elb.amazonaws.com"}
	nlb := awsx.LoadBalancer{Name: "n1", Type: "network", IPAddressType: "dualstack", DNSName: "n1.elb.amazonaws.com"}
	under := &UnderlayFacts{Inventory: &awsx.Inventory{LoadBalancers: []awsx.LoadBalancer{classic, nlb}}}
	old := gw("istio-ingressgateway", classic.DNSName, nil)

	before := meshChecks(&Facts{Mesh: &istio.Facts{Found: true}, Gateways: []corev1.Service{old}, Underlay: under}, "kubectl dualstack")
	lb := findCheck(t, before, "ingress-load-balancer")
	if lb.Status != report.Fail || !strings.Contains(lb.Remediation, "--migrate") {
		t.Errorf("before: %+v", lb)
	}

	twin := gw("istio-ingressgateway-dualstack", nlb.DNSName, map[string]string{gateway.LabelMigratedFrom: "istio-ingressgateway"})
	after := meshChecks(&Facts{Mesh: &istio.Facts{Found: true}, Gateways: []corev1.Service{old, twin}, Underlay: under}, "kubectl dualstack")
	var verdicts []string
	for _, c := range after {
		if c.Name == "ingress-load-balancer" || c.Name == "ingress-gateway" {
			verdicts = append(verdicts, c.Name+" "+string(c.Status)+" "+c.Message)
			if strings.Contains(c.Message, "istio-system/istio-ingressgateway:") && c.Status != report.Warn {
				t.Errorf("the migrated Classic gateway: %+v", c)
			}
			if c.Status == report.Warn && !strings.Contains(c.Remediation, "gateway --retire") {
				t.Errorf("the WARN should say how to retire: %+v", c)
			}
		}
	}
	joined := strings.Join(verdicts, "\n")
	if strings.Count(joined, "ingress-gateway ") != 1 || !strings.Contains(joined, "istio-ingressgateway-dualstack") || !strings.Contains(joined, "migrated to istio-system/istio-ingressgateway-dualstack") {
		t.Errorf("after the migration:\n%s", joined)
	}
}

func findCheck(t *testing.T, checks []report.Check, name string) report.Check {
	t.Helper()
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, checks)
	return report.Check{}
}
