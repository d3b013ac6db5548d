package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/services"
)

// Outcomes of `services`, as -o json reports them.
const (
	ServicesPlanned      = "planned"   // --dry-run=client
	ServicesDryRun       = "dry-run"   // --dry-run=server
	ServicesConverted    = "converted" // every planned change made
	ServicesNothingToDo  = "nothing-to-do"
	ServicesBlocked      = "blocked" // the plan has a blocker
	ServicesNotConfirmed = "not-confirmed"
	ServicesFailed       = "failed"
	// --revert's outcomes are the Revert* constants.
)

// ServicesResult is what `services -o json|yaml` prints. Field names are stable.
type ServicesResult struct {
	Outcome string `json:"outcome"`
	Message string `json:"message"`
	// Plan is every selected Service, changed or skipped, and why.
	Plan *services.Plan `json:"plan,omitempty"`
	// Result is what became of each planned change.
	Result *services.Result `json:"result,omitempty"`
	// Revert lists, with --revert, each recorded change taken back.
	Revert  []services.RollbackResult `json:"revert,omitempty"`
	Journal string                    `json:"journal,omitempty"`
}

// ServicesOptions runs `services`.
type ServicesOptions struct {
	Options  services.Options
	Require  bool
	Revert   bool
	Journal  journalFlag
	Mutation *cli.MutationFlags
	Output   *cli.OutputFlags

	inv     Invocation
	factory *kube.Factory
	dryRun  cli.DryRun
	genericiooptions.IOStreams
}

// NewCmdServices builds `services`.
func NewCmdServices(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &ServicesOptions{
		Mutation: cli.NewMutationFlags(),
		Output:   cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		inv:      inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "services",
		Short: "Make the cluster's existing Services dual-stack (cluster DNS and istiod first)",
		Long: `Make existing Services IPv4/IPv6 dual-stack. Kubernetes never does it on
its own: a Service keeps the families it was created with, and a
PreferDualStack Service created while the cluster was single-stack keeps its
one family.

Every selected Service that is SingleStack, or PreferDualStack with one
family, and has a cluster IP (or is headless with a selector) gets
ipFamilyPolicy PreferDualStack (RequireDualStack with --require) and both
families, its own first; only those two fields are patched. Cluster DNS
(openshift-dns/dns-default, kube-system/kube-dns) and istiod go first, then
the rest by namespace and name; every namespace unless -n,
--include-namespaces, --exclude-namespaces or --namespace-selector narrow it.
Skipped, and said why: ExternalName and
headless Services without a selector, the kube-apiserver's own Service, the
Istio ingress gateway (the gateway command changes it with its load
balancer) and Services istiod generates for Gateway API Gateways.

The plan is shown first. The cluster must be able to give a Service an IPv6
cluster IP (a server-side dry run tells): else the plan says to run the
network phase first and nothing is changed. Each change is recorded in the
journal before it is made; a Service that changed since the plan is read
again and judged afresh. --revert gives every changed Service its original
policy, families and cluster IP back (a PreferDualStack Service that had one
family gets that policy back only once the cluster is single-stack again:
until then it is SingleStack, and the revert says so).`,
		Example: fmt.Sprintf(`  %[1]s services --dry-run=client
  %[1]s services --yes
  %[1]s services --namespace-selector team=shop --exclude-namespaces shop-legacy -l 'tier!=frozen' --yes
  %[1]s services --include-namespaces web --require --yes -o json
  %[1]s services --revert --yes`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(cmd); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Require, "require", false, "Use ipFamilyPolicy RequireDualStack instead of PreferDualStack")
	f.StringVar(&o.Options.NamespaceSelector, "namespace-selector", "", "Only namespaces whose labels match this selector (e.g. team=shop)")
	f.StringSliceVar(&o.Options.IncludeNamespaces, "include-namespaces", nil, "Only these namespaces (comma-separated; each must exist)")
	f.StringSliceVar(&o.Options.ExcludeNamespaces, "exclude-namespaces", nil, "Never these namespaces (comma-separated; each must exist)")
	f.StringVarP(&o.Options.Selector, "selector", "l", "", "Only Services whose labels match this selector (e.g. app=web,tier!=frozen)")
	f.BoolVar(&o.Revert, "revert", false, "Give the Services this command changed their original policy, families and cluster IP back (from the journal)")
	o.Journal.add(cmd)
	o.Mutation.AddFlags(cmd)
	o.Output.AddFlags(cmd)
	return cmd
}

// Validate checks the flags, before any cluster is contacted.
func (o *ServicesOptions) Validate(cmd *cobra.Command) error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	d, err := o.Mutation.Strategy()
	if err != nil {
		return err
	}
	o.dryRun = d
	// kubectl's -n scopes a command to one namespace: here it is
	// --include-namespaces of that one, never silently the whole cluster.
	if ns := flagSet(cmd, "namespace"); ns != nil && !o.Revert {
		if len(o.Options.IncludeNamespaces) > 0 {
			return cli.Usagef("-n/--namespace and --include-namespaces both name namespaces: use --include-namespaces %s,...", ns.Value.String())
		}
		o.Options.IncludeNamespaces = []string{ns.Value.String()}
	}
	if o.Revert {
		for _, name := range []string{"namespace", "require", "namespace-selector", "include-namespaces", "exclude-namespaces", "selector"} {
			if flagSet(cmd, name) != nil {
				return cli.Usagef("--revert takes back every change the journal recorded: it takes no --%s", name)
			}
		}
		if d == cli.DryRunServer {
			return cli.Usagef("--revert takes --dry-run=client (the list of what it would undo), not --dry-run=server")
		}
		return nil
	}
	o.Options.Policy = corev1.IPFamilyPolicyPreferDualStack
	if o.Require {
		o.Options.Policy = corev1.IPFamilyPolicyRequireDualStack
	}
	return o.Options.Validate()
}

