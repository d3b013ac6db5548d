package convert

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// Facts are what the phases read about the cluster, gathered once per run
// and shared: the nodes, the platform, the mesh and the AWS account. A
// phase that changes one of them says so (Account.Invalidate, Refresh).
type Facts struct {
	Clients  *kube.Clients
	Nodes    []corev1.Node
	Platform platform.Info
	// Account is the cluster's AWS account and network, when resolved.
	Account *Account

	mesh *istio.Facts
	// planned are the phases the engine planned so far in this plan, in
	// run order, for a phase whose need depends on an earlier one's plan.
	planned map[string]PhasePlan
}

// Planned is the plan of an earlier phase of the plan being made; false
// when it was not planned (not selected, or a later phase).
func (f *Facts) Planned(name string) (PhasePlan, bool) {
	p, ok := f.planned[name]
	return p, ok && p.Action != ActionSkipped
}

// Gather lists the nodes (page by page) and detects the platform from them.
func Gather(ctx context.Context, kc *kube.Clients) (*Facts, error) {
	nodes, err := kube.ListNodes(ctx, kc.Kube, metav1.ListOptions{})
	if err != nil {
		return nil, kube.Explain("listing nodes", err)
	}
	info, err := platform.Detect(ctx, kc.Kube, kc.Dynamic, nodes)
	if err != nil {
		return nil, kube.Explain("detecting the platform", err)
	}
	return &Facts{Clients: kc, Nodes: nodes, Platform: info}, nil
}

// Mesh is the Istio installation, read on first use.
func (f *Facts) Mesh(ctx context.Context) (*istio.Facts, error) {
	if f.mesh != nil {
		return f.mesh, nil
	}
	m, err := istio.Inspect(ctx, f.Clients.Kube, f.Clients.Dynamic)
	if err != nil {
		return nil, err
	}
	f.mesh = m
	return m, nil
}

// RefreshNodes lists the nodes again (after a phase changed them).
func (f *Facts) RefreshNodes(ctx context.Context) error {
	nodes, err := kube.ListNodes(ctx, f.Clients.Kube, metav1.ListOptions{})
	if err != nil {
		return kube.Explain("listing nodes", err)
	}
	f.Nodes = nodes
	return nil
}

// ClusterID is the identity of the cluster: the UID of kube-system, stable
// for the life of a cluster. "" when the user may not read it (the drift
// check still guards a saved plan then).
func ClusterID(ctx context.Context, kc kubernetes.Interface) (string, error) {
	ns, err := kc.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if apierrors.IsForbidden(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the cluster's identity (namespace kube-system): %w", err)
	}
	return string(ns.UID), nil
}
