// Package pager reads Kubernetes lists page by page, with client-go's
// tools/pager; a leaf package, so that the journal can use it too.
package pager

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
	err := Each(ctx, opts, list, func(item *T) error {
		out = append(out, *item)
		return nil
	})
	return out, err
}

// Each is ListAll without keeping the items: fn sees each one in turn, so
// a caller that only counts or picks a few holds one page at a time, not
// the whole list. An error from fn stops the listing and is returned.
func Each[T any](ctx context.Context, opts metav1.ListOptions, list func(context.Context, metav1.ListOptions) (runtime.Object, error), fn func(*T) error) error {
	p := pager.New(pager.SimplePageFunc(func(o metav1.ListOptions) (runtime.Object, error) { return list(ctx, o) }))
	p.PageSize = PageSize
	return p.EachListItem(ctx, opts, func(obj runtime.Object) error {
		item, ok := any(obj).(*T)
		if !ok {
			return fmt.Errorf("listing: got a %T, want a %T", obj, item)
		}
		return fn(item)
	})
}
