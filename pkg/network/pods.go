package network

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// NamespacePods counts pods of one namespace that have only IPv4 addresses.
type NamespacePods struct {
	Namespace string `json:"namespace"`
	Pods      int    `json:"pods"`
}

// IPv4OnlyPods finds running pods on the pod network whose addresses are all
// IPv4: they keep them until re-created. Host-network pods use the node's
// addresses and are left out. Pods are read page by page.
func IPv4OnlyPods(ctx context.Context, kc kubernetes.Interface) ([]NamespacePods, error) {
	counts := map[string]int{}
	pods, err := pager.ListAll[corev1.Pod](ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return kc.CoreV1().Pods("").List(ctx, o)
	})
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		if p.Spec.HostNetwork || !ipv4Only(p) {
			continue
		}
		counts[p.Namespace]++
	}
	out := make([]NamespacePods, 0, len(counts))
	for ns, n := range counts {
		out = append(out, NamespacePods{Namespace: ns, Pods: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out, nil
}

func ipv4Only(p corev1.Pod) bool {
	ips := p.Status.PodIPs
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: p.Status.PodIP}}
	}
	if len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if Family(ip.IP) != "IPv4" {
			return false
		}
	}
	return true
}
