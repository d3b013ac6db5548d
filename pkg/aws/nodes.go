package aws

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// NodeInstances maps the nodes' EC2 instance IDs to whether they are control-plane nodes.
func NodeInstances(nodes []corev1.Node) map[string]bool {
	out := map[string]bool{}
	for _, n := range nodes {
		_, id, ok := platform.ParseAWSProviderID(n.Spec.ProviderID)
		if !ok {
			continue
		}
		_, cp := n.Labels["node-role.kubernetes.io/control-plane"]
		_, master := n.Labels["node-role.kubernetes.io/master"]
		out[id] = cp || master
	}
	return out
}

// NodeNames maps the nodes' EC2 instance IDs to the Nodes' names.
func NodeNames(nodes []corev1.Node) map[string]string {
	out := map[string]string{}
	for _, n := range nodes {
		if _, id, ok := platform.ParseAWSProviderID(n.Spec.ProviderID); ok {
			out[id] = n.Name
		}
	}
	return out
}
