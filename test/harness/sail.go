package harness

import (
	"context"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// SailIstioGVR is the Sail operator's Istio resource (cluster-scoped).
var SailIstioGVR = schema.GroupVersionResource{Group: "sailoperator.io", Version: "v1", Resource: "istios"}

// SailIstioName is the Istio resource the sandbox's Sail install creates.
const SailIstioName = "default"

// installSailCRD serves sailoperator.io/v1 Istio. The schema is the
// sandbox's own and open (spec and status keep every field): what the tool
// reads and writes is spec.values, which the operator renders.
func installSailCRD(ctx context.Context, cfg *rest.Config) error {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	open := &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "istios.sailoperator.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "sailoperator.io", Scope: apiextensionsv1.ClusterScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "istios", Singular: "istio", Kind: "Istio", ListKind: "IstioList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": *open, "status": *open},
				}},
			}},
		},
	}
	if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the Sail Istio CRD: %w", err)
	}
	return WaitFor(ctx, 30*time.Second, "the Sail Istio CRD to be established", func(ctx context.Context) (bool, error) {
		got, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		return err == nil && established(got), nil
	})
}

// SailOperator plays the Sail operator for one Istio resource, and only
// what it does with the resource the tool patches: it renders istiod from
// spec.values as its Helm charts do (the Deployment's discovery env from
// values.pilot.env, the istio ConfigMap's mesh config from
// values.meshConfig, istiod's Service families from values.pilot
// ipFamilyPolicy and ipFamilies) each time the resource's generation
// changes, and records the generation it rendered in
// status.observedGeneration.
type SailOperator struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// InstallSailIstio installs the CRD, creates the Istio resource (IPv4
// only: no values) and starts the operator, which renders istiod.
func InstallSailIstio(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, dc dynamic.Interface, version string) (*SailOperator, error) {
	if err := installSailCRD(ctx, cfg); err != nil {
		return nil, err
	}
	if err := EnsureNamespace(ctx, kc, IstioNamespace, nil); err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sailoperator.io/v1", "kind": "Istio",
		"metadata": map[string]any{"name": SailIstioName},
		"spec": map[string]any{"version": "v" + version, "namespace": IstioNamespace,
			"values": map[string]any{"pilot": map[string]any{"env": map[string]any{"PILOT_ENABLE_GATEWAY_API": "true"}}}},
	}}
	if _, err := dc.Resource(SailIstioGVR).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating the Sail Istio resource: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &SailOperator{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var rendered int64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if u, err := dc.Resource(SailIstioGVR).Get(runCtx, SailIstioName, metav1.GetOptions{}); err == nil && u.GetGeneration() != rendered {
				if renderSail(runCtx, kc, u, version) == nil {
					rendered = u.GetGeneration()
					_ = unstructured.SetNestedField(u.Object, rendered, "status", "observedGeneration")
					_, _ = dc.Resource(SailIstioGVR).UpdateStatus(runCtx, u, metav1.UpdateOptions{})
				}
			}
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	// The first rendering, before the sandbox goes on.
	err := WaitFor(ctx, 30*time.Second, "the Sail operator to render istiod", func(ctx context.Context) (bool, error) {
		_, err := kc.AppsV1().Deployments(IstioNamespace).Get(ctx, "istiod", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop ends the operator.
func (s *SailOperator) Stop() {
	s.cancel()
	<-s.done
}

// renderSail creates or updates istiod's Deployment, mesh config and
// Service from the Istio resource's spec.values.
func renderSail(ctx context.Context, kc kubernetes.Interface, u *unstructured.Unstructured, version string) error {
	envMap, _, _ := unstructured.NestedStringMap(u.Object, "spec", "values", "pilot", "env")
	names := make([]string, 0, len(envMap))
	for k := range envMap {
		names = append(names, k)
	}
	sort.Strings(names)
	var env []corev1.EnvVar
	for _, k := range names {
		env = append(env, corev1.EnvVar{Name: k, Value: envMap[k]})
	}
	labels := map[string]string{"app": "istiod", "istio": "pilot", "istio.io/rev": "default", "app.kubernetes.io/managed-by": "sail-operator"}
	owner := []metav1.OwnerReference{{APIVersion: "sailoperator.io/v1", Kind: "Istio", Name: u.GetName(), UID: u.GetUID()}}
	deps := kc.AppsV1().Deployments(IstioNamespace)
	dep, err := deps.Get(ctx, "istiod", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = deps.Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: IstioNamespace, Labels: labels, OwnerReferences: owner},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "istiod"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:" + version, Env: env}}},
				},
			},
		}, metav1.CreateOptions{})
	case err == nil:
		dep.Spec.Template.Spec.Containers[0].Env = env
		_, err = deps.Update(ctx, dep, metav1.UpdateOptions{})
	}
	if err != nil {
		return err
	}

	meshConfig, _, _ := unstructured.NestedMap(u.Object, "spec", "values", "meshConfig")
	mesh := "{}\n"
	if len(meshConfig) > 0 {
		b, err := yaml.Marshal(meshConfig)
		if err != nil {
			return err
		}
		mesh = string(b)
	}
	cms := kc.CoreV1().ConfigMaps(IstioNamespace)
	cm, err := cms.Get(ctx, "istio", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: IstioNamespace, OwnerReferences: owner},
			Data: map[string]string{"mesh": mesh}}, metav1.CreateOptions{})
	case err == nil && cm.Data["mesh"] != mesh:
		cm.Data = map[string]string{"mesh": mesh}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		return err
	}

	policy, _, _ := unstructured.NestedString(u.Object, "spec", "values", "pilot", "ipFamilyPolicy")
	fams, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "values", "pilot", "ipFamilies")
	svcs := kc.CoreV1().Services(IstioNamespace)
	svc, err := svcs.Get(ctx, "istiod", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		svc = &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: IstioNamespace, Labels: map[string]string{"app": "istiod", "istio": "pilot"}, OwnerReferences: owner},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "istiod"}, Ports: []corev1.ServicePort{
				{Name: "grpc-xds", Port: 15010}, {Name: "https-dns", Port: 15012}, {Name: "https-webhook", Port: 443, TargetPort: intstr.FromInt32(15017)},
			}}}
		setServiceFamilies(svc, policy, fams)
		_, err = svcs.Create(ctx, svc, metav1.CreateOptions{})
	case err == nil:
		before := svc.DeepCopy()
		setServiceFamilies(svc, policy, fams)
		if !equalFamilies(before, svc) {
			_, err = svcs.Update(ctx, svc, metav1.UpdateOptions{})
		}
	}
	return err
}

