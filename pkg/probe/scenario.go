package probe

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"
)

// Labels on everything validate creates: how it recognises its own objects
// (and refuses to touch anything else).
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "kubectl-dualstack"
	LabelRun       = "dualstack.kubectl.io/validate-run"
)

// Names of the scenario's objects.
const (
	HTTPBinName    = "httpbin"
	HTTPBinPort    = 8000
	SleepName      = "sleep"
	ServiceAccount = "dualstack-validate"
	GatewayName    = "httpbin-gateway"
)

var (
	istioGatewayGVR   = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}
	virtualServiceGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	httpRouteGVR      = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
)

// Scenario is what validate deploys: a namespace (sidecar injection on
// unless NoMesh), httpbin and sleep with dual-stack Services, and the
// ingress route for Host.
type Scenario struct {
	Namespace      string
	NamespaceReuse bool
	RunID          string
	NoMesh         bool
	Revision       string // istio.io/rev; "" means istio-injection=enabled
	GatewayAPI     bool
	Gateway        string // Gateway API parent "namespace/name"
	IngressLabel   string // the ingress gateway pods' istio= label value
	Host           string
	CurlImage      string
	HTTPBinImage   string
}

// created is one object validate made, to delete it when done.
type created struct {
	kind, name string
	gvr        schema.GroupVersionResource
	core       bool // a typed core/apps object, deleted through kube
	// uncertain: its create failed without a refusal, so it may or may not
	// exist; deleted only if it carries this run's label.
	uncertain bool
}

// Deployment holds what the scenario created and observed.
type Deployment struct {
	Scenario
	kube    kubernetes.Interface
	dyn     dynamic.Interface
	ownNS   bool
	objects []created

	Services map[string]*corev1.Service
	// ServiceErrors records why a RequireDualStack Service had to be made
	// with PreferDualStack (a single-stack cluster refuses RequireDualStack).
	ServiceErrors map[string]string
	Pods          map[string]*corev1.Pod
}

func (s Scenario) labels(app string) map[string]string {
	l := map[string]string{LabelManagedBy: ManagedBy, LabelRun: s.RunID}
	if app != "" {
		l["app"] = app
	}
	return l
}

// ErrNamespaceExists is returned when the namespace is there already and
// reuse was not asked for.
type ErrNamespaceExists struct {
	Namespace string
	Ours      bool
}

func (e *ErrNamespaceExists) Error() string {
	if e.Ours {
		return fmt.Sprintf("namespace %q is left over from an earlier validate run (--keep?): delete it with `kubectl delete namespace %s`, or pass --namespace-reuse", e.Namespace, e.Namespace)
	}
	return fmt.Sprintf("namespace %q exists and was not created by validate: refusing to use it; choose another with --namespace, or pass --namespace-reuse to add (and later remove) only validate's objects there", e.Namespace)
}

