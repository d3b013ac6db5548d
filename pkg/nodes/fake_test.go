package nodes

import (
	"strconv"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// fakeAPI is a client-go fake whose ConfigMaps behave as the apiserver's
// do for this package: every write gets a new resourceVersion, and an
// update carrying another resourceVersion than the stored one is refused
// with a Conflict (the fake tracker alone ignores resourceVersions).
type fakeAPI struct {
	*fake.Clientset
	mu      sync.Mutex
	rv      int
	updates []string // namespace/name of every ConfigMap update accepted
	// beforeUpdate, when set, runs before an update of a ConfigMap is
	// judged (to make someone else's change land in between).
	beforeUpdate func(ns, name string)
	opened       chan string
}

func newFakeAPI(t *testing.T, objs ...runtime.Object) *fakeAPI {
	t.Helper()
	f := &fakeAPI{Clientset: fake.NewClientset(), rv: 100, opened: make(chan string, 16)}
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			cm.ResourceVersion = f.bump()
			if cm.UID == "" {
				cm.UID = types.UID("uid-" + cm.Namespace + "-" + cm.Name)
			}
		}
		if err := f.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	cmGVR := corev1.SchemeGroupVersion.WithResource("configmaps")
	f.PrependReactor("create", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		cm := a.(k8stesting.CreateAction).GetObject().(*corev1.ConfigMap).DeepCopy()
		f.mu.Lock()
		cm.ResourceVersion = f.bump()
		f.mu.Unlock()
		if err := f.Tracker().Create(cmGVR, cm, cm.Namespace); err != nil {
			return true, nil, err
		}
		return true, cm, nil
	})
	f.PrependReactor("update", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		cm := a.(k8stesting.UpdateAction).GetObject().(*corev1.ConfigMap).DeepCopy()
		if f.beforeUpdate != nil {
			hook := f.beforeUpdate
			f.beforeUpdate = nil
			hook(cm.Namespace, cm.Name)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		old, err := f.Tracker().Get(cmGVR, cm.Namespace, cm.Name)
		if err != nil {
			return true, nil, err
		}
		if cur := old.(*corev1.ConfigMap).ResourceVersion; cm.ResourceVersion != cur {
			return true, nil, apierrors.NewConflict(corev1.Resource("configmaps"), cm.Name,
				errString("the object has been modified; please apply your changes to the latest version and try again"))
		}
		cm.ResourceVersion = f.bump()
		if err := f.Tracker().Update(cmGVR, cm, cm.Namespace); err != nil {
			return true, nil, err
		}
		f.updates = append(f.updates, cm.Namespace+"/"+cm.Name)
		return true, cm, nil
	})
	f.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := f.Tracker().Watch(a.GetResource(), a.GetNamespace())
		f.opened <- a.GetResource().Resource
		return true, w, err
	})
	return f
}

type errString string

func (e errString) Error() string { return string(e) }

func (f *fakeAPI) bump() string { f.rv++; return strconv.Itoa(f.rv) }

// configUpdates counts the accepted updates of ConfigMaps other than the
// journal's.
func (f *fakeAPI) configUpdates() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, u := range f.updates {
		if u != journal.DefaultNamespace+"/"+journal.DefaultName {
			n++
		}
	}
	return n
}

func mkCM(ns, name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
}

func ocpCM(text string) *corev1.ConfigMap {
	return mkCM(OpenShiftNamespace, OpenShiftName, map[string]string{OpenShiftKey: text})
}

// mkNode is a node as cloud-provider-aws registers one: aws:// provider
// ID, the given InternalIPs, a hostname.
func mkNode(name string, ips ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{}},
		Spec: corev1.NodeSpec{ProviderID: "aws:///us-east-1a/i-0" + name}}
	for _, ip := range ips {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name + ".ec2.internal"})
	return n
}

func annotated(n *corev1.Node, nodeIP string) *corev1.Node {
	n.Annotations[ProvidedNodeIPAnnotation] = nodeIP
	return n
}

// ccmDaemonSet is upstream's aws-cloud-controller-manager as the
// cluster-api-provider-aws docs deploy it: --cloud-config on a file that a
// ConfigMap volume provides through subPath.
func ccmDaemonSet(volume corev1.Volume, mount corev1.VolumeMount, cloudConfig string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-cloud-controller-manager"},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "aws-cloud-controller-manager",
				Image:        "registry.k8s.io/provider-aws/cloud-controller-manager:v1.35.0",
				Args:         []string{"--v=2", "--cloud-provider=aws", "--use-service-account-credentials=true", "--cloud-config=" + cloudConfig},
				VolumeMounts: []corev1.VolumeMount{mount}}},
			Volumes: []corev1.Volume{volume},
		}}},
	}
}

func cmVolume(name, cm string, items ...corev1.KeyToPath) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: cm}, Items: items}}}
}

// someoneEdits changes a ConfigMap as another writer would (new
// resourceVersion), straight in the tracker: safe inside a reactor, where
// the fake's own lock is held.
func (f *fakeAPI) someoneEdits(t *testing.T, ns, name string, edit func(*corev1.ConfigMap)) {
	t.Helper()
	gvr := corev1.SchemeGroupVersion.WithResource("configmaps")
	o, err := f.Tracker().Get(gvr, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	cm := o.(*corev1.ConfigMap).DeepCopy()
	edit(cm)
	f.mu.Lock()
	cm.ResourceVersion = f.bump()
	f.mu.Unlock()
	if err := f.Tracker().Update(gvr, cm, ns); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeAPI) configMap(t *testing.T, ns, name string) *corev1.ConfigMap {
	t.Helper()
	o, err := f.Tracker().Get(corev1.SchemeGroupVersion.WithResource("configmaps"), ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*corev1.ConfigMap)
}