// setServiceFamilies is what the chart renders: the policy and families
// when values give them; without them, the Service the apiserver made
// (SingleStack) stays, as a re-applied manifest without the fields leaves
// them.
func setServiceFamilies(svc *corev1.Service, policy string, fams []string) {
	if policy == "" {
		if svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack {
			single := corev1.IPFamilyPolicySingleStack
			svc.Spec.IPFamilyPolicy = &single
			if len(svc.Spec.IPFamilies) > 1 {
				svc.Spec.IPFamilies = svc.Spec.IPFamilies[:1]
			}
			if len(svc.Spec.ClusterIPs) > 1 {
				svc.Spec.ClusterIPs = svc.Spec.ClusterIPs[:1]
			}
		}
		return
	}
	p := corev1.IPFamilyPolicy(policy)
	svc.Spec.IPFamilyPolicy = &p
	if len(fams) > 0 {
		svc.Spec.IPFamilies = nil
		for _, f := range fams {
			svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, corev1.IPFamily(f))
		}
	}
}

func equalFamilies(a, b *corev1.Service) bool {
	pa, pb := "", ""
	if a.Spec.IPFamilyPolicy != nil {
		pa = string(*a.Spec.IPFamilyPolicy)
	}
	if b.Spec.IPFamilyPolicy != nil {
		pb = string(*b.Spec.IPFamilyPolicy)
	}
	return pa == pb && fmt.Sprint(a.Spec.IPFamilies) == fmt.Sprint(b.Spec.IPFamilies) && fmt.Sprint(a.Spec.ClusterIPs) == fmt.Sprint(b.Spec.ClusterIPs)
}
