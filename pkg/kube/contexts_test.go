package kube

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// Two clusters in two AWS accounts, as `aws eks update-kubeconfig --profile`
// writes them, and a kind cluster with a token.
const fleetKubeconfig = `apiVersion: v1
kind: Config
clusters:
- {name: prod, cluster: {server: "https://prod.example:443"}}
- {name: dev, cluster: {server: "https://dev.example:443"}}
- {name: kind-lab, cluster: {server: "https://127.0.0.1:6443"}}
users:
- name: prod-admin
  user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws, args: [eks, get-token], env: [{name: AWS_REGION, value: us-east-2}, {name: AWS_PROFILE, value: prod}]}}
- name: dev-admin
  user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws, args: [eks, get-token], env: [{name: AWS_PROFILE, value: dev}]}}
- {name: kind, user: {token: t}}
contexts:
- {name: prod, context: {cluster: prod, user: prod-admin}}
- {name: dev, context: {cluster: dev, user: dev-admin}}
- {name: lab, context: {cluster: kind-lab, user: kind}}
current-context: dev
`

func fleetFactory(t *testing.T, timeout string) *Factory {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(fleetKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Timeout = ptr.To(path), ptr.To(timeout)
	return NewFactory(flags)
}

func TestKubeconfigContexts(t *testing.T) {
	k, err := fleetFactory(t, "5").Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Contexts(); !slices.Equal(got, []string{"dev", "lab", "prod"}) {
		t.Fatalf("contexts %v", got)
	}
	if got, err := k.Select([]string{"prod", "lab", "prod"}); err != nil || !slices.Equal(got, []string{"prod", "lab"}) {
		t.Fatalf("select: %v %v", got, err)
	}
	if _, err := k.Select([]string{"staging"}); cli.ExitCode(err) != cli.ExitBadUsage {
		t.Fatalf("unknown context: %v, want exit 2", err)
	}
	// Each context resolves to its own AWS account's profile.
	for name, want := range map[string]ContextInfo{
		"prod": {Name: "prod", Cluster: "prod", Server: "https://prod.example:443", AWSProfile: "prod"},
		"dev":  {Name: "dev", Cluster: "dev", Server: "https://dev.example:443", AWSProfile: "dev"},
		"lab":  {Name: "lab", Cluster: "kind-lab", Server: "https://127.0.0.1:6443"},
	} {
		if got := k.Info(name); got != want {
			t.Errorf("Info(%s) = %+v, want %+v", name, got, want)
		}
	}
	if d, err := k.RequestTimeout(); err != nil || d != 5*time.Second {
		t.Fatalf("--request-timeout 5: %v %v", d, err)
	}
	c, err := k.Clients("lab")
	if err != nil || c.Config.Host != "https://127.0.0.1:6443" || c.Config.Timeout != 5*time.Second || c.Config.BearerToken != "t" {
		t.Fatalf("clients of lab: %+v %v", c, err)
	}
}

func TestFactoryAWSProfile(t *testing.T) {
	f := fleetFactory(t, "0")
	if got := f.AWSProfile(); got != "dev" {
		t.Fatalf("current context dev: profile %q", got)
	}
	f.flags.Context = ptr.To("prod")
	if got := f.AWSProfile(); got != "prod" {
		t.Fatalf("--context prod: profile %q", got)
	}
	f.flags.Context = ptr.To("lab")
	if got := f.AWSProfile(); got != "" {
		t.Fatalf("--context lab (a token): profile %q", got)
	}
}

func TestRequestTimeoutIsBadInput(t *testing.T) {
	k, err := fleetFactory(t, "soon").Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.RequestTimeout(); cli.ExitCode(err) != cli.ExitBadUsage {
		t.Fatalf("--request-timeout soon: %v, want exit 2", err)
	}
}
