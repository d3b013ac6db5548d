package probe

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	"k8s.io/utils/ptr"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Labels on everything validate creates: how it recognises its own objects
// (and refuses to touch anything else).
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "kubectl-dualstack"
	LabelRun       = "dualstack.kubectl.io/validate-run"
	// AnnotationKept marks a namespace a run created with --keep.
	AnnotationKept = "dualstack.kubectl.io/kept"
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
	// Keep: the run leaves its namespace behind on purpose (--keep); the
	// namespace says so, so that a later run tells it from an abandoned one.
	Keep bool
	// Progress, when set, hears what Deploy is waiting for (a namespace
	// still being deleted), so the user is not left staring at a spinner.
	Progress func(string) `json:"-"`
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

// ErrNamespaceTerminating is returned when the namespace is still being
// deleted (usually by the previous run's cleanup) and did not go within the
// run's time budget.
type ErrNamespaceTerminating struct {
	Namespace string
	Err       error
}

func (e *ErrNamespaceTerminating) Error() string {
	return fmt.Sprintf("namespace %q is still Terminating (an earlier run's cleanup, waiting for its pods to go) and did not go in time (%v): wait for it (`kubectl get namespace %s`), or pick another namespace with -n", e.Namespace, e.Err, e.Namespace)
}

func (e *ErrNamespaceTerminating) Unwrap() error { return e.Err }

// ErrMeshMissing is returned, before anything is created, when the cluster
// does not serve the API of the ingress route validate would create.
type ErrMeshMissing struct {
	GroupVersion string
	Resources    []string
	What         string // "Istio", "Gateway API"
	Fix          string
}

