// Package plugin holds the cobra commands of kubectl-dualstack. Each command
// has an Options struct with Complete, Validate and Run; streams are injected
// and nothing here exits the process.
package plugin

import (
	"context"
	goflag "flag"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	// Client auth plugins (exec, OIDC), so any kubeconfig kubectl accepts works.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Invocation is how the binary was called: its executable name and the name
// users type, which help and messages repeat back to them.
type Invocation struct {
	Executable  string // kubectl-dualstack or oc-dualstack
	DisplayName string // "kubectl dualstack" or "oc dualstack"
}

// InvocationFrom derives the names from argv[0]: installed (or linked) as
// oc-dualstack the binary speaks as "oc dualstack", otherwise as kubectl's.
func InvocationFrom(argv0 string) Invocation {
	// Either separator: a Windows path may be seen by a binary built elsewhere.
	base := argv0[strings.LastIndexAny(argv0, `/\`)+1:]
	base = strings.TrimSuffix(base, ".exe")
	if strings.HasPrefix(base, "oc-") || strings.HasPrefix(base, "oc_complete-") {
		return Invocation{Executable: "oc-dualstack", DisplayName: "oc dualstack"}
	}
	return Invocation{Executable: "kubectl-dualstack", DisplayName: "kubectl dualstack"}
}

// Command returns the full command line for a subcommand, for messages.
func (i Invocation) Command(sub string) string {
	if sub == "" {
		return i.DisplayName
	}
	return i.DisplayName + " " + sub
}

// Main runs the plugin with args (args[0] is the program) and returns the
// process exit code. Errors are printed once, on one line, on stderr.
func Main(ctx context.Context, args []string, streams genericiooptions.IOStreams) int {
	inv := InvocationFrom(args[0])
	root := NewRootCmd(inv, streams)
	root.SetArgs(args[1:])
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return cli.ExitOK
	}
	if err != cli.SilentFailure {
		msg := err.Error()
		if cli.ExitCode(err) == cli.ExitBadUsage && cmd != nil {
			msg += fmt.Sprintf("; see '%s --help'", cmd.CommandPath())
		}
		fmt.Fprintf(streams.ErrOut, "error: %s\n", msg)
	}
	if ctx.Err() != nil {
		return cli.ExitFailed
	}
	return cli.ExitCode(err)
}

// hiddenKubeFlags are kubectl global flags that mean nothing to this plugin.
var hiddenKubeFlags = []string{"cache-dir", "username", "password", "disable-compression"}

// NewRootCmd builds the command tree.
func NewRootCmd(inv Invocation, streams genericiooptions.IOStreams) *cobra.Command {
	kubeFlags := genericclioptions.NewConfigFlags(true)
	clients := kube.NewFactory(kubeFlags)

	root := &cobra.Command{
		Use:   inv.Executable,
		Short: "Convert a Kubernetes cluster on AWS to IPv4/IPv6 dual-stack for Istio, and prove it",
		Long: fmt.Sprintf(`%[1]s converts a cluster on AWS (OpenShift, kubeadm, kind) from IPv4-only to
IPv4/IPv6 dual-stack for an Istio service mesh, layer by layer, and proves the result.

It uses the current kubeconfig context and the standard AWS credentials chain.
Start with a read-only look:

  %[1]s status`, inv.DisplayName),
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: inv.DisplayName},
		Args:        usageArgs(cobra.NoArgs),
		// Usage is for usage errors only; those exit 2 with one line that
		// points at --help, so cobra's own printing is off.
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cli.UsageError{Err: err} })

	flags := root.PersistentFlags()
	kubeFlags.AddFlags(flags)
	for _, name := range hiddenKubeFlags {
		_ = flags.MarkHidden(name)
	}
	addKlogFlags(flags)

	root.AddCommand(
		NewCmdStatus(inv, streams, clients),
		NewCmdAWS(inv, streams, clients),
		NewCmdNodes(inv, streams, clients),
		NewCmdNetwork(inv, streams, clients),
		NewCmdWorkloads(inv, streams, clients),
		NewCmdGateway(inv, streams, clients),
		NewCmdDNS(inv, streams, clients),
		NewCmdMesh(inv, streams, clients),
		NewCmdServices(inv, streams, clients),
		NewCmdPolicies(inv, streams, clients),
		NewCmdRouter(inv, streams, clients),
		NewCmdUpgrade(inv, streams, clients),
		NewCmdRollback(inv, streams, clients),
		NewCmdValidate(inv, streams, clients),
		NewCmdProbe(inv, streams, clients),
		NewCmdVersion(inv, streams),
	)
	root.AddCommand(newCmdCompletion(inv, streams))
	// cobra's default completion command would ignore the display name.
	root.CompletionOptions.DisableDefaultCmd = true
	return root
}

// addKlogFlags adds klog's flags so -v works like kubectl's; the rest are
// accepted for scripts that pass them, but hidden.
func addKlogFlags(flags *pflag.FlagSet) {
	gofs := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(gofs)
	gofs.VisitAll(func(f *goflag.Flag) {
		pf := pflag.PFlagFromGoFlag(f)
		if flags.Lookup(pf.Name) != nil {
			return
		}
		if pf.Name != "v" {
			pf.Hidden = true
		}
		flags.AddFlag(pf)
	})
}

// usageArgs makes an argument-count error a usage error (exit 2).
// namedArgs wants exactly the arguments named (as the Use line names
// them), and says which is missing or how many are too many, in this
// suite's words (exit 2).
func namedArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return cli.Usagef("%s needs %s: missing %s (usage: %s)", cmd.CommandPath(), strings.Join(names, " "), strings.Join(names[len(args):], " "), cmd.UseLine())
		case len(args) > len(names):
			return cli.Usagef("%s takes %s, got %d arguments: %q (usage: %s)", cmd.CommandPath(), strings.Join(names, " "), len(args), args, cmd.UseLine())
		}
		return nil
	}
}

func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &cli.UsageError{Err: err}
		}
		return nil
	}
}
