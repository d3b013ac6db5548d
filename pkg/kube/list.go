package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/pager"
)

// PageSize is the chunk size of every list: large clusters are read in pages
// (limit/continue), never in one giant response and never one GET per object.
const PageSize = 500

// ListAll lists with client-go's pager: PageSize items a page (limit and
// continue), falling back to one full list if the continue token expires;
// list is the typed or dynamic client's List. T is the item type
// (corev1.Node for a NodeList).
func ListAll[T any](ctx context.Context, opts metav1.ListOptions, list func(context.Context, metav1.ListOptions) (runtime.Object, error)) ([]T, error) {
	var out []T
	p := pager.New(pager.SimplePageFunc(func(o metav1.ListOptions) (runtime.Object, error) { return list(ctx, o) }))
	p.PageSize = PageSize
	err := p.EachListItem(ctx, opts, func(obj runtime.Object) error {
		item, ok := any(obj).(*T)
		if !ok {
			return fmt.Errorf("listing: got a %T, want a %T", obj, item)
		}
		out = append(out, *item)
		return nil
	})
	return out, err
}

// ListNodes returns all nodes, read page by page.
func ListNodes(ctx context.Context, c kubernetes.Interface, opts metav1.ListOptions) ([]corev1.Node, error) {
	return ListAll[corev1.Node](ctx, opts, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return c.CoreV1().Nodes().List(ctx, o)
	})
}

// ListUnstructured lists a resource (cluster-scoped when namespace is ""),
// page by page.
func ListUnstructured(ctx context.Context, c dynamic.Interface, gvr schema.GroupVersionResource, namespace string, opts metav1.ListOptions) ([]unstructured.Unstructured, error) {
	return ListAll[unstructured.Unstructured](ctx, opts, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return c.Resource(gvr).Namespace(namespace).List(ctx, o)
	})
}
