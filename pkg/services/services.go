// Package services makes the cluster's existing Services dual-stack.
//
// Kubernetes never does it on its own: a Service keeps the families it got
// when it was created, and a PreferDualStack Service created while the
// cluster was single-stack keeps its one family after the cluster gains
// IPv6 service ranges (the apiserver only adds a family when the policy or
// the families change). So every Service that should answer over IPv6 is
// changed explicitly: cluster DNS and istiod first, then the rest.
//
// The package is a phase in two steps: Plan reads (nothing but a
// server-side dry run is sent) and returns plain data naming every Service
// it would change or skip and why; Apply applies exactly that plan,
// journalling each change before it is made, and Rollback takes the changes
// back from the journal.
package services

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
)

// Layer is the journal layer of the Services' changes.
const Layer = "services"

// OpPatchService is the journal operation of one Service's patch.
const OpPatchService = "patch-service"

// Labels that mark Services another component owns.
const (
	// gatewayLabel is how the Istio charts label the ingress gateway; the
	// gateway command changes it with its load balancer.
	gatewayLabel = "istio"
	gatewayValue = "ingressgateway"
	// istioManagedGateway marks a Service istiod generates for a Gateway API
	// Gateway; istiod re-applies it, so a patch would be reverted.
	istioManagedGateway = "gateway.istio.io/managed"
)

// System roles, in the order their Services are changed: name resolution
// first (everything else looks its peers up through it), then the mesh's
// control plane.
const (
	SystemDNS    = "cluster-dns"
	SystemIstiod = "istiod"
)

// systemRole says whether svc is one of the Services changed first.
func systemRole(svc *corev1.Service) string {
	switch {
	case svc.Namespace == "openshift-dns" && svc.Name == "dns-default",
		svc.Namespace == "kube-system" && svc.Name == "kube-dns":
		return SystemDNS
	case svc.Namespace == "istio-system" && (svc.Name == "istiod" || svc.Labels["app"] == "istiod"):
		// istiod, and the Services of its revisions (istiod-1-24, ...).
		return SystemIstiod
	}
	return ""
}

func systemRank(role string) int {
	switch role {
	case SystemDNS:
		return 0
	case SystemIstiod:
		return 1
	default:
		return 2
	}
}

// Shape is what this package changes of a Service: its policy and families.
type Shape struct {
	// Policy is "" for a Service stored without one (written before
	// dual-stack existed); Kubernetes treats it as SingleStack.
	Policy   corev1.IPFamilyPolicy `json:"ipFamilyPolicy"`
	Families []corev1.IPFamily     `json:"ipFamilies"`
}

// ShapeOf reads svc's shape.
func ShapeOf(svc *corev1.Service) Shape {
	s := Shape{Families: slices.Clone(svc.Spec.IPFamilies)}
	if svc.Spec.IPFamilyPolicy != nil {
		s.Policy = *svc.Spec.IPFamilyPolicy
	}
	return s
}

// Equal compares two shapes; a missing policy is SingleStack.
func (s Shape) Equal(o Shape) bool {
	return s.policy() == o.policy() && slices.Equal(s.Families, o.Families)
}

func (s Shape) policy() corev1.IPFamilyPolicy {
	if s.Policy == "" {
		return corev1.IPFamilyPolicySingleStack
	}
	return s.Policy
}

func (s Shape) String() string {
	if s.Policy == "" && len(s.Families) == 0 {
		return "-" // ExternalName: neither
	}
	fams := make([]string, len(s.Families))
	for i, f := range s.Families {
		fams[i] = string(f)
	}
	return fmt.Sprintf("%s [%s]", s.policy(), strings.Join(fams, ","))
}

// primary is svc's first family: the one of its first cluster IP, which
// never changes.
func primary(svc *corev1.Service) corev1.IPFamily {
	if len(svc.Spec.IPFamilies) > 0 {
		return svc.Spec.IPFamilies[0]
	}
	if ipfamily.Of(svc.Spec.ClusterIP) == ipfamily.IPv6 {
		return corev1.IPv6Protocol
	}
	return corev1.IPv4Protocol
}

