package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// RollbackOptions runs the top-level `rollback`.
type RollbackOptions struct {
	Target   awsTargetFlags
	Timeout  time.Duration
	Mutation *cli.MutationFlags
	Output   *cli.OutputFlags

	inv     Invocation
	factory *kube.Factory
	dryRun  cli.DryRun
	genericiooptions.IOStreams
}

// RollbackResult is what `rollback -o json|yaml` prints.
type RollbackResult = convert.RollbackResult

// RollbackEntry is one recorded change to take back.
type RollbackEntry = convert.RollbackEntry

// NewCmdRollback builds `rollback`.
func NewCmdRollback(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &RollbackOptions{
		Timeout: 10 * time.Minute, Mutation: cli.NewMutationFlags(),
		Output: cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		inv:    inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Undo everything the journal recorded, every layer, newest first",
		Long: fmt.Sprintf(`Take back, in reverse order, every change the journal recorded: the
default IngressController's previous providerParameters (router), the
gateway Service (the inverse of its patch, or the original Service in place
of a re-created one), the NetworkPolicies' original specs (policies apply),
the IPv6 entries network added to the cluster network
(then wait for the network operator), and the AWS changes (as '%[1]s aws
rollback'). Nothing that was there before is touched. The same
plan/confirm/dry-run conventions as every mutating command; the per-layer
forms are '%[1]s network --revert' and '%[1]s aws rollback'.`, inv.DisplayName),
		Example: fmt.Sprintf(`  %[1]s rollback --dry-run=client
  %[1]s rollback --yes -o json`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Output.Validate(); err != nil {
				return err
			}
			d, err := o.Mutation.Strategy()
			if err != nil {
				return err
			}
			if d == cli.DryRunServer {
				return cli.Usagef("rollback takes --dry-run=client (the list of what it would undo): most undo operations have no server-side dry run")
			}
			if o.Timeout <= 0 {
				return cli.Usagef("--timeout must be positive, e.g. --timeout 10m")
			}
			o.dryRun = d
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "How long each layer may wait (a Service being deleted, the network operator, AWS)")
	o.Target.addFlags(cmd)
	o.Target.addJournalFlag(cmd)
	o.Mutation.AddFlags(cmd)
	o.Output.AddFlags(cmd)
	return cmd
}

// Run plans the rollback from the journal, asks, then undoes layer by layer.
func (o *RollbackOptions) Run(ctx context.Context) error {
	kc, err := o.factory.Clients()
	if err != nil {
		return err
	}
	store, release, err := o.Target.Journal.open(ctx, kc.Kube, o.dryRun, "rollback")
	if err != nil {
		return err
	}
	defer release()
	rb := &convert.Rollback{Clients: kc, Journal: store, Target: o.Target.target(), Timeout: o.Timeout,
		Tool: o.inv.DisplayName, Log: o.ErrOut, Progress: cli.NewProgress(o.ErrOut)}
	res, err := rb.Plan(ctx)
	if err != nil {
		return err
	}
	if len(res.Changes) == 0 {
		res.Outcome = "nothing-to-do"
		res.Message = fmt.Sprintf("nothing to roll back: the journal %s has no change that is not undone", store.Location())
		return o.print(res, nil)
	}
	if !o.Output.Structured() {
		printRollbackTable(o.Out, res, true)
	}
	if o.dryRun == cli.DryRunClient {
		res.Outcome, res.Message = "dry-run", "dry run (client): the list only, nothing was changed"
		return o.print(res, nil)
	}
	if err := o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("rollback"), fmt.Sprintf("Undo these %d changes?", len(res.Changes))); err != nil {
		if errors.Is(err, cli.ErrNotConfirmed) {
			res.Outcome, res.Message = "not-confirmed", "nothing was changed"
			_ = o.print(res, nil)
		}
		return err
	}
	return o.print(res, rb.Apply(ctx, res))
}

func (o *RollbackOptions) print(res *RollbackResult, err error) error {
	if perr := o.Output.Print(o.Out, res, func(w io.Writer, _ bool) error {
		if res.Outcome != "dry-run" && res.Outcome != "nothing-to-do" && res.Outcome != "not-confirmed" {
			printRollbackTable(w, res, false)
		}
		_, err := fmt.Fprintln(w, res.Message)
		return err
	}); perr != nil {
		return perr
	}
	if err != nil {
		if o.Output.Structured() {
			fmt.Fprintln(o.ErrOut, res.Message)
		}
		return cli.SilentFailure
	}
	return nil
}

func printRollbackTable(w io.Writer, res *RollbackResult, plan bool) {
	if plan {
		fmt.Fprintf(w, "Rollback from the journal %s: undo %d changes, in this order\n", res.Journal, len(res.Changes))
	}
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "\nLAYER\tOPERATION TO UNDO\tRESOURCE\tSTATUS\tMESSAGE")
	for _, c := range res.Changes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Layer, c.Operation, c.Resource, c.Status, c.Message)
	}
	_ = tw.Flush()
}
