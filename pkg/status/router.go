package status

import (
	"fmt"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/router"
)

// RouterFacts are OpenShift's default IngressController and its router
// Service.
type RouterFacts struct {
	State *router.State
	Err   error
}

// routerCheck judges OpenShift's default router: *.apps, the console and
// OAuth are reached through it, so behind a Classic ELB they stay IPv4-only
// whatever the Istio gateway does.
func routerCheck(f *Facts, command string) *report.Check {
	if f.Router == nil {
		return nil
	}
	c := &report.Check{Layer: report.LayerMesh, Name: "openshift-router"}
	if f.Router.Err != nil {
		c.Status, c.Message = report.Warn, "cannot read the default router: "+f.Router.Err.Error()
		c.Remediation = "needs get on ingresscontrollers (operator.openshift.io) in " + router.Namespace + " and on services in " + router.ServiceNamespace
		return c
	}
	st := f.Router.State
	svcRef := router.ServiceNamespace + "/" + router.ServiceName
	switch {
	case !st.Found:
		c.Status, c.Message = report.Skip, "no default IngressController ("+router.Namespace+"/"+router.Name+")"
		return c
	case st.Strategy != "LoadBalancerService":
		c.Status = report.Skip
		c.Message = fmt.Sprintf("the default IngressController publishes its router as %s, not through a cloud load balancer", orUnknown(st.Strategy))
		return c
	}
	lbName, lbType, lbAddr := "", "", ""
	if st.Service != nil && st.Service.Hostname != "" && f.Underlay != nil && f.Underlay.Inventory != nil {
		if lb, ok := findLB(f.Underlay, st.Service.Hostname); ok {
			lbName, lbType, lbAddr = lb.Name, lb.Type, lb.IPAddressType
		}
	}
	what := svcRef + " (the default router: *.apps, the console, OAuth)"
	fix := fmt.Sprintf("%[1]s router (patches the IngressController's providerParameters.aws.type to NLB; the ingress operator re-creates the router Service: minutes of *.apps outage and a new hostname), then %[1]s aws apply to make its NLB dualstack (or %[1]s upgrade --phases ...,router)", command)
	switch {
	case st.EffectiveLBType() == router.TypeClassic:
		c.Status = report.Warn
		c.Message = fmt.Sprintf("%s is behind a Classic ELB%s, which cannot serve IPv6 in a VPC: *.apps stays IPv4-only", what, named(lbName))
		c.Remediation = fix
	case st.Service == nil || !st.Service.NLB:
		c.Status = report.Warn
		c.Message = fmt.Sprintf("the default IngressController asks for an NLB, but %s is not one yet: the ingress operator is re-creating it (*.apps is down until its load balancer answers)", svcRef)
		c.Remediation = "wait for the ingress operator (oc get clusteroperator ingress); " + command + " status again"
	case lbType == "network" && lbAddr == "dualstack":
		c.Status = report.Pass
		c.Message = fmt.Sprintf("%s is behind NLB %s, dualstack", what, lbName)
	case lbType == "network":
		c.Status = report.Warn
		c.Message = fmt.Sprintf("%s is behind NLB %s, %s: *.apps stays IPv4-only until it is dualstack", what, lbName, lbAddr)
		c.Remediation = command + " aws apply (SetIpAddressType dualstack, once its subnets have IPv6)"
	default:
		c.Status = report.Warn
		c.Message = fmt.Sprintf("%s asks for an NLB, but its load balancer was not found in the cluster's VPC, so whether it is dualstack is not known", what)
		c.Remediation = command + " aws discover lists the VPC's load balancers"
	}
	return c
}

func named(name string) string {
	if name == "" {
		return ""
	}
	return " (" + name + ")"
}
