// Package istio inspects how Istio is installed and whether it is set up for
// dual-stack (ISTIO_DUAL_STACK in istiod and in the proxies' metadata), and
// prints the settings that enable it for the install method it finds.
package istio

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// DualStackEnv is the variable that turns on Istio's dual-stack support, in
// istiod and in every proxy (meshConfig.defaultConfig.proxyMetadata).
const DualStackEnv = "ISTIO_DUAL_STACK"

// Install methods, as far as the cluster shows them.
type Method string

const (
	MethodHelm     Method = "helm"     // Helm charts (base/istiod/gateway)
	MethodIstioctl Method = "istioctl" // istioctl install / IstioOperator
	MethodSail     Method = "sail"     // OpenShift Service Mesh 3 / Sail operator Istio resource
	MethodUnknown  Method = "unknown"
)

// SailIstioGVR is the Sail operator's Istio resource.
var SailIstioGVR = schema.GroupVersionResource{Group: "sailoperator.io", Version: "v1", Resource: "istios"}

// Facts are what the mesh checks judge.
type Facts struct {
	Found     bool   `json:"found"`
	Namespace string `json:"namespace,omitempty"`
	Istiod    string `json:"istiod,omitempty"` // deployment name
	Revision  string `json:"revision,omitempty"`
	Version   string `json:"version,omitempty"`
	Method    Method `json:"method,omitempty"`
	// SailName is the Sail Istio resource, when that is the install method.
	SailName string `json:"sailName,omitempty"`
	// IstiodDualStack: ISTIO_DUAL_STACK=true in istiod's container env.
	IstiodDualStack bool `json:"istiodDualStack"`
	// ProxyDualStack: ISTIO_DUAL_STACK "true" in meshConfig.defaultConfig.proxyMetadata.
	ProxyDualStack bool   `json:"proxyDualStack"`
	MeshConfigFrom string `json:"meshConfigFrom,omitempty"`
}

// Inspect finds istiod (label app=istiod, any namespace, paginated) and reads
// its env, its mesh config and how it was installed.
func Inspect(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface) (*Facts, error) {
	f := &Facts{}
	deployments, err := pager.ListAll[appsv1.Deployment](ctx, metav1.ListOptions{LabelSelector: "app=istiod"}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return kc.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, o)
	})
	if err != nil {
		return nil, kube.Explain("listing istiod deployments (app=istiod)", err)
	}
	if len(deployments) == 0 {
		return f, nil
	}
	d := pickIstiod(deployments)
	f.Found, f.Namespace, f.Istiod = true, d.Namespace, d.Name
	f.Revision = d.Labels["istio.io/rev"]
	if f.Revision == "default" {
		f.Revision = ""
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != "discovery" && len(d.Spec.Template.Spec.Containers) > 1 {
			continue
		}
		if _, tag, ok := strings.Cut(lastPathElem(c.Image), ":"); ok {
			f.Version = tag
		}
		for _, e := range c.Env {
			if e.Name == DualStackEnv && strings.EqualFold(e.Value, "true") {
				f.IstiodDualStack = true
			}
		}
	}
	if v := d.Labels["operator.istio.io/version"]; v != "" && f.Version == "" {
		f.Version = v
	}
	f.Method = method(d)

	cmName := "istio"
	if f.Revision != "" {
		cmName = "istio-" + f.Revision
	}
	cm, err := kc.CoreV1().ConfigMaps(f.Namespace).Get(ctx, cmName, metav1.GetOptions{})
	switch {
	case err == nil:
		f.MeshConfigFrom = "configmap " + f.Namespace + "/" + cmName
		f.ProxyDualStack = proxyMetadataDualStack(cm.Data["mesh"])
	case !apierrors.IsNotFound(err):
		return nil, kube.Explain("reading the mesh config "+f.Namespace+"/"+cmName, err)
	}
	if dc != nil {
		// The Sail operator's Istio resource, where its API exists.
		sail, err := kube.ListUnstructured(ctx, dc, SailIstioGVR, "", metav1.ListOptions{})
		if err == nil && len(sail) > 0 {
			f.Method, f.SailName = MethodSail, sail[0].GetName()
		}
	}
	return f, nil
}

