package workloads

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var podsGVR = corev1.SchemeGroupVersion.WithResource("pods")

var uidSeq atomic.Int64

func newUID() types.UID { return types.UID(fmt.Sprintf("uid-%d", uidSeq.Add(1))) }

type podOpt func(*corev1.Pod)

// pod is a Running, Ready pod with the given pod IPs.
func pod(ns, name string, ips []string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: newUID(), Labels: map[string]string{}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	setIPs(p, ips)
	for _, o := range opts {
		o(p)
	}
	return p
}

var (
	v4   = []string{"10.128.0.10"}
	dual = []string{"10.128.0.11", "fd01::11"}
)

func setIPs(p *corev1.Pod, ips []string) {
	p.Status.PodIPs = nil
	p.Status.PodIP = ""
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(ips) > 0 {
		p.Status.PodIP = ips[0]
	}
}

func owned(kind, name string, uid types.UID) podOpt {
	return func(p *corev1.Pod) {
		t := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: &t}}
	}
}

func labelled(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func ns(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func pdb(namespace, name string, match map[string]string, current, desired, allowed int32) *policyv1.PodDisruptionBudget {
	min := intstr.FromInt32(desired)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &min, Selector: &metav1.LabelSelector{MatchLabels: match}},
		Status:     policyv1.PodDisruptionBudgetStatus{CurrentHealthy: current, DesiredHealthy: desired, DisruptionsAllowed: allowed},
	}
}

// world is a fake cluster that serves evictions: each accepted eviction
// deletes the pod and, like its controller, creates a replacement.
type world struct {
	t  *testing.T
	kc *fake.Clientset

	mu sync.Mutex
	// evicted lists the accepted evictions in order; attempts every
	// eviction request, refused or not.
	evicted  []string
	attempts map[string]int
	// refuse, when it returns an error, answers an eviction with it.
	refuse func(p *corev1.Pod) error
	// replace makes the controller's replacement of an evicted pod (nil:
	// none); it is created in the same step as the eviction.
	replace func(old *corev1.Pod) *corev1.Pod
	// atEviction runs (lock held) before each accepted eviction.
	atEviction func(p *corev1.Pod)
}

func newWorld(t *testing.T, objs ...runtime.Object) *world {
	w := &world{t: t, kc: fake.NewClientset(objs...), attempts: map[string]int{}}
	w.kc.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods", Kind: "Pod", Namespaced: true},
		{Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1", Namespaced: true},
	}}}
	w.kc.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		t.Errorf("a pod was deleted, not evicted: %s/%s", a.GetNamespace(), a.(k8stesting.DeleteAction).GetName())
		return true, nil, fmt.Errorf("no deletes in this test")
	})
	w.kc.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		// The fake's own lock is held: only the tracker is used here.
		obj, err := w.kc.Tracker().Get(podsGVR, ev.Namespace, ev.Name)
		if err != nil {
			return true, nil, err
		}
		old := obj.(*corev1.Pod)
		w.mu.Lock()
		defer w.mu.Unlock()
		ref := ev.Namespace + "/" + ev.Name
		w.attempts[ref]++
		if w.refuse != nil {
			if err := w.refuse(old); err != nil {
				return true, nil, err
			}
		}
		if w.atEviction != nil {
			w.atEviction(old)
		}
		w.evicted = append(w.evicted, ref)
		if err := w.kc.Tracker().Delete(podsGVR, ev.Namespace, ev.Name); err != nil {
			return true, nil, err
		}
		if w.replace != nil {
			if np := w.replace(old); np != nil {
				if err := w.kc.Tracker().Create(podsGVR, np, np.Namespace); err != nil {
					t.Errorf("creating the replacement of %s: %v", ref, err)
				}
			}
		}
		return true, nil, nil
	})
	return w
}

// dualStackReplacement is what a controller gives an evicted pod on a
// converted cluster: a StatefulSet the same name, anything else a new
// name; Ready, with both families.
func dualStackReplacement(old *corev1.Pod) *corev1.Pod {
	if metav1.GetControllerOf(old) == nil {
		return nil
	}
	np := old.DeepCopy()
	np.UID = newUID()
	np.ResourceVersion = ""
	if metav1.GetControllerOf(old).Kind != "StatefulSet" {
		np.Name = old.Name + "-new"
	}
	setIPs(np, dual)
	return np
}

func (w *world) evictions() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.evicted)
}

// signalWatches tells when a watch on pods opens; the tracker, unlike an
// apiserver, ignores resourceVersion, so changes made after are seen.
func (w *world) signalWatches() <-chan struct{} {
	opened := make(chan struct{}, 16)
	w.kc.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		wi, err := w.kc.Tracker().Watch(a.GetResource(), a.GetNamespace())
		opened <- struct{}{}
		return true, wi, err
	})
	return opened
}