// Deploy creates the scenario. Whatever it created is recorded before the
// next step, so Cleanup removes it even when Deploy fails half way.
func Deploy(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, s Scenario, d *Deployment) error {
	*d = Deployment{Scenario: s, kube: kc, dyn: dc, Services: map[string]*corev1.Service{}, ServiceErrors: map[string]string{}, Pods: map[string]*corev1.Pod{}}
	if err := d.namespace(ctx); err != nil {
		return err
	}
	ns := s.Namespace
	sa := &corev1.ServiceAccount{
		ObjectMeta:                   metav1.ObjectMeta{Name: ServiceAccount, Labels: s.labels("")},
		AutomountServiceAccountToken: ptr.To(false),
	}
	if _, err := kc.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		d.recordIfLanded(err, "serviceaccount", ServiceAccount)
		return fmt.Errorf("creating service account %s/%s: %w", ns, ServiceAccount, err)
	}
	d.record("serviceaccount", ServiceAccount)

	for _, svc := range []*corev1.Service{s.service(HTTPBinName, HTTPBinPort, 8080), s.service(SleepName, 80, 80)} {
		got, err := kc.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		if apierrors.IsInvalid(err) && strings.Contains(err.Error(), "RequireDualStack") {
			// A single-stack cluster: keep going so the IPv4 half is
			// proven, and say so in the IPv6 service check.
			d.ServiceErrors[svc.Name] = err.Error()
			svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
			got, err = kc.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		}
		if err != nil {
			d.recordIfLanded(err, "service", svc.Name)
			return fmt.Errorf("creating service %s/%s: %w", ns, svc.Name, err)
		}
		d.record("service", svc.Name)
		d.Services[svc.Name] = got
	}

	if _, err := kc.AppsV1().Deployments(ns).Create(ctx, s.httpbinDeployment(), metav1.CreateOptions{}); err != nil {
		d.recordIfLanded(err, "deployment", HTTPBinName)
		return fmt.Errorf("creating deployment %s/%s: %w", ns, HTTPBinName, err)
	}
	d.record("deployment", HTTPBinName)
	if _, err := kc.CoreV1().Pods(ns).Create(ctx, s.sleepPod(), metav1.CreateOptions{}); err != nil {
		d.recordIfLanded(err, "pod", SleepName)
		return fmt.Errorf("creating pod %s/%s: %w", ns, SleepName, err)
	}
	d.record("pod", SleepName)

	if s.NoMesh {
		return nil
	}
	for _, o := range s.routeObjects() {
		gvr := o.gvr
		if _, err := dc.Resource(gvr).Namespace(ns).Create(ctx, o.obj, metav1.CreateOptions{}); err != nil {
			if mayHaveLanded(err) {
				d.objects = append(d.objects, created{kind: o.obj.GetKind(), name: o.obj.GetName(), gvr: gvr, uncertain: true})
			}
			return fmt.Errorf("creating %s %s/%s: %w (is the CRD installed?)", o.obj.GetKind(), ns, o.obj.GetName(), err)
		}
		d.objects = append(d.objects, created{kind: o.obj.GetKind(), name: o.obj.GetName(), gvr: gvr})
	}
	return nil
}

func (d *Deployment) record(kind, name string) {
	d.objects = append(d.objects, created{kind: kind, name: name, core: true})
}

// mayHaveLanded: the create failed in a way that does not say the server
// refused it (a timeout, a lost connection, a 5xx after the write): the
// object may exist.
func mayHaveLanded(err error) bool {
	return !apierrors.IsAlreadyExists(err) && !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) &&
		!apierrors.IsUnauthorized(err) && !apierrors.IsNotFound(err) && !apierrors.IsBadRequest(err) && !apierrors.IsConflict(err)
}

// recordIfLanded records an object whose create may have happened after
// all; Cleanup deletes it only if it carries this run's label.
func (d *Deployment) recordIfLanded(err error, kind, name string) {
	if mayHaveLanded(err) {
		d.objects = append(d.objects, created{kind: kind, name: name, core: true, uncertain: true})
	}
}

func (d *Deployment) namespace(ctx context.Context) error {
	s := d.Scenario
	existing, err := d.kube.CoreV1().Namespaces().Get(ctx, s.Namespace, metav1.GetOptions{})
	switch {
	case err == nil:
		if !s.NamespaceReuse {
			return &ErrNamespaceExists{Namespace: s.Namespace, Ours: existing.Labels[LabelManagedBy] == ManagedBy}
		}
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("looking up namespace %s: %w", s.Namespace, err)
	}
	labels := s.labels("")
	// The pods are built for the restricted Pod Security Standard; enforcing
	// it proves that they never need an exemption.
	labels["pod-security.kubernetes.io/enforce"] = "restricted"
	if !s.NoMesh {
		if s.Revision != "" {
			labels["istio.io/rev"] = s.Revision
		} else {
			labels["istio-injection"] = "enabled"
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.Namespace, Labels: labels}}
	if _, err := d.kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		if !mayHaveLanded(err) {
			return fmt.Errorf("creating namespace %s: %w", s.Namespace, err)
		}
		// The answer was lost: if the namespace is there with this run's
		// label, the create happened; go on (and delete it at the end).
		got, gerr := d.kube.CoreV1().Namespaces().Get(ctx, s.Namespace, metav1.GetOptions{})
		if gerr != nil || got.Labels[LabelRun] != s.RunID {
			return fmt.Errorf("creating namespace %s: %w", s.Namespace, err)
		}
	}
	d.ownNS = true
	return nil
}

