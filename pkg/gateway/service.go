// Package gateway makes the Istio ingress gateway Service dual-stack: its
// families and policy, the AWS load-balancer annotations, and (behind a
// Classic ELB, which cannot do IPv6 in a VPC) re-creation as an NLB.
package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// Annotations the AWS load-balancer controllers read.
const (
	AnnotationLBType        = "service.beta.kubernetes.io/aws-load-balancer-type"
	AnnotationIPAddressType = "service.beta.kubernetes.io/aws-load-balancer-ip-address-type"
	// GatewaySelector is how the Istio charts label the ingress gateway.
	GatewaySelector = "istio=ingressgateway"
)

// LBKind is what AWS load balancer a Service's annotations ask for.
type LBKind string

const (
	LBClassic  LBKind = "classic"  // the in-tree default without annotation
	LBNLB      LBKind = "nlb"      // in-tree NLB
	LBExternal LBKind = "external" // the AWS Load Balancer Controller ("external", "nlb-ip")
)

// RequestedLB reads the load-balancer type annotation.
func RequestedLB(svc *corev1.Service) LBKind {
	switch strings.ToLower(svc.Annotations[AnnotationLBType]) {
	case "nlb":
		return LBNLB
	case "external", "nlb-ip":
		return LBExternal
	default:
		return LBClassic
	}
}

// Find returns the ingress gateway Service: the one named by ref
// ("namespace/name"), else the single Service labelled istio=ingressgateway
// in any namespace. Several candidates without ref is a usage error that
// lists them.
func Find(ctx context.Context, kc kubernetes.Interface, ref string, command string) (*corev1.Service, error) {
	if ref != "" {
		ns, name, ok := strings.Cut(ref, "/")
		if !ok || ns == "" || name == "" {
			return nil, cli.Usagef("--ingress-service must be namespace/name, got %q", ref)
		}
		svc, err := kc.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, kube.Explain("reading service "+ref, err)
		}
		return svc, nil
	}
	found, err := pager.ListAll[corev1.Service](ctx, metav1.ListOptions{LabelSelector: GatewaySelector}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return kc.CoreV1().Services(metav1.NamespaceAll).List(ctx, o)
	})
	if err != nil {
		return nil, kube.Explain("listing ingress gateway services ("+GatewaySelector+")", err)
	}
	// A migration leaves two gateway Services until the old one is retired:
	// the new one (labelled migrated-from) is the gateway.
	superseded := map[string]bool{}
	for _, s := range found {
		if from := s.Labels[LabelMigratedFrom]; from != "" {
			superseded[s.Namespace+"/"+from] = true
		}
	}
	found = slices.DeleteFunc(found, func(s corev1.Service) bool { return superseded[s.Namespace+"/"+s.Name] })
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no Service labelled %s in any namespace: is Istio's ingress gateway installed? Name it with --ingress-service namespace/name", GatewaySelector)
	case 1:
		return &found[0], nil
	default:
		names := make([]string, 0, len(found))
		for _, s := range found {
			names = append(names, s.Namespace+"/"+s.Name)
		}
		slices.Sort(names)
		return nil, cli.Usagef("%d ingress gateway Services (%s): choose one with %s --ingress-service %s",
			len(found), strings.Join(names, ", "), command, names[0])
	}
}

// Want is the dual-stack shape of a gateway Service.
type Want struct {
	Policy corev1.IPFamilyPolicy // RequireDualStack, or PreferDualStack
}

// families keeps the Service's primary family first (it is immutable) and
// adds the other one.
func families(svc *corev1.Service) []corev1.IPFamily {
	primary := corev1.IPv4Protocol
	if len(svc.Spec.IPFamilies) > 0 {
		primary = svc.Spec.IPFamilies[0]
	}
	if primary == corev1.IPv6Protocol {
		return []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	}
	return []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
}

// wantedAnnotations are the annotations a dual-stack NLB gateway needs, given
// who manages its load balancer: the AWS Load Balancer Controller keeps its
// own type ("external"), the in-tree controller needs "nlb".
func wantedAnnotations(svc *corev1.Service) map[string]string {
	want := map[string]string{AnnotationIPAddressType: "dualstack"}
	if RequestedLB(svc) != LBExternal {
		want[AnnotationLBType] = "nlb"
	}
	return want
}

// Patch is the JSON merge patch that makes svc dual-stack, touching only the
// fields it names (another controller or Helm owns the rest); nil when svc is
// already as wanted.
func Patch(svc *corev1.Service, w Want) ([]byte, error) {
	spec := map[string]any{}
	if svc.Spec.IPFamilyPolicy == nil || *svc.Spec.IPFamilyPolicy != w.Policy {
		spec["ipFamilyPolicy"] = w.Policy
	}
	if fams := families(svc); !slices.Equal(fams, svc.Spec.IPFamilies) {
		spec["ipFamilies"] = fams
	}
	annotations := map[string]any{}
	for k, v := range wantedAnnotations(svc) {
		if svc.Annotations[k] != v {
			annotations[k] = v
		}
	}
	patch := map[string]any{}
	if len(spec) > 0 {
		patch["spec"] = spec
	}
	if len(annotations) > 0 {
		patch["metadata"] = map[string]any{"annotations": annotations}
	}
	if len(patch) == 0 {
		return nil, nil
	}
	return json.Marshal(patch)
}

// Recreated is the Service to create in place of svc (behind a Classic ELB):
// the same ports and nodePorts, selector, labels, annotations plus the NLB
// ones, traffic policies and source ranges; new cluster IPs of both families.
func Recreated(svc *corev1.Service, w Want) *corev1.Service {
	annotations := map[string]string{}
	for k, v := range svc.Annotations {
		annotations[k] = v
	}
	for k, v := range wantedAnnotations(svc) {
		annotations[k] = v
	}
	policy := w.Policy
	out := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:        svc.Name,
			Namespace:   svc.Namespace,
			Labels:      svc.Labels,
			Annotations: annotations,
		},
		Spec: corev1.ServiceSpec{
			Type:                          svc.Spec.Type,
			Ports:                         svc.Spec.Ports,
			Selector:                      svc.Spec.Selector,
			ExternalTrafficPolicy:         svc.Spec.ExternalTrafficPolicy,
			InternalTrafficPolicy:         svc.Spec.InternalTrafficPolicy,
			HealthCheckNodePort:           svc.Spec.HealthCheckNodePort,
			LoadBalancerSourceRanges:      svc.Spec.LoadBalancerSourceRanges,
			SessionAffinity:               svc.Spec.SessionAffinity,
			SessionAffinityConfig:         svc.Spec.SessionAffinityConfig,
			AllocateLoadBalancerNodePorts: svc.Spec.AllocateLoadBalancerNodePorts,
			LoadBalancerClass:             svc.Spec.LoadBalancerClass,
			PublishNotReadyAddresses:      svc.Spec.PublishNotReadyAddresses,
			IPFamilyPolicy:                &policy,
			IPFamilies:                    families(svc),
		},
	}
	return out
}
