package istio

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

// Istio supports dual-stack (ISTIO_DUAL_STACK) from 1.17.
var minIstio = version.MajorMinor(1, 17)

// Checks judges the mesh layer. gateways are the ingress gateway Services;
// command is how the user calls the plugin (for the fixes).
func Checks(f *Facts, gateways []corev1.Service, command string) []report.Check {
	printValues := command + " status --print-istio-values"
	var out []report.Check
	add := func(name string, st report.Status, msg, fix string) {
		out = append(out, report.Check{Layer: report.LayerMesh, Name: name, Status: st, Message: msg, Remediation: fix})
	}
	if !f.Found {
		add("istiod", report.Fail, "no istiod deployment (label app=istiod) in any namespace", "install Istio 1.17 or newer (istioctl, Helm or the Sail operator)")
	} else {
		msg := fmt.Sprintf("istiod %s in %s", orDefault(f.Version, "(version unknown)"), f.Namespace)
		if f.Revision != "" {
			msg += ", revision " + f.Revision
		}
		msg += fmt.Sprintf(", installed with %s", f.Method)
		v, err := version.ParseGeneric(f.Version)
		switch {
		case err != nil:
			add("istiod", report.Warn, msg+"; cannot tell whether this release supports dual-stack (1.17+)", "")
		case v.LessThan(minIstio):
			add("istiod", report.Fail, msg+"; dual-stack needs Istio 1.17 or newer", "upgrade Istio to 1.17 or newer")
		default:
			add("istiod", report.Pass, msg, "")
		}
		if f.IstiodDualStack {
			add("istiod-dual-stack", report.Pass, DualStackEnv+"=true in istiod's environment", "")
		} else {
			add("istiod-dual-stack", report.Fail, DualStackEnv+" is not set to true in istiod's environment",
				fmt.Sprintf("%s mesh (sets pilot env %s=true through the %s install; %s prints the settings)", command, DualStackEnv, f.Method, printValues))
		}
		if f.ProxyDualStack {
			add("proxy-dual-stack", report.Pass, DualStackEnv+"=true in meshConfig.defaultConfig.proxyMetadata ("+f.MeshConfigFrom+")", "")
		} else {
			where := f.MeshConfigFrom
			if where == "" {
				where = "no mesh config found"
			}
			add("proxy-dual-stack", report.Fail, DualStackEnv+" is not true in meshConfig.defaultConfig.proxyMetadata ("+where+")",
				fmt.Sprintf("%s mesh (sets meshConfig.defaultConfig.proxyMetadata.%s=true), then %s workloads re-creates the proxies' pods (%s prints the settings)", command, DualStackEnv, command, printValues))
		}
	}
	if len(gateways) == 0 {
		add("ingress-gateway", report.Fail, "no Service labelled istio=ingressgateway", "install Istio's ingress gateway, or name yours with "+command+" gateway --ingress-service ns/name")
	}
	for i := range gateways {
		out = append(out, gatewayCheck(&gateways[i], command))
	}
	return out
}

func gatewayCheck(svc *corev1.Service, command string) report.Check {
	c := report.Check{Layer: report.LayerMesh, Name: "ingress-gateway"}
	ref := svc.Namespace + "/" + svc.Name
	policy := "SingleStack"
	if svc.Spec.IPFamilyPolicy != nil {
		policy = string(*svc.Spec.IPFamilyPolicy)
	}
	fams := make([]string, 0, len(svc.Spec.IPFamilies))
	for _, f := range svc.Spec.IPFamilies {
		fams = append(fams, string(f))
	}
	lb := gateway.RequestedLB(svc)
	c.Message = fmt.Sprintf("%s: %s [%s], %s", ref, policy, strings.Join(fams, ", "), lbNames[lb])
	dual := len(svc.Spec.IPFamilies) == 2 && policy != "SingleStack"
	switch {
	case dual && svc.Annotations[gateway.AnnotationIPAddressType] == "dualstack" && lb != gateway.LBClassic:
		c.Status = report.Pass
	case lb == gateway.LBClassic && svc.Spec.Type == corev1.ServiceTypeLoadBalancer:
		c.Status = report.Fail
		c.Message += "; a Classic ELB cannot serve IPv6 in a VPC"
		c.Remediation = command + " gateway --ingress-service " + ref + " --migrate (a dual-stack NLB Service next to it, the DNS names moved without downtime; --recreate re-creates the Service instead: an outage, a new hostname)"
	default:
		c.Status = report.Fail
		c.Remediation = command + " gateway --ingress-service " + ref
	}
	return c
}

var lbNames = map[gateway.LBKind]string{
	gateway.LBClassic:  "Classic ELB",
	gateway.LBNLB:      "NLB",
	gateway.LBExternal: "NLB (AWS Load Balancer Controller)",
}
