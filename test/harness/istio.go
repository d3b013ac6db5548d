package harness

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// InstallIstiod creates what a Helm install of Istio's istiod chart leaves
// in the cluster that the plugin reads: the istiod Deployment (with
// ISTIO_DUAL_STACK=true in its env when dualStack) and the mesh config
// ConfigMap "istio" (with the proxyMetadata setting when dualStack).
func InstallIstiod(ctx context.Context, kc kubernetes.Interface, version string, dualStack bool) error {
	if err := EnsureNamespace(ctx, kc, IstioNamespace, nil); err != nil {
		return err
	}
	env := []corev1.EnvVar{{Name: "PILOT_ENABLE_GATEWAY_API", Value: "true"}}
	mesh := "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n"
	if dualStack {
		env = append(env, corev1.EnvVar{Name: "ISTIO_DUAL_STACK", Value: "true"})
		mesh += "  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n"
	}
	labels := map[string]string{"app": "istiod", "istio": "pilot", "istio.io/rev": "default", "app.kubernetes.io/managed-by": "Helm"}
	_, err := kc.AppsV1().Deployments(IstioNamespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: IstioNamespace, Labels: labels,
			Annotations: map[string]string{"meta.helm.sh/release-name": "istiod"}},
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
	return nil
}