// flagSet is the flag name (its own or inherited) when the user gave it.
func flagSet(cmd *cobra.Command, name string) *pflag.Flag {
	if cmd == nil {
		return nil
	}
	if f := cmd.Flag(name); f != nil && f.Changed {
		return f
	}
	return nil
}

// Run plans, shows, asks, then applies (or reverts).
func (o *ServicesOptions) Run(ctx context.Context) error {
	kc, err := o.factory.Clients()
	if err != nil {
		return err
	}
	// The journal's namespace is checked before anything is planned.
	store, err := o.Journal.store(ctx, kc.Kube)
	if err != nil {
		return err
	}
	if o.Revert {
		return o.revert(ctx, kc)
	}
	c := &services.Converter{Kube: kc.Kube, Journal: store, Options: o.Options, ServerDryRun: o.dryRun == cli.DryRunServer, Log: o.ErrOut}
	plan, err := c.Plan(ctx)
	if err != nil {
		return err
	}
	res := &ServicesResult{Plan: plan, Journal: store.Location()}
	if !o.Output.Structured() {
		printServicesPlan(o.Out, plan)
	}
	switch {
	case plan.Blocker != "":
		res.Outcome, res.Message = ServicesBlocked, "nothing was changed: "+plan.Blocker
		return o.print(res, errors.New(res.Message))
	case plan.Changes == 0:
		res.Outcome = ServicesNothingToDo
		res.Message = fmt.Sprintf("nothing to do: none of the %d selected Services needs a change", len(plan.Services))
		return o.print(res, nil)
	case o.dryRun == cli.DryRunClient:
		res.Outcome = ServicesPlanned
		res.Message = fmt.Sprintf("dry run (client): %d Services would be changed, %d skipped; nothing was sent", plan.Changes, plan.Skips)
		return o.print(res, nil)
	}
	if o.dryRun == cli.DryRunNone {
		if err := o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("services"), fmt.Sprintf("Change these %d Services?", plan.Changes)); err != nil {
			if errors.Is(err, cli.ErrNotConfirmed) {
				res.Outcome, res.Message = ServicesNotConfirmed, "nothing was changed"
				_ = o.print(res, nil)
			}
			return err
		}
	}
	_, release, err := o.Journal.open(ctx, kc.Kube, o.dryRun, "services")
	if err != nil {
		return err
	}
	defer release()
	result, applyErr := c.Apply(ctx, plan)
	res.Result = result
	switch {
	case applyErr != nil:
		res.Outcome = ServicesFailed
		res.Message = fmt.Sprintf("%v; what was changed is in the journal %s: `%s` takes it back", applyErr, store.Location(), o.inv.Command("services --revert"))
		if ctx.Err() != nil {
			res.Message = "interrupted: " + res.Message
		}
	case o.dryRun == cli.DryRunServer:
		res.Outcome = ServicesDryRun
		res.Message = fmt.Sprintf("dry run (server): the apiserver accepted all %d changes; nothing was stored", result.Changed)
	default:
		res.Outcome = ServicesConverted
		res.Message = fmt.Sprintf("%d Services are dual-stack now", result.Changed)
		if result.Skipped > 0 {
			res.Message += fmt.Sprintf("; %d changed since the plan and no longer needed it", result.Skipped)
		}
	}
	if applyErr != nil {
		return o.print(res, errors.New(res.Message))
	}
	return o.print(res, nil)
}

