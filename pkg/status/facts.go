// Package status builds the read-only readiness report of `status`: it reads
// the cluster once (every list paginated) into Facts, then judges each layer
// from those facts alone, so the verdicts are pure functions and testable.
package status

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/policies"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/router"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/services"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/workloads"
)

// NodeFacts is what the overlay checks need of one node.
type NodeFacts struct {
	Name        string
	InternalIPs []string
	PodCIDRs    []string // spec.podCIDRs, or OVN-Kubernetes' node subnets
}

// ServiceCIDRFacts are the cluster's service ranges and where they came from.
type ServiceCIDRFacts struct {
	CIDRs  []string // ranges, or single ClusterIPs when only a probe could tell
	Source string
	Err    error // set when neither way worked
}

// ServiceFacts count the Services that have a cluster IP and the
// single-stack ones among them, judged as the services command judges them.
type ServiceFacts struct {
	services.Census
	Err error // set when the Services could not be listed
}

// PodFacts counts the pods without an IPv6 pod IP.
type PodFacts struct {
	workloads.Census
	Err error // set when the pods could not be listed
}

// OpenShiftNetwork is networks.config.openshift.io/cluster plus the network
// ClusterOperator's conditions.
type OpenShiftNetwork struct {
	NetworkType          string
	SpecClusterNetwork   []string
	SpecServiceNetwork   []string
	StatusClusterNetwork []string
	StatusServiceNetwork []string
	OperatorDegraded     string // the Degraded condition's message when True
	Err                  error
}

// Facts is everything status judges.
type Facts struct {
	Platform     platform.Info
	Nodes        []NodeFacts
	ServiceCIDRs ServiceCIDRFacts
	Services     ServiceFacts
	Pods         PodFacts
	OpenShift    *OpenShiftNetwork // nil unless OpenShift
	Underlay     *UnderlayFacts    // nil unless on AWS
	Mesh         *istio.Facts
	Gateways     []corev1.Service // labelled istio=ingressgateway
	MeshErr      error            // set when the mesh could not be read
	Policies     PolicyFacts
	Router       *RouterFacts // nil unless OpenShift
}

// Options tune how Gather reads the cluster.
type Options struct {
	// AWSProfile is the AWS shared config profile for the underlay ("": the
	// standard chain): the one the kubeconfig context's credentials use.
	AWSProfile string
}

// Gather reads the cluster. An error means the cluster could not be read at
// all; a failure to read one optional thing is kept in the facts instead.
func Gather(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, opts Options) (*Facts, error) {
	nodes, err := kube.ListNodes(ctx, kc, metav1.ListOptions{})
	if err != nil {
		return nil, kube.Explain("listing nodes", err)
	}
	info, err := platform.Detect(ctx, kc, dc, nodes)
	if err != nil {
		return nil, err
	}
	f := &Facts{Platform: info, Nodes: nodeFacts(nodes)}
	if info.Kind == platform.OpenShift {
		f.OpenShift = openShiftNetwork(ctx, dc)
		st, err := router.Read(ctx, kc, dc)
		f.Router = &RouterFacts{State: st, Err: err}
	}
	if f.OpenShift != nil && f.OpenShift.Err == nil && len(f.OpenShift.StatusServiceNetwork) > 0 {
		// On OpenShift the network operator's status is what the apiservers
		// are rolled out with.
		f.ServiceCIDRs = ServiceCIDRFacts{CIDRs: f.OpenShift.StatusServiceNetwork, Source: "networks.config.openshift.io status.serviceNetwork"}
	} else {
		f.ServiceCIDRs = serviceCIDRs(ctx, kc)
	}
	if c, err := services.Count(ctx, kc); err != nil {
		f.Services.Err = kube.Explain("listing services in all namespaces", err)
	} else {
		f.Services.Census = c
	}
	if c, err := workloads.Count(ctx, kc); err != nil {
		f.Pods.Err = err
	} else {
		f.Pods.Census = c
	}
	f.Policies.Items, f.Policies.Err = policies.List(ctx, kc)
	if info.OnAWS() {
		f.Underlay = gatherUnderlay(ctx, info, nodes, dc, opts.AWSProfile)
	}
	f.Mesh, f.MeshErr = istio.Inspect(ctx, kc, dc)
	if f.MeshErr == nil {
		f.Gateways, f.MeshErr = gatewayServices(ctx, kc)
	}
	return f, nil
}

