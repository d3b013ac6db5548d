package plugin

import (
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// Bad combinations of the migration flags are refused with one line, exit
// 2, before the cluster is contacted.
func TestGatewayMigrationFlagsBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--migrate", "--recreate"}, "--migrate and --recreate cannot be combined"},
		{[]string{"--retire", "--revert"}, "--retire and --revert cannot be combined"},
		{[]string{"--retire-old"}, "--retire-old goes with --migrate"},
		{[]string{"--migrate", "--retire-old", "--retire-after", "-1s"}, "--retire-after must not be negative"},
		{[]string{"--hosted-zone", "Z1"}, "--hosted-zone goes with --migrate"},
	} {
		root := NewRootCmd(InvocationFrom("kubectl-dualstack"), genericiooptions.NewTestIOStreamsDiscard())
		root.SetArgs(append([]string{"gateway", "--kubeconfig", "/nonexistent"}, tc.args...))
		root.SilenceErrors, root.SilenceUsage = true, true
		err := root.Execute()
		if cli.ExitCode(err) != cli.ExitBadUsage || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v (exit %d), want %q", tc.args, err, cli.ExitCode(err), tc.want)
		}
	}
}
