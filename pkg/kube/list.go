package kube

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// PageSize is the chunk size of every list: large clusters are read in pages
// (limit/continue), never in one giant response and never one GET per object.
const PageSize = pager.PageSize

// ListNodes returns all nodes, read page by page.
func ListNodes(ctx context.Context, c kubernetes.Interface, opts metav1.ListOptions) ([]corev1.Node, error) {
	return pager.ListAll[corev1.Node](ctx, opts, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return c.CoreV1().Nodes().List(ctx, o)
	})
}

// ListUnstructured lists a resource (cluster-scoped when namespace is ""),
// page by page.
func ListUnstructured(ctx context.Context, c dynamic.Interface, gvr schema.GroupVersionResource, namespace string, opts metav1.ListOptions) ([]unstructured.Unstructured, error) {
	return pager.ListAll[unstructured.Unstructured](ctx, opts, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return c.Resource(gvr).Namespace(namespace).List(ctx, o)
	})
}