// revert takes back the changes the journal recorded for this layer.
func (o *ServicesOptions) revert(ctx context.Context, kc *kube.Clients) error {
	r := revertRun{command: "services --revert", what: "Service change", undoable: services.Undoable,
		rollback: func(ctx context.Context, store *journal.Store) ([]journal.UndoResult, error) {
			return services.Rollback(ctx, kc.Kube, store)
		},
		done: "restored the Services this command changed"}
	out, err := r.run(ctx, &o.Journal, kc, o.dryRun, o.Mutation, o.IOStreams, o.Output.Structured(), o.inv)
	if out == nil {
		return err
	}
	res := &ServicesResult{Outcome: out.Outcome, Message: out.Message, Revert: out.Results, Journal: out.Journal}
	if errors.Is(err, cli.ErrNotConfirmed) {
		_ = o.print(res, nil)
		return err
	}
	return o.print(res, err)
}

// print writes the result; a failure was already said, so it exits 1
// without another line (on stderr as well with -o json|yaml).
func (o *ServicesOptions) print(res *ServicesResult, failure error) error {
	return printOutcome(o.Output, o.IOStreams, res, res.Message, failure != nil, func(w io.Writer) {
		if res.Result != nil {
			printServicesResult(w, res.Result)
		}
		if res.Revert != nil && res.Outcome != RevertPlanned && res.Outcome != ServicesNotConfirmed {
			printRevert(w, res.Revert)
		}
	})
}

// printOutcome prints a command's result: -o json|yaml as it is, else the
// body and then the message. A failure was said in the message, so it
// exits 1 without another line (the message goes to stderr as well with
// -o json|yaml).
func printOutcome(out *cli.OutputFlags, streams genericiooptions.IOStreams, res any, message string, failed bool, body func(io.Writer)) error {
	if err := out.Print(streams.Out, res, func(w io.Writer, _ bool) error {
		body(w)
		_, err := fmt.Fprintln(w, message)
		return err
	}); err != nil {
		return err
	}
	if failed {
		if out.Structured() {
			fmt.Fprintln(streams.ErrOut, message)
		}
		return cli.SilentFailure
	}
	return nil
}

func printServicesPlan(w io.Writer, plan *services.Plan) {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "SERVICE\tTYPE\tACTION\tCURRENT\tTARGET\tREASON")
	for _, it := range plan.Services {
		target := "-"
		if it.Target != nil {
			target = it.Target.String()
		}
		reason := it.Reason
		if it.System != "" {
			reason = it.System + ": " + reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Ref(), it.Type, it.Action, it.Current, target, reason)
	}
	_ = tw.Flush()
	for _, it := range plan.Services {
		if it.Action == services.ActionChange && it.RollbackNote != "" {
			fmt.Fprintf(w, "note: %s: %s\n", it.Ref(), it.RollbackNote)
		}
	}
	for _, n := range plan.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "%d to change, %d skipped\n", plan.Changes, plan.Skips)
	if plan.Blocker != "" {
		fmt.Fprintf(w, "blocked: %s\n", plan.Blocker)
	}
}

func printServicesResult(w io.Writer, r *services.Result) {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "\nSERVICE\tSTATUS\tCLUSTER-IPS\tMESSAGE")
	for _, s := range r.Services {
		ips := strings.Join(s.ClusterIPs, ",")
		if ips == "" {
			ips = "-"
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Status, ips, s.Message)
	}
	_ = tw.Flush()
}

func printRevert(w io.Writer, rs []services.RollbackResult) {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "\nRESOURCE\tSTATUS\tMESSAGE")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Resource, r.Status, r.Message)
	}
	_ = tw.Flush()
}