func (s Scenario) service(name string, port, target int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: s.labels(name)},
		Spec: corev1.ServiceSpec{
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
			Selector:       map[string]string{"app": name, LabelRun: s.RunID},
			Ports:          []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromInt32(target), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// restricted is the Pod Security Standard "restricted" profile. No user ID
// is set, so OpenShift's restricted SCC assigns one from the namespace range.
func restrictedPod() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func restrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func (s Scenario) podSpec(c corev1.Container) corev1.PodSpec {
	c.SecurityContext = restrictedContainer()
	c.ImagePullPolicy = corev1.PullIfNotPresent
	return corev1.PodSpec{
		ServiceAccountName:            ServiceAccount,
		AutomountServiceAccountToken:  ptr.To(false),
		SecurityContext:               restrictedPod(),
		TerminationGracePeriodSeconds: ptr.To(int64(0)),
		Containers:                    []corev1.Container{c},
	}
}

func (s Scenario) sleepPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: SleepName, Labels: s.labels(SleepName)},
		Spec: s.podSpec(corev1.Container{
			Name:    SleepName,
			Image:   s.CurlImage,
			Command: []string{"sleep", "infinity"},
		}),
	}
}

func (s Scenario) httpbinDeployment() *appsv1.Deployment {
	labels := s.labels(HTTPBinName)
	spec := s.podSpec(corev1.Container{
		Name:  HTTPBinName,
		Image: s.HTTPBinImage,
		Env:   []corev1.EnvVar{{Name: "PORT", Value: "8080"}},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			HTTPGet: &corev1.HTTPGetAction{Path: "/status/200", Port: intstr.FromInt32(8080)},
		}},
	})
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: HTTPBinName, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": HTTPBinName, LabelRun: s.RunID}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
}

type routeObject struct {
	gvr schema.GroupVersionResource
	obj *unstructured.Unstructured
}

func (s Scenario) routeObjects() []routeObject {
	backend := fmt.Sprintf("%s.%s.svc.cluster.local", HTTPBinName, s.Namespace)
	meta := func(name string) map[string]any {
		labels := map[string]any{}
		for k, v := range s.labels("") {
			labels[k] = v
		}
		return map[string]any{"name": name, "labels": labels}
	}
	if s.GatewayAPI {
		gwNS, gwName, _ := strings.Cut(s.Gateway, "/")
		route := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
			"metadata": meta(HTTPBinName),
			"spec": map[string]any{
				"parentRefs": []any{map[string]any{"name": gwName, "namespace": gwNS}},
				"hostnames":  []any{s.Host},
				"rules": []any{map[string]any{
					"backendRefs": []any{map[string]any{"name": HTTPBinName, "port": int64(HTTPBinPort)}},
				}},
			},
		}}
		return []routeObject{{httpRouteGVR, route}}
	}
	gw := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
		"metadata": meta(GatewayName),
		"spec": map[string]any{
			"selector": map[string]any{"istio": s.IngressLabel},
			"servers": []any{map[string]any{
				"port":  map[string]any{"number": int64(80), "name": "http", "protocol": "HTTP"},
				"hosts": []any{s.Host},
			}},
		},
	}}
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": meta(HTTPBinName),
		"spec": map[string]any{
			"hosts":    []any{s.Host},
			"gateways": []any{GatewayName},
			"http": []any{map[string]any{
				"route": []any{map[string]any{
					"destination": map[string]any{"host": backend, "port": map[string]any{"number": int64(HTTPBinPort)}},
				}},
			}},
		},
	}}
	return []routeObject{{istioGatewayGVR, gw}, {virtualServiceGVR, vs}}
}

