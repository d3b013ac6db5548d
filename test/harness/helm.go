package harness

import (
	"context"
	"fmt"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// HelmIstiodRelease is the release name of the Helm-installed istiod, as
// Istio's install guide names it (`helm install istiod istio/istiod -n
// istio-system`).
const HelmIstiodRelease = "istiod"

// istiodChartValues are the defaults of the istiod chart's values this
// harness renders (github.com/istio/istio manifests/charts/istio-control/
// istio-discovery/values.yaml: pilot.env, pilot.ipFamilyPolicy,
// pilot.ipFamilies, meshConfig, global.hub/tag).
const istiodChartValues = `
pilot:
  image: pilot
  env: {}
  ipFamilyPolicy: ""
  ipFamilies: []
meshConfig:
  defaultConfig:
    discoveryAddress: istiod.istio-system.svc:15012
global:
  hub: docker.io/istio
  tag: ""
`

// The templates render what the istiod chart renders of what the plugin
// reads and changes, the same way (templates/deployment.yaml: the
// discovery container's env from pilot.env, one name/value per key;
// templates/configmap.yaml: the mesh config as toYaml of meshConfig under
// the key "mesh"; templates/service.yaml: ipFamilyPolicy and ipFamilies
// only when set), with the chart's labels.
var istiodChartTemplates = map[string]string{
	"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod
  namespace: {{ .Release.Namespace }}
  labels:
    app: istiod
    istio: pilot
    istio.io/rev: default
    release: {{ .Release.Name }}
    operator.istio.io/component: Pilot
    install.operator.istio.io/owning-resource: unknown
spec:
  selector:
    matchLabels:
      app: istiod
      istio.io/rev: default
  template:
    metadata:
      labels:
        app: istiod
        istio: pilot
        istio.io/rev: default
    spec:
      containers:
      - name: discovery
        image: "{{ .Values.global.hub }}/{{ .Values.pilot.image }}:{{ .Values.global.tag | default .Chart.AppVersion }}"
        env:
        - name: PILOT_ENABLE_GATEWAY_API
          value: "true"
{{- range $key, $val := .Values.pilot.env }}
        - name: {{ $key }}
          value: "{{ $val }}"
{{- end }}
`,
	"templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: {{ .Release.Namespace }}
  labels:
    istio.io/rev: default
    release: {{ .Release.Name }}
data:
  mesh: |-
{{ toYaml .Values.meshConfig | indent 4 }}
`,
	"templates/service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: istiod
  namespace: {{ .Release.Namespace }}
  labels:
    app: istiod
    istio: pilot
    istio.io/rev: default
    release: {{ .Release.Name }}
spec:
  ports:
  - name: grpc-xds
    port: 15010
  - name: https-dns
    port: 15012
  - name: https-webhook
    port: 443
    targetPort: 15017
  selector:
    app: istiod
    istio: pilot
{{- if .Values.pilot.ipFamilyPolicy }}
  ipFamilyPolicy: {{ .Values.pilot.ipFamilyPolicy }}
{{- end }}
{{- if .Values.pilot.ipFamilies }}
  ipFamilies:
{{- range .Values.pilot.ipFamilies }}
  - {{ . }}
{{- end }}
{{- end }}
`,
}

// IstiodChart is the istiod chart this harness installs, at an Istio
// version.
func IstiodChart(version string) (*chart.Chart, error) {
	var values map[string]any
	if err := yaml.Unmarshal([]byte(istiodChartValues), &values); err != nil {
		return nil, err
	}
	c := &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "istiod", Version: version, AppVersion: version,
			Description: "Helm chart for istio control plane (the parts kubectl-dualstack reads)", Type: "application"},
		Values: values,
	}
	for _, name := range []string{"templates/deployment.yaml", "templates/configmap.yaml", "templates/service.yaml"} {
		c.Templates = append(c.Templates, &chart.File{Name: name, Data: []byte(istiodChartTemplates[name])})
	}
	return c, nil
}

// HelmConfig is the Helm SDK's configuration for the releases of a
// namespace of the cluster behind kubeconfig, stored where helm stores
// them by default (Secrets).
func HelmConfig(kubeconfig, namespace string) (*action.Configuration, error) {
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &kubeconfig
	flags.Namespace = &namespace
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, namespace, "secret", func(string, ...any) {}); err != nil {
		return nil, err
	}
	return cfg, nil
}

// InstallHelmIstiod installs istiod with Helm's SDK, as `helm install
// istiod istio/istiod -n istio-system --set global.tag=<version>` would:
// a real release record (a Secret of type helm.sh/release.v1) and the
// objects the chart renders, created by Helm's own client, single-stack.
func InstallHelmIstiod(ctx context.Context, kubeconfig string, kc kubernetes.Interface, version string) (*release.Release, error) {
	if err := EnsureNamespace(ctx, kc, IstioNamespace, nil); err != nil {
		return nil, err
	}
	ch, err := IstiodChart(version)
	if err != nil {
		return nil, err
	}
	cfg, err := HelmConfig(kubeconfig, IstioNamespace)
	if err != nil {
		return nil, err
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = HelmIstiodRelease, IstioNamespace
	rel, err := in.RunWithContext(ctx, ch, map[string]any{"global": map[string]any{"tag": version}})
	if err != nil {
		return nil, fmt.Errorf("helm install of istiod: %w", err)
	}
	return rel, nil
}
