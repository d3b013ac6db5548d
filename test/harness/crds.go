package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	// The CRD owners' modules: imported so that go.mod pins them and the
	// module cache holds the manifests read below.
	_ "github.com/openshift/api/config/v1"
	_ "istio.io/api/networking/v1"
	_ "sigs.k8s.io/gateway-api/apis/v1"
)

// crdSource is a set of CRD manifests inside a Go module.
type crdSource struct {
	module string
	files  []string // paths inside the module; may hold several documents
	groups []string // keep only CRDs of these groups (all when empty)
}

// The CRDs the fixtures need, from the modules of the APIs' owners.
var crdSources = []crdSource{
	{module: "github.com/openshift/api", files: []string{
		"config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_networks.crd.yaml",
		"config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_dnses.crd.yaml",
		infrastructuresDefault,
		"config/v1/zz_generated.crd-manifests/0000_00_cluster-version-operator_01_clusteroperators.crd.yaml",
		"config/v1/zz_generated.crd-manifests/0000_00_cluster-version-operator_01_clusterversions-Default.crd.yaml",
		"operator/v1/zz_generated.crd-manifests/0000_70_network_01_networks.crd.yaml",
		"operator/v1/zz_generated.crd-manifests/0000_50_ingress_00_ingresscontrollers.crd.yaml",
	}},
	{module: "istio.io/api", files: []string{"kubernetes/customresourcedefinitions.gen.yaml"},
		groups: []string{"networking.istio.io"}},
	{module: "sigs.k8s.io/gateway-api", files: []string{
		"config/crd/standard/gateway.networking.k8s.io_gatewayclasses.yaml",
		"config/crd/standard/gateway.networking.k8s.io_gateways.yaml",
		"config/crd/standard/gateway.networking.k8s.io_httproutes.yaml",
		"config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml",
	}},
}

// InstallCRDs creates the CRDs of OpenShift config/operator, Istio
// networking and Gateway API, and waits until they are served.
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var names []string
	for _, src := range crdSources {
		dir, err := moduleDir(src.module)
		if err != nil {
			return err
		}
		for _, f := range src.files {
			crds, err := readCRDs(filepath.Join(dir, f), src.groups)
			if err != nil {
				return err
			}
			if f == infrastructuresDefault {
				if err := graftAWSIPFamily(crds[0], filepath.Join(dir, infrastructuresTechPreview)); err != nil {
					return err
				}
			}
			for _, crd := range crds {
				if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					return fmt.Errorf("creating CRD %s from %s: %w", crd.Name, f, err)
				}
				names = append(names, crd.Name)
			}
		}
	}
	return WaitFor(ctx, 30*time.Second, "CRDs to be established", func(ctx context.Context) (bool, error) {
		for _, n := range names {
			crd, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if !established(crd) {
				return false, fmt.Errorf("%s not established yet", n)
			}
		}
		return true, nil
	})
}

const (
	infrastructuresDefault     = "config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_infrastructures-Default.crd.yaml"
	infrastructuresTechPreview = "config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_infrastructures-TechPreviewNoUpgrade.crd.yaml"
)

// graftAWSIPFamily copies status.platformStatus.aws.ipFamily (feature gate
// AWSDualStackInstall, on clusters installed dual-stack) from the
// TechPreviewNoUpgrade Infrastructure schema into the Default one. The
// TechPreview manifest as a whole cannot be used: its CEL rules exceed the
// cost budget of Kubernetes 1.37's apiserver.
func graftAWSIPFamily(dst *apiextensionsv1.CustomResourceDefinition, techPreviewFile string) error {
	src, err := readCRDs(techPreviewFile, nil)
	if err != nil || len(src) != 1 {
		return fmt.Errorf("reading %s: %v", techPreviewFile, err)
	}
	awsProps := func(crd *apiextensionsv1.CustomResourceDefinition) (map[string]apiextensionsv1.JSONSchemaProps, error) {
		for _, v := range crd.Spec.Versions {
			if v.Name != "v1" || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			aws := v.Schema.OpenAPIV3Schema.Properties["status"].Properties["platformStatus"].Properties["aws"]
			if aws.Properties == nil {
				break
			}
			return aws.Properties, nil
		}
		return nil, fmt.Errorf("CRD %s has no v1 status.platformStatus.aws schema", crd.Name)
	}
	from, err := awsProps(src[0])
	if err != nil {
		return err
	}
	ipFamily, ok := from["ipFamily"]
	if !ok {
		return fmt.Errorf("%s has no status.platformStatus.aws.ipFamily", techPreviewFile)
	}
	to, err := awsProps(dst)
	if err != nil {
		return err
	}
	to["ipFamily"] = ipFamily // maps share storage: this edits dst's schema
	return nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

func readCRDs(path string, groups []string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CRD manifests: %w", err)
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*apiextensionsv1.CustomResourceDefinition
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(doc, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		if len(groups) > 0 && !contains(groups, crd.Spec.Group) {
			continue
		}
		out = append(out, &crd)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// moduleDir finds a dependency's directory in the module cache. A program's
// build info names the version; test binaries carry no dependency list, so
// there the go command is asked, from this package's module.
func moduleDir(path string) (string, error) {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path != path {
				continue
			}
			if dep.Replace != nil {
				dep = dep.Replace
			}
			cache, err := goEnv("GOMODCACHE")
			if err != nil {
				return "", err
			}
			dir := filepath.Join(cache, escapeModulePath(dep.Path)+"@"+dep.Version)
			if _, err := os.Stat(dir); err != nil {
				return "", fmt.Errorf("module %s@%s is not in the module cache (run go mod download in test/): %w", dep.Path, dep.Version, err)
			}
			return dir, nil
		}
	}
	_, self, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", path)
	cmd.Dir = filepath.Dir(self)
	out, err := cmd.Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		return "", fmt.Errorf("finding module %s with go list (run go mod download in test/): %v", path, err)
	}
	return dir, nil
}

func goEnv(name string) (string, error) {
	if v := os.Getenv(name); v != "" {
		return v, nil
	}
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// escapeModulePath applies the module cache's case encoding: "A" -> "!a".
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
