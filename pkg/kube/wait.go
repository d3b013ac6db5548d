package kube

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// WaitAll watches the objects lw lists, by client-go's UntilWithSync (one
// list, then a watch that resumes after a dropped connection), and calls
// done with all of them, keyed namespace/name, after the list and after
// each change, until it says true, fails, or timeout passes.
func WaitAll(ctx context.Context, lw cache.ListerWatcher, objType runtime.Object, timeout time.Duration, done func(map[string]runtime.Object) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	objs := map[string]runtime.Object{}
	key := func(o runtime.Object) string {
		m, err := meta.Accessor(o)
		if err != nil {
			return ""
		}
		return m.GetNamespace() + "/" + m.GetName()
	}
	_, err := watchtools.UntilWithSync(ctx, lw, objType, func(store cache.Store) (bool, error) {
		for _, o := range store.List() {
			if ro, ok := o.(runtime.Object); ok {
				objs[key(ro)] = ro
			}
		}
		return done(objs)
	}, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Added, watch.Modified:
			objs[key(ev.Object)] = ev.Object
		case watch.Deleted:
			delete(objs, key(ev.Object))
		default:
			return false, nil
		}
		return done(objs)
	})
	return err
}

// NodesLW lists and watches the nodes, page by page.
func NodesLW(c kubernetes.Interface) cache.ListerWatcher {
	return &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			o.Limit = PageSize
			return c.CoreV1().Nodes().List(context.Background(), o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			return c.CoreV1().Nodes().Watch(context.Background(), o)
		},
	}
}

// Nodes is the nodes among objs.
func Nodes(objs map[string]runtime.Object) []*corev1.Node {
	out := make([]*corev1.Node, 0, len(objs))
	for _, o := range objs {
		if n, ok := o.(*corev1.Node); ok {
			out = append(out, n)
		}
	}
	return out
}
