// Package router moves OpenShift's default router off its Classic ELB.
//
// The default IngressController (openshift-ingress-operator/default) serves
// *.apps, the console and OAuth through the Service
// openshift-ingress/router-default, which the ingress operator owns. On AWS
// it is published, unless told otherwise, through a Classic ELB, which
// cannot serve IPv6 in a VPC. The supported change is the IngressController's
// spec.endpointPublishingStrategy.loadBalancer.providerParameters.aws.type:
// NLB; the ingress operator then deletes and re-creates the router Service,
// so the load balancer and its hostname change and *.apps is down for
// minutes. The Service itself is never patched: the operator would put it
// back.
//
// Plan reads; Apply patches the IngressController (journalled first, with
// the resourceVersion the plan read) and waits for the operator's new
// Service; Rollback puts the previous providerParameters back exactly.
package router

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// IngressControllersGVR is operator.openshift.io/v1 ingresscontrollers.
var IngressControllersGVR = schema.GroupVersionResource{Group: "operator.openshift.io", Version: "v1", Resource: "ingresscontrollers"}

// The default IngressController and the router Service the operator makes for it.
const (
	Namespace        = "openshift-ingress-operator"
	Name             = "default"
	ServiceNamespace = "openshift-ingress"
	ServiceName      = "router-default"
	// AnnotationLBType is the cloud provider's load balancer type annotation
	// the ingress operator sets on the router Service for an NLB.
	AnnotationLBType = "service.beta.kubernetes.io/aws-load-balancer-type"
)

// providerPath is where the load balancer type is set.
var providerPath = []string{"spec", "endpointPublishingStrategy", "loadBalancer", "providerParameters"}

// Load balancer types of providerParameters.aws.type.
const (
	TypeClassic = "Classic" // the default when unset
	TypeNLB     = "NLB"
)

// State is the default IngressController and its router Service.
type State struct {
	Found           bool      `json:"found"`
	UID             types.UID `json:"uid,omitempty"`
	ResourceVersion string    `json:"resourceVersion,omitempty"`
	// Strategy is spec.endpointPublishingStrategy.type (LoadBalancerService,
	// HostNetwork, NodePortService, Private).
	Strategy string `json:"strategy,omitempty"`
	// LBType is providerParameters.aws.type as the spec says it ("" when
	// unset: Classic).
	LBType string `json:"lbType,omitempty"`
	// ProviderParameters is providerParameters as it is, JSON ("" when absent).
	ProviderParameters string `json:"providerParameters,omitempty"`
	// The router Service, when it exists.
	Service *ServiceState `json:"service,omitempty"`
}

// ServiceState is what matters of the router Service.
type ServiceState struct {
	UID      types.UID `json:"uid"`
	NLB      bool      `json:"nlb"` // annotated aws-load-balancer-type: nlb
	Hostname string    `json:"hostname,omitempty"`
}

// EffectiveLBType is the type the spec asks for: Classic unless NLB.
func (s *State) EffectiveLBType() string {
	if s.LBType == TypeNLB {
		return TypeNLB
	}
	return TypeClassic
}

// Read reads the default IngressController and the router Service. A
// cluster without either (no ingress operator, or its API not served) is
// a State that is not Found.
func Read(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface) (*State, error) {
	st := &State{}
	ic, err := dc.Resource(IngressControllersGVR).Namespace(Namespace).Get(ctx, Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
		return st, nil
	case err != nil:
		return nil, fmt.Errorf("reading ingresscontroller %s/%s: %w", Namespace, Name, err)
	}
	st.Found, st.UID, st.ResourceVersion = true, ic.GetUID(), ic.GetResourceVersion()
	st.Strategy, _, _ = unstructured.NestedString(ic.Object, "spec", "endpointPublishingStrategy", "type")
	st.LBType, _, _ = unstructured.NestedString(ic.Object, append(providerPath, "aws", "type")...)
	if pp, ok, _ := unstructured.NestedMap(ic.Object, providerPath...); ok {
		b, _ := json.Marshal(pp)
		st.ProviderParameters = string(b)
	}
	svc, err := kc.CoreV1().Services(ServiceNamespace).Get(ctx, ServiceName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("reading service %s/%s: %w", ServiceNamespace, ServiceName, err)
	default:
		st.Service = serviceState(svc)
	}
	return st, nil
}

func serviceState(svc *corev1.Service) *ServiceState {
	s := &ServiceState{UID: svc.UID, NLB: svc.Annotations[AnnotationLBType] == "nlb"}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.Hostname != "" {
			s.Hostname = ing.Hostname
			break
		}
	}
	return s
}
