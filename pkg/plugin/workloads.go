package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/workloads"
)

// Outcomes of `workloads`, as -o json reports them.
const (
	WorkloadsPlanned      = "planned"
	WorkloadsConverted    = "converted"
	WorkloadsNothingToDo  = "nothing-to-do"
	WorkloadsNotConfirmed = "not-confirmed"
	WorkloadsFailed       = "failed"
)

// WorkloadsResult is what `workloads -o json|yaml` prints. Field names are stable.
type WorkloadsResult struct {
	Outcome string            `json:"outcome"`
	Message string            `json:"message"`
	Plan    *workloads.Plan   `json:"plan,omitempty"`
	Result  *workloads.Result `json:"result,omitempty"`
	// Blocked names the PodDisruptionBudgets that held evictions back.
	Blocked []workloads.PDBStatus `json:"blockedBy,omitempty"`
}

// WorkloadsOptions runs `workloads`.
type WorkloadsOptions struct {
	Options  workloads.Options
	Mutation *cli.MutationFlags
	Output   *cli.OutputFlags

	inv     Invocation
	factory *kube.Factory
	dryRun  cli.DryRun
	genericiooptions.IOStreams
}

// NewCmdWorkloads builds `workloads`.
func NewCmdWorkloads(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &WorkloadsOptions{
		Options:  workloads.Options{MaxUnavailable: 1, Timeout: workloads.DefaultTimeout},
		Mutation: cli.NewMutationFlags(),
		Output:   cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		inv:      inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "workloads",
		Short: "Re-create the pods that have no IPv6 address, through evictions (PodDisruptionBudgets hold)",
		Long: `Re-create every running pod that has no IPv6 pod IP, so that it comes back
with both families: a pod keeps the addresses it started with, and Istio's
proxies read their dual-stack setting when they start.

Pods are evicted through the Eviction API (kubectl drain's helpers), never
deleted, so PodDisruptionBudgets hold: a refused eviction is retried until
--timeout, then the command stops with exit 1 naming the budgets. Order:
cluster DNS, istiod, the gateways, then namespace by namespace; at most
--max-unavailable pods at a time, each batch waiting until the replacements
are Ready with an IPv4 and an IPv6 address. Left alone, each with its
reason in the plan: hostNetwork and static pods, completed and terminating
ones, and pods no controller manages (unless --force, as kubectl drain:
they do not come back). Nothing is journalled: the controllers bring the
pods back, there is nothing to undo.`,
		Example: fmt.Sprintf(`  %[1]s workloads --dry-run=client
  %[1]s workloads --yes
  %[1]s workloads --include-namespaces shop,billing --max-unavailable 2 --yes
  %[1]s workloads --namespace-selector team=web -l 'app!=batch' --timeout 15m --yes -o json`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(cmd); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Options.NamespaceSelector, "namespace-selector", "", "Only namespaces whose labels match this selector")
	f.StringSliceVar(&o.Options.Namespaces, "include-namespaces", nil, "Only these namespaces (comma-separated; each must exist)")
	f.StringSliceVar(&o.Options.ExcludeNamespaces, "exclude-namespaces", nil, "Never these namespaces (comma-separated; each must exist)")
	f.StringVarP(&o.Options.LabelSelector, "selector", "l", "", "Only pods whose labels match this selector")
	f.IntVar(&o.Options.MaxUnavailable, "max-unavailable", o.Options.MaxUnavailable, "How many pods are evicted at once")
	f.BoolVar(&o.Options.Force, "force", false, "Also evict pods no controller manages (they do not come back)")
	f.DurationVar(&o.Options.Timeout, "timeout", o.Options.Timeout, "How long a batch may wait for its evictions and for its replacements")
	o.Mutation.AddFlags(cmd)
	o.Output.AddFlags(cmd)
	return cmd
}

// Validate checks the flags, before any cluster is contacted.
func (o *WorkloadsOptions) Validate(cmd *cobra.Command) error {
	d, err := clientDryRunOnly(o.Output, o.Mutation, "workloads", "")
	if err != nil {
		return err
	}
	o.dryRun = d
	if ns := flagSet(cmd, "namespace"); ns != nil {
		if len(o.Options.Namespaces) > 0 {
			return cli.Usagef("-n/--namespace and --include-namespaces both name namespaces: use --include-namespaces %s,...", ns.Value.String())
		}
		o.Options.Namespaces = []string{ns.Value.String()}
	}
	return o.Options.Validate()
}

// Run plans, shows, asks, then evicts batch by batch.
func (o *WorkloadsOptions) Run(ctx context.Context) error {
	kc, err := o.factory.Clients()
	if err != nil {
		return err
	}
	c := &workloads.Converter{Kube: kc.Kube, Options: o.Options, Log: o.ErrOut}
	plan, err := c.Plan(ctx)
	if err != nil {
		return err
	}
	res := &WorkloadsResult{Plan: plan}
	if !o.Output.Structured() {
		printWorkloadsPlan(o.Out, plan)
	}
	switch {
	case plan.Evicts == 0:
		res.Outcome = WorkloadsNothingToDo
		res.Message = fmt.Sprintf("nothing to do: no selected pod needs re-creating (%d have IPv6, %d left alone)", plan.DualStack, plan.Skips)
		return o.print(res, nil)
	case o.dryRun == cli.DryRunClient:
		res.Outcome = WorkloadsPlanned
		res.Message = fmt.Sprintf("dry run (client): %d pods would be re-created, %d left alone; nothing was sent", plan.Evicts, plan.Skips)
		return o.print(res, nil)
	}
	if err := o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("workloads"), fmt.Sprintf("Evict these %d pods?", plan.Evicts)); err != nil {
		if errors.Is(err, cli.ErrNotConfirmed) {
			res.Outcome, res.Message = WorkloadsNotConfirmed, "nothing was changed"
			_ = o.print(res, nil)
		}
		return err
	}
	result, applyErr := c.Apply(ctx, plan)
	res.Result = result
	if applyErr != nil {
		res.Outcome = WorkloadsFailed
		var blocked *workloads.BlockedError
		if errors.As(applyErr, &blocked) {
			res.Blocked = blocked.PDBs
		}
		res.Message = fmt.Sprintf("%v; the pods moved stay moved: run `%s` again to go on with the rest", applyErr, o.inv.Command("workloads --yes"))
		if ctx.Err() != nil {
			res.Message = "interrupted: " + res.Message
		}
		return o.print(res, errors.New(res.Message))
	}
	res.Outcome = WorkloadsConverted
	res.Message = fmt.Sprintf("%d pods re-created with both families", result.Recreated)
	if result.AlreadyReplaced > 0 {
		res.Message += fmt.Sprintf(", %d found already replaced", result.AlreadyReplaced)
	}
	if result.Removed > 0 {
		res.Message += fmt.Sprintf(", %d without a controller removed (--force)", result.Removed)
	}
	return o.print(res, nil)
}

func (o *WorkloadsOptions) print(res *WorkloadsResult, failure error) error {
	return printOutcome(o.Output, o.IOStreams, res, res.Message, failure != nil, func(w io.Writer) {
		if res.Result != nil {
			tw := printers.GetNewTabWriter(w)
			fmt.Fprintln(tw, "\nNAMESPACE\tMOVED\tLEFT")
			for _, n := range res.Result.Namespaces {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", n.Namespace, len(n.Moved), dashJoin(n.Left))
			}
			_ = tw.Flush()
		}
	})
}

func dashJoin(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func printWorkloadsPlan(w io.Writer, p *workloads.Plan) {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "POD\tOWNER\tGROUP\tACTION\tPDB\tREASON")
	for _, it := range p.Pods {
		owner := "-"
		if it.Owner != nil {
			owner = it.Owner.Kind + "/" + it.Owner.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Ref(), owner, it.Group, it.Action, dashJoin(it.PDBs), it.Reason)
	}
	_ = tw.Flush()
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "%d to re-create, %d left alone, %d already have IPv6\n", p.Evicts, p.Skips, p.DualStack)
}
