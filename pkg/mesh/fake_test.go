package mesh

import (
	"encoding/json"
	"strconv"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	fakedynamic "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// fakeAPI is client-go's fakes made to behave as the apiserver does where
// this package depends on it (the trackers alone ignore it): every write
// gets a new resourceVersion; a patch or update carrying another
// resourceVersion than the stored one is refused with a Conflict; a
// Deployment's or Istio's spec change moves metadata.generation; a Service
// made dual-stack gets a cluster IP of the second family. The Deployment
// controller and the Sail operator are the test's (see controller).
type fakeAPI struct {
	*fake.Clientset
	dyn *fakedynamic.FakeDynamicClient

	mu     sync.Mutex
	rv     int
	writes []string // "resource ns/name" of every accepted write but the journal's
	// beforeWrite, when set, runs once before a write of resource ns/name
	// is judged (someone else's change landing in between); it must use
	// the trackers (the fakes hold their lock while reacting).
	beforeWrite func(resource, ns, name string)
	opened      chan string // resources whose watch opened
}

var deploymentsGVR = appsv1.SchemeGroupVersion.WithResource("deployments")

func newFakeAPI(t *testing.T, objs ...runtime.Object) *fakeAPI {
	t.Helper()
	f := &fakeAPI{Clientset: fake.NewClientset(), rv: 100, opened: make(chan string, 64)}
	var dynObjs []runtime.Object
	for _, o := range objs {
		m, err := meta.Accessor(o)
		if err != nil {
			t.Fatal(err)
		}
		m.SetResourceVersion(f.bump())
		if m.GetUID() == "" {
			m.SetUID(types.UID("uid-" + m.GetNamespace() + "-" + m.GetName()))
		}
		if _, ok := o.(*unstructured.Unstructured); ok {
			dynObjs = append(dynObjs, o)
			continue
		}
		if err := f.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	f.dyn = fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{istio.SailIstioGVR: "IstioList", GatewayGVR: "GatewayList", GatewayClassGVR: "GatewayClassList"}, dynObjs...)

	for _, res := range []string{"configmaps", "services", "deployments"} {
		f.PrependReactor("*", res, f.writeReactor(f.Tracker()))
	}
	f.dyn.PrependReactor("*", "istios", f.writeReactor(f.dyn.Tracker()))
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

func (f *fakeAPI) writeReactor(tracker k8stesting.ObjectTracker) k8stesting.ReactionFunc {
	react := k8stesting.ObjectReaction(tracker)
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		var name, want string
		if a.GetVerb() != "patch" && a.GetVerb() != "update" {
			return false, nil, nil
		}
		switch a := a.(type) {
		case k8stesting.PatchAction:
			name = a.GetName()
			var body struct {
				Metadata struct {
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
			}
			_ = json.Unmarshal(a.GetPatch(), &body)
			want = body.Metadata.ResourceVersion
		case k8stesting.UpdateAction:
			m, _ := meta.Accessor(a.GetObject())
			name, want = m.GetName(), m.GetResourceVersion()
		default:
			return false, nil, nil
		}
		gvr, ns := a.GetResource(), a.GetNamespace()
		if f.beforeWrite != nil {
			hook := f.beforeWrite
			f.beforeWrite = nil
			hook(gvr.Resource, ns, name)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		old, err := tracker.Get(gvr, ns, name)
		if err != nil {
			return true, nil, err
		}
		oldMeta, _ := meta.Accessor(old)
		if want != "" && want != oldMeta.GetResourceVersion() {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), name,
				errString("the object has been modified; please apply your changes to the latest version and try again"))
		}
		_, obj, err := react(a)
		if err != nil {
			return true, nil, err
		}
		obj = obj.DeepCopyObject()
		m, _ := meta.Accessor(obj)
		m.SetResourceVersion(f.bump())
		m.SetGeneration(oldMeta.GetGeneration())
		switch o := obj.(type) {
		case *appsv1.Deployment:
			if !equality.Semantic.DeepEqual(old.(*appsv1.Deployment).Spec, o.Spec) {
				o.Generation++
			}
		case *corev1.Service:
			if len(o.Spec.IPFamilies) == 2 && len(o.Spec.ClusterIPs) == 1 {
				o.Spec.ClusterIPs = append(o.Spec.ClusterIPs, "fd02::a")
			}
		case *unstructured.Unstructured:
			if !equality.Semantic.DeepEqual(old.(*unstructured.Unstructured).Object["spec"], o.Object["spec"]) {
				o.SetGeneration(o.GetGeneration() + 1)
			}
		}
		if err := tracker.Update(gvr, obj, ns); err != nil {
			return true, nil, err
		}
		if !(gvr.Resource == "configmaps" && ns == journal.DefaultNamespace) {
			f.writes = append(f.writes, gvr.Resource+" "+ns+"/"+name)
		}
		return true, obj, nil
	}
}

// set changes a stored object as another client would (a new
// resourceVersion; a spec change moves a Deployment's generation).
func (f *fakeAPI) set(t *testing.T, gvr schema.GroupVersionResource, ns, name string, change func(runtime.Object)) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	tracker := f.Tracker()
	if gvr == istio.SailIstioGVR {
		tracker = f.dyn.Tracker()
	}
	o, err := tracker.Get(gvr, ns, name)
	if err != nil {
		t.Error(err)
		return
	}
	o = o.DeepCopyObject()
	change(o)
	m, _ := meta.Accessor(o)
	m.SetResourceVersion(f.bump())
	if err := tracker.Update(gvr, o, ns); err != nil {
		t.Error(err)
	}
}

