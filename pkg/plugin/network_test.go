package plugin

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// Bad flags are usage errors (exit 2) before any cluster is contacted.
func TestNetworkFlagErrorsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-network", "10.0.0.0/8"}, "not an IPv6 range"},
		{[]string{"--host-prefix", "48"}, "--host-prefix 48"},
		{[]string{"--service-network", "fd02::/64"}, "between /108"},
		{[]string{"--revert", "--cluster-network", "fd01::/48"}, "--revert removes what the journal recorded"},
		{[]string{"--revert", "--force"}, "takes no"},
		{[]string{"--dry-run=maybe"}, "invalid --dry-run"},
		{[]string{"-o", "wide"}, "unsupported output format"},
		{[]string{"--timeout", "0s"}, "--timeout must be positive"},
	} {
		var out, errOut bytes.Buffer
		streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
		args := append([]string{"kubectl-dualstack", "network", "--kubeconfig", "/nonexistent"}, tc.args...)
		code := Main(context.Background(), args, streams)
		if code != cli.ExitBadUsage || !strings.Contains(errOut.String(), tc.want) || !strings.Contains(errOut.String(), "kubectl dualstack network --help") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
