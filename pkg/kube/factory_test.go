package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: t}}]
current-context: x
`

// A kubeconfig the user named wrongly is bad input (exit 2), whether the
// file or the context is missing; a good one builds clients.
func TestFactoryBadKubeconfigIsBadInput(t *testing.T) {
	good := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(good, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, context, want string
	}{
		{"missing file", filepath.Join(t.TempDir(), "nope"), "", "no such file"},
		{"unknown context", good, "nope", `context "nope" does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags := genericclioptions.NewConfigFlags(false)
			flags.KubeConfig, flags.Context = ptr.To(tc.path), ptr.To(tc.context)
			f := NewFactory(flags)
			_, err := f.Clients()
			if cli.ExitCode(err) != cli.ExitBadUsage || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--kubeconfig") {
				t.Errorf("Clients: %v (exit %d), want exit 2 naming %q", err, cli.ExitCode(err), tc.want)
			}
			if _, err := f.Namespace(); cli.ExitCode(err) != cli.ExitBadUsage {
				t.Errorf("Namespace: %v, want exit 2", err)
			}
		})
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = ptr.To(good)
	if c, err := NewFactory(flags).Clients(); err != nil || c.Kube == nil {
		t.Fatalf("good kubeconfig: %v", err)
	}
}