// WaitReady waits, with one list and one watch, until the scenario's pods
// (sleep and httpbin's) are Ready; progress gets "n/2 pods ready".
func (d *Deployment) WaitReady(ctx context.Context, progress func(string)) error {
	selector := LabelRun + "=" + d.RunID
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return d.kube.CoreV1().Pods(d.Namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return d.kube.CoreV1().Pods(d.Namespace).Watch(ctx, o)
		},
	}
	ready := map[string]*corev1.Pod{}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		pod, ok := ev.Object.(*corev1.Pod)
		if !ok {
			return false, nil
		}
		app := pod.Labels["app"]
		if ev.Type == watch.Deleted || !podReady(pod) {
			delete(ready, app)
		} else {
			ready[app] = pod
		}
		progress(fmt.Sprintf("%d/2 pods ready", len(ready)))
		return ready[SleepName] != nil && ready[HTTPBinName] != nil, nil
	})
	if err != nil {
		var missing []string
		for _, app := range []string{SleepName, HTTPBinName} {
			if ready[app] == nil {
				missing = append(missing, app)
			}
		}
		return fmt.Errorf("waiting for pods %s in %s to be Ready: %w (check `kubectl -n %s get pods,events`)", strings.Join(missing, ", "), d.Namespace, err, d.Namespace)
	}
	d.Pods = ready
	return nil
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Cleanup deletes what Deploy created and nothing else: the namespace when
// validate made it (everything inside goes with it), otherwise each of its
// own objects. It uses its own time budget, so it runs after Ctrl-C too.
func (d *Deployment) Cleanup(ctx context.Context) error {
	if d == nil || d.kube == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	if d.ownNS {
		err := d.kube.CoreV1().Namespaces().Delete(ctx, d.Namespace, opts)
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting namespace %s: %w", d.Namespace, err)
		}
		return nil
	}
	var errs []string
	for i := len(d.objects) - 1; i >= 0; i-- {
		o := d.objects[i]
		if o.uncertain && !d.ours(ctx, o) {
			continue
		}
		var err error
		switch {
		case !o.core:
			err = d.dyn.Resource(o.gvr).Namespace(d.Namespace).Delete(ctx, o.name, opts)
		case o.kind == "serviceaccount":
			err = d.kube.CoreV1().ServiceAccounts(d.Namespace).Delete(ctx, o.name, opts)
		case o.kind == "service":
			err = d.kube.CoreV1().Services(d.Namespace).Delete(ctx, o.name, opts)
		case o.kind == "deployment":
			err = d.kube.AppsV1().Deployments(d.Namespace).Delete(ctx, o.name, opts)
		case o.kind == "pod":
			err = d.kube.CoreV1().Pods(d.Namespace).Delete(ctx, o.name, opts)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Sprintf("%s %s: %v", o.kind, o.name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("deleting validate's objects in %s: %s", d.Namespace, strings.Join(errs, "; "))
	}
	return nil
}

// ours reports whether an object whose create may have failed exists with
// this run's label.
func (d *Deployment) ours(ctx context.Context, o created) bool {
	var obj metav1.Object
	var err error
	get, ns := metav1.GetOptions{}, d.Namespace
	switch {
	case !o.core:
		obj, err = d.dyn.Resource(o.gvr).Namespace(ns).Get(ctx, o.name, get)
	case o.kind == "serviceaccount":
		obj, err = d.kube.CoreV1().ServiceAccounts(ns).Get(ctx, o.name, get)
	case o.kind == "service":
		obj, err = d.kube.CoreV1().Services(ns).Get(ctx, o.name, get)
	case o.kind == "deployment":
		obj, err = d.kube.AppsV1().Deployments(ns).Get(ctx, o.name, get)
	case o.kind == "pod":
		obj, err = d.kube.CoreV1().Pods(ns).Get(ctx, o.name, get)
	default:
		return false
	}
	return err == nil && obj.GetLabels()[LabelRun] == d.RunID
}

// OwnNamespace reports whether validate created the namespace.
func (d *Deployment) OwnNamespace() bool { return d.ownNS }
