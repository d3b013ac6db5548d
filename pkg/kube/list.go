package kube

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// PageSize is the chunk size of every list: large clusters are read in pages
// (limit/continue), never in one giant response and never one GET per object.
const PageSize = 500

// ListNodes returns all nodes, read page by page.
func ListNodes(ctx context.Context, c kubernetes.Interface, opts metav1.ListOptions) ([]corev1.Node, error) {
	var nodes []corev1.Node
	opts.Limit = PageSize
	for {
		list, err := c.CoreV1().Nodes().List(ctx, opts)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, list.Items...)
		if list.Continue == "" {
			return nodes, nil
		}
		opts.Continue = list.Continue
	}
}

// ListUnstructured lists a resource (cluster-scoped when namespace is ""),
// page by page.
func ListUnstructured(ctx context.Context, c dynamic.Interface, gvr schema.GroupVersionResource, namespace string, opts metav1.ListOptions) ([]unstructured.Unstructured, error) {
	var items []unstructured.Unstructured
	opts.Limit = PageSize
	for {
		list, err := c.Resource(gvr).Namespace(namespace).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		items = append(items, list.Items...)
		if list.GetContinue() == "" {
			return items, nil
		}
		opts.Continue = list.GetContinue()
	}
}
