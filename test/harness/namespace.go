package harness

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// namespacedContent is what the namespace finalizer deletes: the kinds the
// test scenarios create (the real controller discovers every namespaced kind).
var namespacedContent = []schema.GroupVersionResource{
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"},
	{Group: "apps", Version: "v1", Resource: "controllerrevisions"},
	{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "serviceaccounts"},
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "secrets"},
	{Group: "networking.istio.io", Version: "v1", Resource: "gateways"},
	{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
}

// NamespaceFinalizer does what the namespace controller does for a
// namespace being deleted: delete its content, wait for its pods to be gone,
// then remove the "kubernetes" finalizer so the namespace disappears.
type NamespaceFinalizer struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	stop    context.CancelFunc
	done    chan struct{}
}

// Start runs until Stop.
func (f *NamespaceFinalizer) Start(ctx context.Context) {
	ctx, f.stop = context.WithCancel(ctx)
	f.done = make(chan struct{})
	go func() {
		defer close(f.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			f.pass(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends it.
func (f *NamespaceFinalizer) Stop() {
	if f.stop != nil {
		f.stop()
		<-f.done
	}
}

func (f *NamespaceFinalizer) pass(ctx context.Context) {
	list, err := f.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range list.Items {
		ns := &list.Items[i]
		if ns.DeletionTimestamp == nil {
			continue
		}
		for _, gvr := range namespacedContent {
			err := f.Dynamic.Resource(gvr).Namespace(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				continue
			}
		}
		_ = f.Kube.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}, metav1.ListOptions{})
		pods, err := f.Kube.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil || len(pods.Items) > 0 {
			continue // the kubelet (PodSimulator) has not confirmed yet
		}
		ns.Spec.Finalizers = nil
		_, _ = f.Kube.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
	}
}
