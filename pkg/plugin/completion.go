package plugin

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// newCmdCompletion prints shell completion scripts for the plugin binary.
// `kubectl dualstack <TAB>` itself is served by the kubectl_complete-dualstack
// shim, which calls this binary's hidden __complete command.
func newCmdCompletion(inv Invocation, streams genericiooptions.IOStreams) *cobra.Command {
	shells := []string{"bash", "zsh", "fish", "powershell"}
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: fmt.Sprintf(`Print a completion script for %[1]s.

For "%[2]s <TAB>" inside kubectl's own completion, put the
kubectl_complete-dualstack shim on your PATH ("make install" does; with krew,
see the plugin's caveats); kubectl 1.26 or newer calls it.

To complete the %[1]s executable directly, load the script, e.g. for bash:

  source <(%[1]s completion bash)`, inv.Executable, inv.DisplayName),
		ValidArgs: shells,
		Args: usageArgs(func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("name one shell: %s completion bash|zsh|fish|powershell", inv.DisplayName)
			}
			return cobra.OnlyValidArgs(cmd, args)
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), streams.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(out)
			}
			return cli.Usagef("unknown shell %q: use bash, zsh, fish or powershell", args[0])
		},
	}
}
