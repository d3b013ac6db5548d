package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// OpenShift's default router, as an installed cluster has it.
const (
	IngressOperatorNamespace = "openshift-ingress-operator"
	IngressControllerName    = "default"
	RouterNamespace          = "openshift-ingress"
	RouterServiceName        = "router-default"
	annotationAWSLBType      = "service.beta.kubernetes.io/aws-load-balancer-type"
)

// IngressControllersGVR is operator.openshift.io/v1 ingresscontrollers.
var IngressControllersGVR = schema.GroupVersionResource{Group: "operator.openshift.io", Version: "v1", Resource: "ingresscontrollers"}

// routerLabel is how the ingress operator labels and selects the router.
var routerLabel = map[string]string{"ingresscontroller.operator.openshift.io/deployment-ingresscontroller": IngressControllerName}

// CreateOpenShiftRouter creates what the installer and the ingress operator
// leave on an OpenShift IPI cluster on AWS for the default router: the
// IngressController openshift-ingress-operator/default, published through
// a LoadBalancerService with no providerParameters (a Classic ELB), and its
// Service openshift-ingress/router-default with the nodePorts of the
// router's Classic ELB the moto fixture built. The cloud load balancer
// controller (StartLBController) finds that ELB by its service-name tag and
// writes its hostname to the Service's status.
func CreateOpenShiftRouter(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, world *moto.World) error {
	for _, ns := range []string{IngressOperatorNamespace, RouterNamespace} {
		if err := EnsureNamespace(ctx, kc, ns, nil); err != nil {
			return err
		}
	}
	domain := "apps." + world.InfraID + ".example.com"
	ic := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
		"metadata": map[string]any{"namespace": IngressOperatorNamespace, "name": IngressControllerName},
		"spec": map[string]any{
			"domain": domain,
			"endpointPublishingStrategy": map[string]any{
				"type":         "LoadBalancerService",
				"loadBalancer": map[string]any{"scope": "External", "dnsManagementPolicy": "Managed"},
			},
		},
	}}
	if _, err := dc.Resource(IngressControllersGVR).Namespace(IngressOperatorNamespace).Create(ctx, ic, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating ingresscontroller %s/%s: %w", IngressOperatorNamespace, IngressControllerName, err)
	}
	var nodePorts []int32
	if lb, ok := world.LoadBalancerFor(moto.LBPurposeRouter); ok {
		for _, l := range lb.Listeners {
			nodePorts = append(nodePorts, l.InstancePort)
		}
	}
	svc := routerService(false)
	for i := range svc.Spec.Ports {
		if i < len(nodePorts) {
			svc.Spec.Ports[i].NodePort = nodePorts[i]
		}
	}
	if _, err := kc.CoreV1().Services(RouterNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating service %s/%s: %w", RouterNamespace, RouterServiceName, err)
	}
	return nil
}

// routerService is the Service the ingress operator makes for a
// LoadBalancerService IngressController on AWS (its
// desiredLoadBalancerService): an NLB is asked for with the cloud
// provider's type annotation, a Classic ELB by its absence.
func routerService(nlb bool) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: RouterNamespace, Name: RouterServiceName, Labels: routerLabel},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Selector: routerLabel,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP},
				{Name: "https", Port: 443, TargetPort: intstr.FromString("https"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
	if nlb {
		svc.Annotations = map[string]string{annotationAWSLBType: "nlb"}
	}
	return svc
}

// IngressOperator simulates what OpenShift's cluster-ingress-operator does
// with the state a tool leaves, and only that: when the default
// IngressController's providerParameters.aws.type and its router Service's
// load balancer type differ (the cloud provider cannot change the type of
// an existing load balancer), it deletes the router Service, waits until it
// is gone (the cloud controller's finalizer holds it until its load
// balancer is deleted), and creates it again of the type the
// IngressController asks for. It never changes the IngressController.
type IngressOperator struct {
	kube    kubernetes.Interface
	dynamic dynamic.Interface
	cancel  context.CancelFunc
	done    chan struct{}

	mu         sync.Mutex
	recreated  int
	lastErrors []string
}

// StartIngressOperator runs the simulator until Stop.
func StartIngressOperator(kc kubernetes.Interface, dc dynamic.Interface) *IngressOperator {
	ctx, cancel := context.WithCancel(context.Background())
	o := &IngressOperator{kube: kc, dynamic: dc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		t := time.NewTicker(300 * time.Millisecond)
		defer t.Stop()
		for {
			if err := o.reconcile(ctx); err != nil && ctx.Err() == nil {
				o.mu.Lock()
				o.lastErrors = append(o.lastErrors, err.Error())
				o.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return o
}

// Stop ends the simulator.
func (o *IngressOperator) Stop() { o.cancel(); <-o.done }

// Recreated is how many times the router Service was re-created.
func (o *IngressOperator) Recreated() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.recreated
}

func (o *IngressOperator) reconcile(ctx context.Context) error {
	ic, err := o.dynamic.Resource(IngressControllersGVR).Namespace(IngressOperatorNamespace).Get(ctx, IngressControllerName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if typ, _, _ := unstructured.NestedString(ic.Object, "spec", "endpointPublishingStrategy", "type"); typ != "LoadBalancerService" {
		return nil
	}
	lbType, _, _ := unstructured.NestedString(ic.Object, "spec", "endpointPublishingStrategy", "loadBalancer", "providerParameters", "aws", "type")
	wantNLB := lbType == "NLB"
	svcs := o.kube.CoreV1().Services(RouterNamespace)
	cur, err := svcs.Get(ctx, RouterServiceName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err := svcs.Create(ctx, routerService(wantNLB), metav1.CreateOptions{})
		if err == nil {
			o.mu.Lock()
			o.recreated++
			o.mu.Unlock()
		}
		return err
	case err != nil:
		return err
	case cur.DeletionTimestamp != nil:
		return nil // the cloud controller is deleting its load balancer
	case (cur.Annotations[annotationAWSLBType] == "nlb") == wantNLB:
		return nil
	}
	// The type changed: the load balancer must be replaced, so the Service is.
	uid := cur.UID
	return svcs.Delete(ctx, RouterServiceName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
}
