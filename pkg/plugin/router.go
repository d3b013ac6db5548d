package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/router"
)

// Outcomes of `router`, as -o json reports them.
const (
	RouterPlanned      = "planned" // --dry-run=client
	RouterChanged      = "changed"
	RouterNothingToDo  = "nothing-to-do"
	RouterNotConfirmed = "not-confirmed"
	RouterFailed       = "failed"
)

// RouterResult is what `router -o json|yaml` prints. Field names are stable.
type RouterResult struct {
	Outcome string               `json:"outcome"`
	Message string               `json:"message"`
	Plan    *router.Plan         `json:"plan,omitempty"`
	Result  *router.Result       `json:"result,omitempty"`
	Revert  []journal.UndoResult `json:"revert,omitempty"`
	Journal string               `json:"journal,omitempty"`
}

// RouterOptions runs `router`.
type RouterOptions struct {
	Timeout  time.Duration
	Revert   bool
	Journal  journalFlag
	Mutation *cli.MutationFlags
	Output   *cli.OutputFlags

	inv     Invocation
	factory *kube.Factory
	dryRun  cli.DryRun
	genericiooptions.IOStreams
}

// NewCmdRouter builds `router`.
func NewCmdRouter(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &RouterOptions{
		Timeout: 10 * time.Minute, Mutation: cli.NewMutationFlags(),
		Output: cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		inv:    inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "router",
		Short: "OpenShift: move the default router (*.apps, console, OAuth) from its Classic ELB to an NLB",
		Long: fmt.Sprintf(`OpenShift's default IngressController (openshift-ingress-operator/default)
serves *.apps, the console and OAuth through the Service
openshift-ingress/router-default, behind a Classic ELB unless told otherwise.
A Classic ELB cannot serve IPv6 in a VPC, so *.apps stays IPv4-only.

This command makes the supported change: it patches the IngressController's
spec.endpointPublishingStrategy.loadBalancer.providerParameters to
{type: AWS, aws: {type: NLB}} (with the resourceVersion it read: an
IngressController changed since is refused). It never touches the router
Service, which the ingress operator owns: the operator deletes and re-creates
it, and the command waits (--timeout) until the new Service has its NLB.
*.apps, the console and OAuth are unreachable for minutes, and the router's
hostname changes. The new NLB is IPv4 until '%[1]s aws apply' makes it
dualstack. upgrade runs it only with --phases ...,router.

The previous providerParameters are journalled first; '%[1]s router --revert'
(or rollback) puts them back exactly, and the operator re-creates the
Service behind a Classic ELB again (another outage, another hostname).`, inv.DisplayName),
		Example: fmt.Sprintf(`  %[1]s router --dry-run=client
  %[1]s router --yes --timeout 15m
  %[1]s router --revert --yes`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := clientDryRunOnly(o.Output, o.Mutation, "router", "the ingress operator's re-creation of the Service cannot be dry-run")
			if err != nil {
				return err
			}
			if o.Timeout <= 0 {
				return cli.Usagef("--timeout must be positive, e.g. --timeout 10m")
			}
			o.dryRun = d
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for the ingress operator to re-create the router Service with its new load balancer")
	cmd.Flags().BoolVar(&o.Revert, "revert", false, "Put back the IngressController's previous providerParameters (from the journal)")
	o.Journal.add(cmd)
	o.Mutation.AddFlags(cmd)
	o.Output.AddFlags(cmd)
	return cmd
}

// Run plans, shows, asks, then patches (or reverts).
func (o *RouterOptions) Run(ctx context.Context) error {
	kc, err := o.factory.Clients()
	if err != nil {
		return err
	}
	store, err := o.Journal.store(ctx, kc.Kube)
	if err != nil {
		return err
	}
	changer := &router.Changer{Kube: kc.Kube, Dynamic: kc.Dynamic, Journal: store, Timeout: o.Timeout,
		Progress: func(msg string) { fmt.Fprintln(o.ErrOut, msg) }}
	if o.Revert {
		r := revertRun{command: "router --revert", what: "IngressController change", undoable: router.Undoable,
			rollback: func(ctx context.Context, _ *journal.Store) ([]journal.UndoResult, error) {
				return changer.Rollback(ctx)
			},
			done: "restored the default IngressController's previous providerParameters"}
		out, err := r.run(ctx, &o.Journal, kc, o.dryRun, o.Mutation, o.IOStreams, o.Output.Structured(), o.inv)
		if out == nil {
			return err
		}
		res := &RouterResult{Outcome: out.Outcome, Message: out.Message, Revert: out.Results, Journal: out.Journal}
		if errors.Is(err, cli.ErrNotConfirmed) {
			_ = o.print(res, nil)
			return err
		}
		return o.print(res, err)
	}
	st, err := router.Read(ctx, kc.Kube, kc.Dynamic)
	if err != nil {
		return kube.Explain("reading the default router", err)
	}
	plan := router.MakePlan(st)
	res := &RouterResult{Plan: plan, Journal: store.Location()}
	if !o.Output.Structured() {
		fmt.Fprintln(o.Out, plan.Summary)
		if plan.Patch != "" {
			fmt.Fprintf(o.Out, "  merge patch: %s\n", plan.Patch)
		}
		for _, n := range plan.Notes {
			fmt.Fprintf(o.Out, "  note: %s\n", n)
		}
	}
	switch {
	case plan.Action != router.ActionChange:
		res.Outcome, res.Message = RouterNothingToDo, "nothing to do: "+plan.Summary
		return o.print(res, nil)
	case o.dryRun == cli.DryRunClient:
		res.Outcome, res.Message = RouterPlanned, "dry run (client): the plan only, nothing was changed"
		return o.print(res, nil)
	}
	if err := o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("router"), "Patch the IngressController (minutes of *.apps outage, a new hostname)?"); err != nil {
		if errors.Is(err, cli.ErrNotConfirmed) {
			res.Outcome, res.Message = RouterNotConfirmed, "nothing was changed"
			_ = o.print(res, nil)
		}
		return err
	}
	_, release, err := o.Journal.open(ctx, kc.Kube, o.dryRun, "router")
	if err != nil {
		return err
	}
	defer release()
	result, err := changer.Apply(ctx, plan)
	res.Result = result
	if err != nil {
		res.Outcome = RouterFailed
		res.Message = fmt.Sprintf("%v; `%s` puts the previous providerParameters back", err, o.inv.Command("router --revert --yes"))
		return o.print(res, errors.New(res.Message))
	}
	res.Outcome = RouterChanged
	res.Message = result.Message + fmt.Sprintf("; the NLB is IPv4 until `%s` makes it dualstack", o.inv.Command("aws apply"))
	return o.print(res, nil)
}

func (o *RouterOptions) print(res *RouterResult, failure error) error {
	return printOutcome(o.Output, o.IOStreams, res, res.Message, failure != nil, func(w io.Writer) {
		if res.Revert != nil && res.Outcome != RevertPlanned && res.Outcome != RouterNotConfirmed {
			printRevert(w, res.Revert)
		}
	})
}