func (f *fakeAPI) writeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.writes)
}

// controller plays the Deployment controller (and, with sail, the Sail
// operator): once the wait watches istiod's Deployment, it rolls it out,
// first giving it the env when sail (as the operator does from the Istio
// resource). It returns when stop is closed.
func (f *fakeAPI) controller(t *testing.T, sail bool, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case res := <-f.opened:
			if res != "deployments" {
				continue
			}
		}
		f.set(t, deploymentsGVR, "istio-system", "istiod", func(o runtime.Object) {
			d := o.(*appsv1.Deployment)
			if sail && findEnv(d.Spec.Template.Spec.Containers[0].Env) == nil {
				d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: istio.DualStackEnv, Value: "true"})
				d.Generation++
			}
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}
		})
	}
}

// Fixtures: istiod 1.24.2 in istio-system, single-stack.

func istiodDeployment(labels map[string]string, annotations map[string]string, env ...corev1.EnvVar) *appsv1.Deployment {
	l := map[string]string{"app": "istiod", "istio": "pilot", "istio.io/rev": "default"}
	for k, v := range labels {
		l[k] = v
	}
	one := int32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system", Labels: l, Annotations: annotations, Generation: 1},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "discovery", Image: "docker.io/istio/pilot:1.24.2",
			Env: append([]corev1.EnvVar{{Name: "PILOT_ENABLE_ANALYSIS", Value: "false"}}, env...),
		}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1},
	}
}

var istioctlLabels = map[string]string{"operator.istio.io/component": "Pilot", "install.operator.istio.io/owning-resource": "installed-state"}

func meshConfigMap(mesh string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
		Data: map[string]string{MeshKey: mesh, "meshNetworks": "networks: {}"}}
}

func istiodService(dual bool) *corev1.Service {
	single := corev1.IPFamilyPolicySingleStack
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system", Labels: map[string]string{"app": "istiod"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"},
			IPFamilyPolicy: &single, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}}}
	if dual {
		prefer := corev1.IPFamilyPolicyPreferDualStack
		svc.Spec.IPFamilyPolicy = &prefer
		svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, corev1.IPv6Protocol)
		svc.Spec.ClusterIPs = append(svc.Spec.ClusterIPs, "fd02::20")
	}
	return svc
}

// sailIstio is a Sail Istio resource installing into istio-system.
func sailIstio(values map[string]any) *unstructured.Unstructured {
	spec := map[string]any{"namespace": "istio-system", "version": "v1.24.2"}
	if values != nil {
		spec["values"] = values
	}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "sailoperator.io/v1", "kind": "Istio",
		"metadata": map[string]any{"name": "default", "generation": int64(1)}, "spec": spec}}
	return u
}