// pickIstiod prefers the default revision.
func pickIstiod(ds []appsv1.Deployment) appsv1.Deployment {
	for _, d := range ds {
		if rev := d.Labels["istio.io/rev"]; rev == "" || rev == "default" {
			return d
		}
	}
	return ds[0]
}

// HelmReleaseAnnotation is what Helm (3.2 and later) writes on every object
// of a release: the release's name.
const HelmReleaseAnnotation = "meta.helm.sh/release-name"

// method tells the install method from what each one leaves on istiod's
// Deployment. Helm's release annotation is looked at before the operator
// labels: the istiod chart itself sets operator.istio.io/component and
// install.operator.istio.io/owning-resource ("unknown") on what it renders
// (manifests/charts/istio-control/istio-discovery/templates/deployment.yaml),
// so a Helm install carries them too, while only Helm writes the annotation.
func method(d appsv1.Deployment) Method {
	switch {
	case d.Labels["app.kubernetes.io/managed-by"] == "sail-operator" || hasOwnerKind(d, "Istio") || hasOwnerKind(d, "IstioRevision"):
		return MethodSail
	case d.Annotations[HelmReleaseAnnotation] != "":
		return MethodHelm
	case d.Labels["operator.istio.io/component"] != "" || d.Labels["install.operator.istio.io/owning-resource"] != "":
		return MethodIstioctl
	case d.Labels["app.kubernetes.io/managed-by"] == "Helm":
		return MethodHelm
	default:
		return MethodUnknown
	}
}

func hasOwnerKind(d appsv1.Deployment, kind string) bool {
	for _, o := range d.OwnerReferences {
		if o.Kind == kind {
			return true
		}
	}
	return false
}

func lastPathElem(image string) string {
	if i := strings.LastIndex(image, "/"); i >= 0 {
		return image[i+1:]
	}
	return image
}

// proxyMetadataDualStack reads defaultConfig.proxyMetadata.ISTIO_DUAL_STACK
// from the mesh config YAML.
func proxyMetadataDualStack(mesh string) bool {
	var m struct {
		DefaultConfig struct {
			ProxyMetadata map[string]string `json:"proxyMetadata"`
		} `json:"defaultConfig"`
	}
	if yaml.Unmarshal([]byte(mesh), &m) != nil {
		return false
	}
	return strings.EqualFold(m.DefaultConfig.ProxyMetadata[DualStackEnv], "true")
}

// EnableInstructions says how to turn dual-stack on for the install method.
func EnableInstructions(f *Facts) string {
	rev := ""
	if f.Revision != "" {
		rev = " --revision " + f.Revision
	}
	istioctl := fmt.Sprintf(`istioctl install%s \
  --set values.pilot.env.%[2]s=true \
  --set meshConfig.defaultConfig.proxyMetadata.%[2]s=true \
  --set values.pilot.ipFamilyPolicy=RequireDualStack`, rev, DualStackEnv)
	helm := fmt.Sprintf(`# values for the istiod chart (helm upgrade istiod istio/istiod -n %[1]s -f dualstack.yaml)
pilot:
  env:
    %[2]s: "true"
  ipFamilyPolicy: RequireDualStack
meshConfig:
  defaultConfig:
    proxyMetadata:
      %[2]s: "true"`, orDefault(f.Namespace, "istio-system"), DualStackEnv)
	name := orDefault(f.SailName, "default")
	sail := fmt.Sprintf(`kubectl patch istios.sailoperator.io %s --type merge -p '{"spec":{"values":{"pilot":{"env":{"%[2]s":"true"},"ipFamilyPolicy":"RequireDualStack"},"meshConfig":{"defaultConfig":{"proxyMetadata":{"%[2]s":"true"}}}}}}'`, name, DualStackEnv)
	switch f.Method {
	case MethodSail:
		return sail
	case MethodIstioctl:
		return istioctl
	case MethodHelm:
		return helm
	default:
		return "istioctl:\n" + istioctl + "\n\nHelm:\n" + helm + "\n\nSail operator:\n" + sail
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
