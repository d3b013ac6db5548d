package workloads

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// Census counts the pods that lack an IPv6 pod IP, with no selection: what
// status reports.
type Census struct {
	// IPv4Only counts the pods on the pod network, running (or pending
	// with an IP) and not terminating, that have no IPv6 pod IP; static
	// pods are left out, as no eviction re-creates them.
	IPv4Only int `json:"ipv4Only"`
	// Uncontrolled counts those of them that no controller manages: the
	// workloads command leaves them unless --force.
	Uncontrolled int `json:"uncontrolled"`
	// Namespaces is IPv4Only per namespace.
	Namespaces map[string]int `json:"namespaces"`
}

// Count reads every pod in one paginated list across namespaces, keeping
// only the counts.
func Count(ctx context.Context, kc kubernetes.Interface) (Census, error) {
	c := Census{Namespaces: map[string]int{}}
	err := pager.Each(ctx, metav1.ListOptions{}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return kc.CoreV1().Pods(metav1.NamespaceAll).List(ctx, o)
	}, func(p *corev1.Pod) error {
		if _, mirror := p.Annotations[mirrorAnnotation]; mirror {
			return nil
		}
		if need, _ := needsIPv6(p); !need {
			return nil
		}
		c.IPv4Only++
		c.Namespaces[p.Namespace]++
		if metav1.GetControllerOf(p) == nil {
			c.Uncontrolled++
		}
		return nil
	})
	if err != nil {
		return Census{}, kube.Explain("listing pods in all namespaces", err)
	}
	return c, nil
}
