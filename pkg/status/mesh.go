package status

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

// meshChecks judge Istio and its ingress gateways, and, where the AWS
// network was read, the load balancer behind each gateway.
func meshChecks(f *Facts, command string) []report.Check {
	if f.MeshErr != nil {
		return []report.Check{{Layer: report.LayerMesh, Name: "istio", Status: report.Warn,
			Message:     "cannot read the mesh: " + f.MeshErr.Error(),
			Remediation: "needs list on deployments and services in all namespaces, and get on the istio ConfigMap"}}
	}
	if f.Mesh == nil {
		return nil
	}
	// A gateway migration leaves the old Service serving next to its
	// <name>-dualstack twin until it is retired: the twin is the gateway.
	twinOf := map[string]string{}
	for _, svc := range f.Gateways {
		if from := svc.Labels[gateway.LabelMigratedFrom]; from != "" {
			twinOf[svc.Namespace+"/"+from] = svc.Namespace + "/" + svc.Name
		}
	}
	var current []corev1.Service
	for _, svc := range f.Gateways {
		if twinOf[svc.Namespace+"/"+svc.Name] == "" {
			current = append(current, svc)
		}
	}
	checks := istio.Checks(f.Mesh, current, command)
	if f.Underlay == nil || f.Underlay.Inventory == nil {
		return checks
	}
	for _, svc := range f.Gateways {
		ref := svc.Namespace + "/" + svc.Name
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.Hostname == "" {
				continue
			}
			c := report.Check{Layer: report.LayerMesh, Name: "ingress-load-balancer"}
			lb, found := findLB(f.Underlay, ing.Hostname)
			switch {
			case !found:
				c.Status = report.Warn
				c.Message = fmt.Sprintf("%s: no load balancer of the cluster's VPC has the DNS name %s", ref, ing.Hostname)
			case lb.Type == "classic" && twinOf[ref] != "":
				c.Status = report.Warn
				c.Message = fmt.Sprintf("%s: Classic ELB %s is migrated to %s and still serves what still resolves to %s", ref, lb.Name, twinOf[ref], ing.Hostname)
				c.Remediation = command + " gateway --retire (once nothing uses " + ing.Hostname + ")"
			case lb.Type == "classic":
				c.Status = report.Fail
				c.Message = fmt.Sprintf("%s: Classic ELB %s cannot serve IPv6 in a VPC", ref, lb.Name)
				c.Remediation = command + " gateway --ingress-service " + ref + " --migrate (no downtime; --recreate is faster, with an outage)"
			case lb.IPAddressType == "dualstack":
				c.Status = report.Pass
				c.Message = fmt.Sprintf("%s: %s %s is dualstack", ref, strings.ToUpper(lbShort(lb.Type)), lb.Name)
			default:
				c.Status = report.Fail
				c.Message = fmt.Sprintf("%s: %s %s is %s", ref, strings.ToUpper(lbShort(lb.Type)), lb.Name, lb.IPAddressType)
				c.Remediation = command + " gateway --ingress-service " + ref
			}
			checks = append(checks, c)
		}
	}
	return checks
}

func findLB(u *UnderlayFacts, host string) (awsx.LoadBalancer, bool) {
	for _, l := range u.Inventory.LoadBalancers {
		if strings.EqualFold(strings.TrimSuffix(l.DNSName, "."), strings.TrimSuffix(host, ".")) {
			return l, true
		}
	}
	return awsx.LoadBalancer{}, false
}

func lbShort(t string) string {
	switch t {
	case "network":
		return "nlb"
	case "application":
		return "alb"
	default:
		return t
	}
}
