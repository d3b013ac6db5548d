package istio

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

func istiod(labels map[string]string, env ...corev1.EnvVar) *appsv1.Deployment {
	l := map[string]string{"app": "istiod"}
	for k, v := range labels {
		l[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system", Labels: l},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "discovery", Image: "docker.io/istio/pilot:1.24.2", Env: env},
		}}}},
	}
}

// helmIstiod is istiod as the istiod chart renders it under Helm: the
// operator labels of the chart and Helm's release annotation.
func helmIstiod() *appsv1.Deployment {
	d := istiod(map[string]string{"operator.istio.io/component": "Pilot", "install.operator.istio.io/owning-resource": "unknown", "release": "istiod"})
	d.Annotations = map[string]string{HelmReleaseAnnotation: "istiod", "meta.helm.sh/release-namespace": "istio-system"}
	return d
}

func meshCM(name, mesh string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system"}, Data: map[string]string{"mesh": mesh}}
}

const dualMesh = "defaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n"

func TestInspect(t *testing.T) {
	ctx := context.Background()
	on := corev1.EnvVar{Name: DualStackEnv, Value: "true"}
	for _, tc := range []struct {
		name           string
		objs           []any
		found, istiod  bool
		proxy          bool
		method         Method
		revision, vers string
	}{
		{name: "none"},
		{name: "helm, off", objs: []any{istiod(map[string]string{"app.kubernetes.io/managed-by": "Helm"}), meshCM("istio", "defaultConfig: {}\n")},
			found: true, method: MethodHelm, vers: "1.24.2"},
		{name: "helm chart labels and release annotation", objs: []any{helmIstiod(), meshCM("istio", "defaultConfig: {}\n")},
			found: true, method: MethodHelm, vers: "1.24.2"},
		{name: "istioctl, on", objs: []any{istiod(map[string]string{"operator.istio.io/component": "Pilot"}, on), meshCM("istio", dualMesh)},
			found: true, istiod: true, proxy: true, method: MethodIstioctl, vers: "1.24.2"},
		{name: "revision", objs: []any{istiod(map[string]string{"istio.io/rev": "1-24"}, on), meshCM("istio-1-24", dualMesh)},
			found: true, istiod: true, proxy: true, method: MethodUnknown, revision: "1-24", vers: "1.24.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kc := fake.NewClientset()
			for _, o := range tc.objs {
				switch o := o.(type) {
				case *appsv1.Deployment:
					_, _ = kc.AppsV1().Deployments(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
				case *corev1.ConfigMap:
					_, _ = kc.CoreV1().ConfigMaps(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
				}
			}
			f, err := Inspect(ctx, kc, nil)
			if err != nil {
				t.Fatal(err)
			}
			if f.Found != tc.found || f.IstiodDualStack != tc.istiod || f.ProxyDualStack != tc.proxy ||
				(tc.found && f.Method != tc.method) || f.Revision != tc.revision || f.Version != tc.vers {
				t.Fatalf("got %+v", f)
			}
		})
	}
}

func TestChecks(t *testing.T) {
	require := corev1.IPFamilyPolicyRequireDualStack
	dualGW := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "istio-system", Annotations: map[string]string{
			"service.beta.kubernetes.io/aws-load-balancer-type": "nlb", "service.beta.kubernetes.io/aws-load-balancer-ip-address-type": "dualstack"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilyPolicy: &require, IPFamilies: []corev1.IPFamily{"IPv4", "IPv6"}},
	}
	classicGW := corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "istio-system"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{"IPv4"}}}

	good := &Facts{Found: true, Namespace: "istio-system", Version: "1.24.2", Method: MethodHelm, IstiodDualStack: true, ProxyDualStack: true, MeshConfigFrom: "x"}
	for _, c := range Checks(good, []corev1.Service{dualGW}, "oc dualstack") {
		if c.Status != report.Pass || c.Layer != report.LayerMesh {
			t.Errorf("good mesh: %+v", c)
		}
	}

	bad := &Facts{Found: true, Namespace: "istio-system", Version: "1.16.7", Method: MethodSail}
	got := map[string]report.Check{}
	for _, c := range Checks(bad, []corev1.Service{classicGW}, "oc dualstack") {
		got[c.Name] = c
	}
	if got["istiod"].Status != report.Fail || !strings.Contains(got["istiod"].Message, "1.17") {
		t.Errorf("old istio: %+v", got["istiod"])
	}
	if c := got["istiod-dual-stack"]; c.Status != report.Fail || !strings.Contains(c.Remediation, "oc dualstack status --print-istio-values") {
		t.Errorf("istiod env: %+v", c)
	}
	if c := got["ingress-gateway"]; c.Status != report.Fail || !strings.Contains(c.Remediation, "--recreate") || !strings.Contains(c.Message, "Classic ELB") {
		t.Errorf("classic gateway: %+v", c)
	}

	none := Checks(&Facts{}, nil, "kubectl dualstack")
	if len(none) != 2 || none[0].Status != report.Fail || none[1].Name != "ingress-gateway" {
		t.Errorf("no istio: %+v", none)
	}
}

func TestEnableInstructions(t *testing.T) {
	for m, want := range map[Method]string{
		MethodIstioctl: "--set values.pilot.env.ISTIO_DUAL_STACK=true",
		MethodHelm:     "ISTIO_DUAL_STACK: \"true\"",
		MethodSail:     "kubectl patch istios.sailoperator.io default",
		MethodUnknown:  "Sail operator:",
	} {
		if got := EnableInstructions(&Facts{Method: m}); !strings.Contains(got, want) || !strings.Contains(got, "proxyMetadata") {
			t.Errorf("%s:\n%s", m, got)
		}
	}
}
