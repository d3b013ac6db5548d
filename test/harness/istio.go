package harness

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// InstallIstiod creates what a Helm install of Istio's istiod chart leaves
// in the cluster that the plugin reads: the istiod Deployment (with
// ISTIO_DUAL_STACK=true in its env when dualStack) and the mesh config
// ConfigMap "istio" (with the proxyMetadata setting when dualStack).
func InstallIstiod(ctx context.Context, kc kubernetes.Interface, version string, dualStack bool) error {
	return InstallIstio(ctx, kc, IstioInstall{Version: version, DualStack: dualStack, Method: "helm"})
}

// IstioInstall says how InstallIstio installs Istio.
type IstioInstall struct {
	Version   string
	DualStack bool
	// Method is "helm" (the istiod chart's labels and release annotation)
	// or "istioctl" (the operator's component labels).
	Method string
	// Service adds istiod's own Service (SingleStack, as made while the
	// cluster was single-stack); Gateway the ingress gateway's Deployment
	// (2 replicas, the pods the gateway Service selects).
	Service, Gateway bool
}

// InstallIstio creates istiod as the install method leaves it: its
// Deployment, the mesh config, and optionally its Service and the ingress
// gateway's Deployment.
func InstallIstio(ctx context.Context, kc kubernetes.Interface, o IstioInstall) error {
	version, dualStack := o.Version, o.DualStack
	if err := EnsureNamespace(ctx, kc, IstioNamespace, nil); err != nil {
		return err
	}
	env := []corev1.EnvVar{{Name: "PILOT_ENABLE_GATEWAY_API", Value: "true"}}
	mesh := "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n"
	if dualStack {
		env = append(env, corev1.EnvVar{Name: "ISTIO_DUAL_STACK", Value: "true"})
		mesh += "  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n"
	}
	labels := map[string]string{"app": "istiod", "istio": "pilot", "istio.io/rev": "default"}
	annotations := map[string]string{}
	switch o.Method {
	case "istioctl":
		labels["operator.istio.io/component"] = "Pilot"
		labels["install.operator.istio.io/owning-resource"] = "installed-state"
	default:
		labels["app.kubernetes.io/managed-by"] = "Helm"
		annotations["meta.helm.sh/release-name"] = "istiod"
	}
	_, err := kc.AppsV1().Deployments(IstioNamespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: IstioNamespace, Labels: labels, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "istiod"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "discovery", Image: "docker.io/istio/pilot:" + version, Env: env,
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating istiod: %w", err)
	}
	_, err = kc.CoreV1().ConfigMaps(IstioNamespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: IstioNamespace},
		Data:       map[string]string{"mesh": mesh},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the istio mesh config: %w", err)
	}
	if o.Service {
		_, err = kc.CoreV1().Services(IstioNamespace).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: IstioNamespace, Labels: map[string]string{"app": "istiod", "istio": "pilot"}},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "istiod"}, Ports: []corev1.ServicePort{
				{Name: "grpc-xds", Port: 15010}, {Name: "https-dns", Port: 15012}, {Name: "https-webhook", Port: 443, TargetPort: intstr.FromInt32(15017)},
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating istiod's Service: %w", err)
		}
	}
	if o.Gateway {
		return InstallGateway(ctx, kc, version)
	}
	return nil
}

// InstallGateway creates the ingress gateway's Deployment: 2 replicas, the
// pods the gateway Service selects.
func InstallGateway(ctx context.Context, kc kubernetes.Interface, version string) error {
	gwLabels := map[string]string{"app": IngressGatewayName, "istio": IngressGatewayLabel}
	_, err := kc.AppsV1().Deployments(IstioNamespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: IngressGatewayName, Namespace: IstioNamespace, Labels: gwLabels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: gwLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: gwLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "istio-proxy", Image: "docker.io/istio/proxyv2:" + version,
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the ingress gateway: %w", err)
	}
	return nil
}
