package aws

import (
	"context"
	"fmt"
	"time"

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

// NodeOfInstance finds the Node whose providerID names the EC2 instance
// (aws:///<zone>/<instance-id>) and says whether it is Ready.
func NodeOfInstance(nodes []corev1.Node, instanceID string) (name string, ready, found bool) {
	for _, n := range nodes {
		if _, id, ok := platform.ParseAWSProviderID(n.Spec.ProviderID); !ok || id != instanceID {
			continue
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return n.Name, c.Status == corev1.ConditionTrue, true
			}
		}
		return n.Name, false, true
	}
	return "", false, false
}

// WaitNodeReady polls list (the cluster's Nodes) every interval until the
// instance's Node is Ready, at most timeout. An instance without a Node
// (not a node of this cluster) is not waited for.
func WaitNodeReady(list func(context.Context) ([]corev1.Node, error), interval time.Duration) NodeReadyFunc {
	return func(ctx context.Context, instanceID string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		for {
			nodes, err := list(ctx)
			if err == nil {
				name, ready, found := NodeOfInstance(nodes, instanceID)
				if !found || ready {
					return nil
				}
				err = fmt.Errorf("node %s is not Ready", name)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waited %s for the Node of %s: %w", timeout, instanceID, err)
			case <-time.After(interval):
			}
		}
	}
}