func (e *ErrMeshMissing) Error() string {
	return fmt.Sprintf("%s is not installed: the cluster does not serve %s (%s); %s", e.What, e.GroupVersion, strings.Join(e.Resources, ", "), e.Fix)
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
	// Before anything is created: without the route's API the run would
	// stop half way, after the namespace and pods were made for nothing.
	if err := s.meshInstalled(kc); err != nil {
		return err
	}
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

// meshInstalled checks, through discovery, that the cluster serves the
// resources of the ingress route (Istio's Gateway and VirtualService, or
// Gateway API's HTTPRoute). --no-mesh creates no route and needs neither.
func (s Scenario) meshInstalled(kc kubernetes.Interface) error {
	if s.NoMesh {
		return nil
	}
	want := &ErrMeshMissing{
		GroupVersion: istioGatewayGVR.GroupVersion().String(), Resources: []string{istioGatewayGVR.Resource, virtualServiceGVR.Resource},
		What: "Istio", Fix: "install Istio (its CRDs and istiod), or pass --no-mesh to prove the cluster network without the mesh",
	}
	if s.GatewayAPI {
		want = &ErrMeshMissing{
			GroupVersion: httpRouteGVR.GroupVersion().String(), Resources: []string{httpRouteGVR.Resource},
			What: "Gateway API", Fix: "install the Gateway API CRDs, drop --gateway-api to use an Istio Gateway, or pass --no-mesh",
		}
	}
	list, err := kc.Discovery().ServerResourcesForGroupVersion(want.GroupVersion)
	switch {
	case apierrors.IsNotFound(err):
		return want
	case err != nil:
		return fmt.Errorf("asking the cluster whether it serves %s: %w", want.GroupVersion, err)
	}
	served := map[string]bool{}
	for _, r := range list.APIResources {
		served[r.Name] = true
	}
	for _, r := range want.Resources {
		if !served[r] {
			return want
		}
	}
	return nil
}

func (d *Deployment) namespace(ctx context.Context) error {
	s := d.Scenario
	existing, err := d.kube.CoreV1().Namespaces().Get(ctx, s.Namespace, metav1.GetOptions{})
	if err == nil && existing.DeletionTimestamp != nil {
		// Still being deleted, usually by the previous run's cleanup (the
		// namespace goes once its pods have): wait for it, within the run's
		// budget, then create it afresh.
		existing, err = d.waitNamespaceGone(ctx)
		var term *ErrNamespaceTerminating
		if errors.As(err, &term) {
			return err // says all there is to say
		}
	}
	if err == nil && !s.NamespaceReuse && existing.Labels[LabelManagedBy] == ManagedBy && existing.Annotations[AnnotationKept] != "true" {
		// Ours, not kept on purpose: an earlier run's cleanup failed (its
		// delete was lost). Finish that cleanup, so a re-run converges.
		if d.Progress != nil {
			d.Progress(fmt.Sprintf("namespace %s is left from an earlier validate run whose cleanup failed: deleting it", s.Namespace))
		}
		bg := metav1.DeletePropagationBackground
		if derr := d.kube.CoreV1().Namespaces().Delete(ctx, s.Namespace, metav1.DeleteOptions{PropagationPolicy: &bg,
			Preconditions: &metav1.Preconditions{UID: &existing.UID}}); derr != nil && !apierrors.IsNotFound(derr) {
			return fmt.Errorf("deleting namespace %s, left from an earlier validate run: %w", s.Namespace, derr)
		}
		existing, err = d.waitNamespaceGone(ctx)
		var term *ErrNamespaceTerminating
		if errors.As(err, &term) {
			return err
		}
	}
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
	if s.Keep {
		ns.Annotations = map[string]string{AnnotationKept: "true"}
	}
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

// waitNamespaceGone polls until the Terminating namespace is gone and
// returns its NotFound (or the namespace, if someone re-created it
// meanwhile), or an ErrNamespaceTerminating when ctx ends first.
func (d *Deployment) waitNamespaceGone(ctx context.Context) (*corev1.Namespace, error) {
	if d.Progress != nil {
		d.Progress(fmt.Sprintf("namespace %s is still Terminating from an earlier run: waiting for it to go", d.Namespace))
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, &ErrNamespaceTerminating{Namespace: d.Namespace, Err: context.Cause(ctx)}
		case <-tick.C:
		}
		ns, err := d.kube.CoreV1().Namespaces().Get(ctx, d.Namespace, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil, err
		case err == nil && ns.DeletionTimestamp == nil:
			return ns, nil // re-created meanwhile: judged like any existing namespace
		case err != nil && ctx.Err() == nil:
			return nil, fmt.Errorf("waiting for namespace %s to be deleted: %w", d.Namespace, err)
		}
	}
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
	// The run's own deadline bounds the wait (it ends first, with its
	// cause); a Forbidden list ends it at once.
	timeout := time.Hour
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl) + time.Second
	}
	err := kube.WaitAll(ctx, lw, &corev1.Pod{}, timeout, func(objs map[string]runtime.Object) (bool, error) {
		clear(ready)
		for _, o := range objs {
			if pod, ok := o.(*corev1.Pod); ok && podReady(pod) {
				ready[pod.Labels["app"]] = pod
			}
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

// DiagnosePods says why the scenario's pods are not Ready, one clause per
// app: the pod's phase and the most specific reason the cluster gave (a
// waiting container's reason, a False condition's, else the pod's latest
// Warning event), or that no pod exists. Events are best effort: a role
// that may not read them still gets the phase and conditions.
func (d *Deployment) DiagnosePods(ctx context.Context) string {
	if d == nil || d.kube == nil {
		return ""
	}
	pods, err := d.kube.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRun + "=" + d.RunID})
	if err != nil {
		return fmt.Sprintf("could not list the pods: %v", err)
	}
	warnings := map[string]corev1.Event{} // pod name -> latest Warning
	if evs, err := d.kube.CoreV1().Events(d.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod,type=Warning"}); err == nil {
		for _, e := range evs.Items {
			if e.Type != corev1.EventTypeWarning {
				continue
			}
			if last, ok := warnings[e.InvolvedObject.Name]; !ok || eventTime(e).After(eventTime(last)) {
				warnings[e.InvolvedObject.Name] = e
			}
		}
	}
	byApp := map[string][]string{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if podReady(p) {
			continue
		}
		byApp[p.Labels["app"]] = append(byApp[p.Labels["app"]], describePod(p, warnings[p.Name]))
	}
	var parts []string
	for _, app := range []string{SleepName, HTTPBinName} {
		switch {
		case len(byApp[app]) > 0:
			parts = append(parts, strings.Join(byApp[app], "; "))
		case !slices.ContainsFunc(pods.Items, func(p corev1.Pod) bool { return p.Labels["app"] == app }):
			parts = append(parts, fmt.Sprintf("%s: no pod was created (see `kubectl -n %s get deployment,replicaset,events`)", app, d.Namespace))
		}
	}
	return strings.Join(parts, "; ")
}

func describePod(p *corev1.Pod, warning corev1.Event) string {
	phase := p.Status.Phase
	if phase == "" {
		phase = corev1.PodPending
	}
	if p.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	var why string
	for _, c := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		if w := c.State.Waiting; w != nil && w.Reason != "" {
			why = fmt.Sprintf("container %s %s: %s", c.Name, w.Reason, w.Message)
			break
		}
	}
	if why == "" {
		// PodScheduled first: when it is False, it is the cause of the rest.
		for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			for _, c := range p.Status.Conditions {
				if c.Type == t && c.Status != corev1.ConditionTrue && why == "" {
					why = fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
				}
			}
		}
	}
	if warning.Reason != "" && (why == "" || !strings.Contains(why, warning.Message)) {
		ev := fmt.Sprintf("event %s: %s", warning.Reason, warning.Message)
		if why == "" {
			why = ev
		} else {
			why += "; " + ev
		}
	}
	if why == "" {
		why = "no status from the kubelet or scheduler yet"
	}
	return fmt.Sprintf("pod %s %s (%s)", p.Name, phase, strings.TrimSuffix(strings.TrimSpace(why), ":"))
}

func eventTime(e corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	return e.EventTime.Time
}