// Target is the dual-stack shape of svc under policy: its primary family
// first, then the other.
func Target(svc *corev1.Service, policy corev1.IPFamilyPolicy) Shape {
	if primary(svc) == corev1.IPv6Protocol {
		return Shape{Policy: policy, Families: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}}
	}
	return Shape{Policy: policy, Families: []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}}
}

// Judge says whether svc is one this package makes dual-stack, and why (or
// why not), whatever the user selected.
func Judge(svc *corev1.Service) (change bool, reason string) {
	s := ShapeOf(svc)
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return false, "ExternalName: no cluster IP; its name resolves as its target's does"
	case svc.Namespace == "default" && svc.Name == "kubernetes":
		return false, "the kube-apiserver's own Service: the apiserver manages it, with the family of its advertise address"
	case svc.Labels[gatewayLabel] == gatewayValue:
		return false, "the Istio ingress gateway: the gateway command changes it together with its load balancer"
	case svc.Labels[istioManagedGateway] != "":
		return false, "generated by istiod for a Gateway API Gateway, which re-applies it: set its families through the Gateway's spec.infrastructure.parametersRef"
	case svc.Spec.ClusterIP == corev1.ClusterIPNone && len(svc.Spec.Selector) == 0:
		return false, "headless without a selector: its endpoints are written by whoever manages them, not from pods, so IPv6 endpoints are theirs to add"
	case svc.Spec.ClusterIP == "":
		return false, "no cluster IP"
	case s.policy() == corev1.IPFamilyPolicyRequireDualStack:
		return false, "already dual-stack: " + s.String()
	case len(s.Families) >= 2:
		return false, "already dual-stack: " + s.String()
	case s.policy() == corev1.IPFamilyPolicyPreferDualStack:
		return true, "PreferDualStack with one family (" + familiesString(s.Families) + "): created while the cluster was single-stack, and Kubernetes never adds the second"
	default:
		return true, "single-stack: " + s.String()
	}
}

func familiesString(f []corev1.IPFamily) string {
	out := make([]string, len(f))
	for i, x := range f {
		out[i] = string(x)
	}
	return strings.Join(out, ",")
}

// patch is the JSON merge patch that gives svc the target shape, and only
// that: the rest of the Service is someone else's (Helm, an operator). With
// resourceVersion set, the apiserver refuses it if svc changed since it
// was read.
func patch(target Shape, resourceVersion string) []byte {
	p := map[string]any{"spec": map[string]any{"ipFamilyPolicy": target.Policy, "ipFamilies": target.Families}}
	if resourceVersion != "" {
		p["metadata"] = map[string]any{"resourceVersion": resourceVersion}
	}
	b, _ := json.Marshal(p) // strings only: cannot fail
	return b
}

// inversePatch is the merge patch that takes a Service back to one family:
// SingleStack, its original family and cluster IP (the apiserver releases
// the second one). A Service that was PreferDualStack gets that policy back
// in a second step, where the cluster allows it (see Rollback).
func inversePatch(before Shape, clusterIPs []string) []byte {
	spec := map[string]any{
		"ipFamilyPolicy": corev1.IPFamilyPolicySingleStack,
		"ipFamilies":     before.Families,
	}
	if len(clusterIPs) == 1 {
		spec["clusterIPs"] = clusterIPs
	}
	b, _ := json.Marshal(map[string]any{"spec": spec})
	return b
}

// rollbackNote warns, in the plan, of the one shape rollback cannot always
// give back: PreferDualStack with one family, which Kubernetes gives both
// families again whenever the cluster has two.
func rollbackNote(before Shape) string {
	if before.policy() == corev1.IPFamilyPolicyPreferDualStack && len(before.Families) == 1 {
		return "rollback gives back its one family and cluster IP; it can set PreferDualStack again only once the cluster has one service family (Kubernetes gives a PreferDualStack Service both families whenever the cluster has two), and says so; until then it is SingleStack"
	}
	return ""
}