// gatewayServices lists the Istio ingress gateway Services, page by page.
func gatewayServices(ctx context.Context, kc kubernetes.Interface) ([]corev1.Service, error) {
	out, err := pager.ListAll[corev1.Service](ctx, metav1.ListOptions{LabelSelector: gateway.GatewaySelector}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return kc.CoreV1().Services(metav1.NamespaceAll).List(ctx, o)
	})
	if err != nil {
		return nil, kube.Explain("listing ingress gateway services", err)
	}
	return out, nil
}

func nodeFacts(nodes []corev1.Node) []NodeFacts {
	out := make([]NodeFacts, 0, len(nodes))
	for _, n := range nodes {
		nf := NodeFacts{Name: n.Name, PodCIDRs: n.Spec.PodCIDRs}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				nf.InternalIPs = append(nf.InternalIPs, a.Address)
			}
		}
		if len(nf.PodCIDRs) == 0 && n.Spec.PodCIDR != "" {
			nf.PodCIDRs = []string{n.Spec.PodCIDR}
		}
		if len(nf.PodCIDRs) == 0 {
			nf.PodCIDRs = ipfamily.NodePodCIDRs(&n)
		}
		out = append(out, nf)
	}
	return out
}

// serviceCIDRs reads ServiceCIDR objects (Kubernetes >= 1.33); where that API
// is missing or forbidden it asks the apiserver to dry-run a PreferDualStack
// Service, whose ClusterIPs show which families the service range has.
func serviceCIDRs(ctx context.Context, kc kubernetes.Interface) ServiceCIDRFacts {
	list, err := kc.NetworkingV1().ServiceCIDRs().List(ctx, metav1.ListOptions{Limit: kube.PageSize})
	if err == nil && len(list.Items) > 0 {
		var cidrs []string
		for _, sc := range list.Items {
			cidrs = append(cidrs, sc.Spec.CIDRs...)
		}
		return ServiceCIDRFacts{CIDRs: cidrs, Source: "ServiceCIDR objects"}
	}
	listErr := err
	policy := corev1.IPFamilyPolicyPreferDualStack
	probe := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "dualstack-probe-"},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeClusterIP,
			IPFamilyPolicy: &policy,
			Ports:          []corev1.ServicePort{{Port: 80}},
		},
	}
	svc, err := kc.CoreV1().Services(metav1.NamespaceDefault).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		if listErr != nil && !apierrors.IsNotFound(listErr) {
			err = fmt.Errorf("listing ServiceCIDRs: %v; dry-run of a Service: %w", listErr, err)
		}
		return ServiceCIDRFacts{Err: err}
	}
	return ServiceCIDRFacts{CIDRs: svc.Spec.ClusterIPs, Source: "ClusterIPs of a dry-run PreferDualStack Service"}
}

func openShiftNetwork(ctx context.Context, dc dynamic.Interface) *OpenShiftNetwork {
	on := &OpenShiftNetwork{}
	nw, err := dc.Resource(platform.NetworksGVR).Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		on.Err = fmt.Errorf("reading networks.config.openshift.io/cluster: %w", err)
		return on
	}
	on.NetworkType, _, _ = unstructured.NestedString(nw.Object, "spec", "networkType")
	on.SpecClusterNetwork = clusterNetworkCIDRs(nw, "spec")
	on.StatusClusterNetwork = clusterNetworkCIDRs(nw, "status")
	on.SpecServiceNetwork, _, _ = unstructured.NestedStringSlice(nw.Object, "spec", "serviceNetwork")
	on.StatusServiceNetwork, _, _ = unstructured.NestedStringSlice(nw.Object, "status", "serviceNetwork")

	co, err := dc.Resource(platform.ClusterOperatorsGVR).Get(ctx, "network", metav1.GetOptions{})
	if err == nil {
		conds, _, _ := unstructured.NestedSlice(co.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Degraded" && m["status"] == "True" {
				on.OperatorDegraded = fmt.Sprintf("%v: %v", m["reason"], m["message"])
			}
		}
	}
	return on
}

func clusterNetworkCIDRs(nw *unstructured.Unstructured, section string) []string {
	entries, _, _ := unstructured.NestedSlice(nw.Object, section, "clusterNetwork")
	var cidrs []string
	for _, e := range entries {
		if m, ok := e.(map[string]any); ok {
			if c, _ := m["cidr"].(string); c != "" {
				cidrs = append(cidrs, c)
			}
		}
	}
	return cidrs
}

// Families tells which IP families a list of addresses or CIDRs covers.
// Entries that parse as neither are ignored.
func Families(addrs []string) (v4, v6 bool) { return ipfamily.Cover(addrs) }

// ovnSubnets is ipfamily.OVNSubnets (fuzzed here, where it was born).
var ovnSubnets = ipfamily.OVNSubnets
