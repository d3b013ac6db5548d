package mesh

import (
	"strings"
	"testing"
)

// helmMesh is the mesh key as the istiod chart renders it (toYaml of the
// merged meshConfig: keys sorted, two-space indentation).
const helmMesh = `defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  tracing: {}
defaultProviders:
  metrics:
  - prometheus
enablePrometheusMerge: true
rootNamespace: istio-system
trustDomain: cluster.local`

func TestEnableProxyDualStack(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, edit string
	}{
		{name: "chart output, no proxyMetadata", in: helmMesh, edit: EditTextual,
			want: "defaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n  discoveryAddress: istiod.istio-system.svc:15012\n" + helmMesh[len("defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n"):]},
		{name: "proxyMetadata with other variables, comments kept",
			in:   "# mesh\ndefaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: \"true\"   # dns\n  holdApplicationUntilProxyStarts: true\nenableTracing: false\n",
			want: "# mesh\ndefaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n    ISTIO_META_DNS_CAPTURE: \"true\"   # dns\n  holdApplicationUntilProxyStarts: true\nenableTracing: false\n", edit: EditTextual},
		{name: "set to false", in: "defaultConfig:\n    proxyMetadata:\n        ISTIO_DUAL_STACK: \"false\"\n        B: x\n",
			want: "defaultConfig:\n    proxyMetadata:\n        ISTIO_DUAL_STACK: \"true\"\n        B: x\n", edit: EditTextual},
		{name: "empty proxyMetadata", in: "defaultConfig:\n  proxyMetadata: {}\n  tracing: {}\n",
			want: "defaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n  tracing: {}\n", edit: EditTextual},
		{name: "empty defaultConfig", in: "trustDomain: x\ndefaultConfig: {}\n",
			want: "trustDomain: x\ndefaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n", edit: EditTextual},
		{name: "no defaultConfig", in: "trustDomain: cluster.local\n",
			want: "trustDomain: cluster.local\ndefaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n", edit: EditTextual},
		{name: "empty text", in: "", want: "defaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n", edit: EditTextual},
		{name: "an unquoted true is no string", in: "defaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: true\n",
			want: "defaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n", edit: EditTextual},
		{name: "flow style is reformatted", in: `{"defaultConfig": {"proxyMetadata": {"A": "b"}}, "trustDomain": "x"}`,
			want: "defaultConfig:\n  proxyMetadata:\n    A: b\n    ISTIO_DUAL_STACK: \"true\"\ntrustDomain: x\n", edit: EditReformatted},
		{name: "already on", in: "defaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n", want: "defaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EnableProxyDualStack(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Text != tc.want {
				t.Errorf("text:\n%s\nwant:\n%s", got.Text, tc.want)
			}
			if got.Edit != tc.edit || got.Changed != (tc.edit != "") {
				t.Errorf("edit %q changed %v, want %q", got.Edit, got.Changed, tc.edit)
			}
			if got.Changed && got.Edit == EditTextual && !strings.Contains(strings.Join(got.Diff, "\n"), `+`) {
				t.Errorf("diff: %q", got.Diff)
			}
		})
	}
	if _, err := EnableProxyDualStack("defaultConfig: [a, b]\n"); err == nil {
		t.Error("a defaultConfig that is a list was accepted")
	}
	if _, err := EnableProxyDualStack("defaultConfig:\n  a: [\n"); err == nil {
		t.Error("YAML that does not parse was accepted")
	}
}

// Without a trailing newline the last line stays without one.
func TestEnableProxyDualStackLastLine(t *testing.T) {
	got, err := EnableProxyDualStack("defaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"false\"")
	if err != nil {
		t.Fatal(err)
	}
	if want := "defaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\""; got.Text != want {
		t.Errorf("got %q", got.Text)
	}
	got, err = EnableProxyDualStack("trustDomain: x")
	if err != nil {
		t.Fatal(err)
	}
	if want := "trustDomain: x\ndefaultConfig:\n  proxyMetadata:\n    ISTIO_DUAL_STACK: \"true\""; got.Text != want {
		t.Errorf("got %q", got.Text)
	}
}
