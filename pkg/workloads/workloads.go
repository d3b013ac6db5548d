package workloads

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
)

// Groups, in the order their pods are re-created: name resolution first
// (every other pod looks its peers up through it), then the mesh's control
// plane (new proxies fetch their configuration from it), then the ingress
// gateways, then everything else.
const (
	GroupDNS      = "cluster-dns"
	GroupIstiod   = "istiod"
	GroupGateway  = "gateway"
	GroupWorkload = "workload"
)

// Labels and annotations this package reads.
const (
	// mirrorAnnotation marks the API's copy of a static pod; the kubelet
	// owns the pod, and an eviction does not restart it
	// (k8s.io/kubernetes/pkg/kubelet/types: ConfigMirrorAnnotationKey).
	mirrorAnnotation = corev1.MirrorPodAnnotationKey
	// openshiftDNSLabel is on the pods of the DNS operator's DaemonSet
	// openshift-dns/dns-default.
	openshiftDNSLabel = "dns.operator.openshift.io/daemonset-dns"
	// istioManagedGateway marks what istiod deploys for a Gateway API Gateway.
	istioManagedGateway = "gateway.istio.io/managed"
)

// groupOf says which group a pod is re-created with.
func groupOf(p *corev1.Pod) string {
	l := p.Labels
	switch {
	case p.Namespace == "openshift-dns" && (l[openshiftDNSLabel] == "default" || isOwnedBy(p, "DaemonSet", "dns-default")),
		p.Namespace == "kube-system" && l["k8s-app"] == "kube-dns":
		return GroupDNS
	case l["app"] == "istiod":
		return GroupIstiod
	case l["istio"] == "ingressgateway", l[istioManagedGateway] != "", l["app"] == "istio-ingressgateway":
		return GroupGateway
	}
	return GroupWorkload
}

// rankOf is a group's place in the order.
func rankOf(group string) int {
	switch group {
	case GroupDNS:
		return 0
	case GroupIstiod:
		return 1
	case GroupGateway:
		return 2
	default:
		return 3
	}
}

func isOwnedBy(p *corev1.Pod, kind, name string) bool {
	c := metav1.GetControllerOf(p)
	return c != nil && c.Kind == kind && c.Name == name
}

// Reasons a pod is left alone; part of the plan's data.
const (
	ReasonHostNetwork = "hostNetwork: it has the node's addresses, which the nodes phase gives IPv6"
	ReasonMirror      = "static pod (mirror): the kubelet runs it from a file on the node; an eviction does not restart it"
	ReasonTerminating = "already terminating"
	ReasonCompleted   = "completed: it has no running containers to move"
	ReasonNoIPYet     = "pending without a pod IP: it gets every family of the cluster network when it starts"
	// ReasonNoController is kubectl drain's: a pod no controller re-creates
	// is gone for good once evicted.
	ReasonNoController = "no controller: pass --force to delete it; it will not come back"
	ReasonNeedsIPv6    = "no IPv6 pod IP"
	ReasonForced       = "no IPv6 pod IP; no controller, evicted because of --force: it will not come back"
)

// hasIPv6 says whether a pod has an IPv6 pod IP. status.podIPs is the
// list (status.podIP is its first entry); a pod written before podIPs
// existed has only podIP.
func hasIPv6(p *corev1.Pod) bool {
	_, v6 := ipfamily.Cover(podIPs(p))
	return v6
}

// podIPs is a pod's status.podIPs as strings.
func podIPs(p *corev1.Pod) []string {
	out := make([]string, 0, len(p.Status.PodIPs))
	for _, ip := range p.Status.PodIPs {
		out = append(out, ip.IP)
	}
	if len(out) == 0 && p.Status.PodIP != "" {
		out = append(out, p.Status.PodIP)
	}
	return out
}

// dualStack says whether a pod has a pod IP of each family.
func dualStack(p *corev1.Pod) bool {
	v4, v6 := ipfamily.Cover(podIPs(p))
	return v4 && v6
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// needsIPv6 says whether a pod is one the cluster network gave no IPv6
// address and that re-creating would fix: on the pod network, running (or
// started far enough to have an IP), not on its way out, and without an
// IPv6 pod IP. The second answer is the reason it is not, when it is not.
func needsIPv6(p *corev1.Pod) (bool, string) {
	switch {
	case p.Spec.HostNetwork:
		return false, ReasonHostNetwork
	case p.DeletionTimestamp != nil:
		return false, ReasonTerminating
	case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		return false, ReasonCompleted
	case p.Status.Phase == corev1.PodPending && len(podIPs(p)) == 0:
		return false, ReasonNoIPYet
	case p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending:
		// Unknown: the node is not reporting; an eviction would wait on it.
		return false, "phase " + string(p.Status.Phase) + ": its node is not reporting it"
	case hasIPv6(p):
		return false, "" // already has IPv6: counted, not listed
	}
	return true, ReasonNeedsIPv6
}

// Judge says whether Apply evicts p, and why (or why not). A pod that
// already has IPv6 gives (false, ""): plans count those and do not list
// them.
func Judge(p *corev1.Pod, force bool) (evict bool, reason string) {
	if _, ok := p.Annotations[mirrorAnnotation]; ok {
		return false, ReasonMirror
	}
	need, why := needsIPv6(p)
	if !need {
		return false, why
	}
	if metav1.GetControllerOf(p) == nil {
		if !force {
			return false, ReasonNoController
		}
		return true, ReasonForced
	}
	return true, why
}
