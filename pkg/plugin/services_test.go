package plugin

import (
	"strings"
	"testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// Bad flags exit 2 with one line, before any cluster is contacted (the
// kubeconfig here does not exist: reaching for it would be another error).
func TestServicesBadFlagsExit2BeforeTheCluster(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-l", "app in (web"}, "--selector"},
		{[]string{"--namespace-selector", "==x"}, "--namespace-selector"},
		{[]string{"--include-namespaces", "a", "--exclude-namespaces", "a"}, "both in"},
		{[]string{"--include-namespaces", "a,,b"}, "empty name"},
		{[]string{"--revert", "--require"}, "takes no --require"},
		{[]string{"--revert", "-l", "app=web"}, "takes no --selector"},
		{[]string{"--revert", "--dry-run=server"}, "--dry-run=client"},
		{[]string{"--revert", "-n", "shop"}, "takes no --namespace"},
		{[]string{"-n", "shop", "--include-namespaces", "web"}, "-n/--namespace and --include-namespaces"},
		{[]string{"--dry-run=maybe"}, "invalid --dry-run"},
		{[]string{"-o", "wide"}, "unsupported output format"},
	} {
		code, out, errOut := run(t, append([]string{"kubectl-dualstack", "services"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != cli.ExitBadUsage || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || out != "" {
			t.Errorf("%v: code %d, stdout %q, stderr %q (want %q)", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestServicesHelp(t *testing.T) {
	code, out, _ := run(t, "oc-dualstack", "services", "--help")
	for _, want := range []string{"oc dualstack services --revert", "--namespace-selector", "--include-namespaces", "--exclude-namespaces", "-l, --selector", "--require", "--journal-namespace"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("help lacks %q (code %d)", want, code)
		}
	}
}
