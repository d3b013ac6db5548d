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
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/policies"
)

// Outcomes of `policies plan|apply`, as -o json reports them.
const (
	PoliciesPlanned      = "planned" // plan, or apply --dry-run=client
	PoliciesDryRun       = "dry-run" // --dry-run=server
	PoliciesConverted    = "converted"
	PoliciesNothingToDo  = "nothing-to-do"
	PoliciesNotConfirmed = "not-confirmed"
	PoliciesFailed       = "failed"
	// apply --revert's outcomes are the Revert* constants.
)

// PoliciesResult is what `policies plan|apply -o json|yaml` prints. Field
// names are stable.
type PoliciesResult struct {
	Outcome string           `json:"outcome"`
	Message string           `json:"message"`
	Plan    *policies.Plan   `json:"plan,omitempty"`
	Result  *policies.Result `json:"result,omitempty"`
	// Revert lists, with apply --revert, each recorded change taken back.
	Revert  []journal.UndoResult `json:"revert,omitempty"`
	Journal string               `json:"journal,omitempty"`
}

// PoliciesOptions runs `policies plan` and `policies apply`.
type PoliciesOptions struct {
	Namespaces kube.NamespaceSelection
	Target     awsTargetFlags
	Revert     bool
	Mutation   *cli.MutationFlags
	Output     *cli.OutputFlags

	apply   bool
	inv     Invocation
	factory *kube.Factory
	dryRun  cli.DryRun
	genericiooptions.IOStreams
}

// NewCmdPolicies builds `policies plan|apply`.
func NewCmdPolicies(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policies",
		Short: "NetworkPolicies: the IPv6 twin of each IPv4 ipBlock (plan, apply)",
		Long: fmt.Sprintf(`NetworkPolicies written for an IPv4-only cluster name IPv4 CIDRs only. Once
pods have IPv6, what such a policy allows over IPv4 is blocked over IPv6; and a
policy that keeps pods from the instance metadata service
(0.0.0.0/0 except 169.254.169.254/32) does not keep them from fd00:ec2::254,
where AWS serves it when the instance's HttpProtocolIpv6 is enabled, once
someone adds ::/0 to it.

'%[1]s policies plan' names each NetworkPolicy with an IPv4 ipBlock
and its IPv6 twin, the same shape in the other family: 0.0.0.0/0 -> ::/0,
169.254.169.254/32 -> fd00:ec2::254/128, the cluster's pod, service and VPC
ranges -> their IPv6 ranges (once the cluster has them). Any other CIDR is
reported, never invented; a block whose except list cannot be mapped whole
gets no twin (it would allow more over IPv6 than the block does over IPv4).
'%[1]s policies apply' adds the twins next to their IPv4 blocks, in the
same rules; nothing else of a policy changes. It never runs on its own:
upgrade runs it only with --phases ...,policies.

Each policy is updated with the resourceVersion the plan read (one changed
since is refused, never overwritten), its original spec journalled first;
'%[1]s policies apply --revert' (or rollback) puts each original back.`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCmdPoliciesSub(inv, streams, factory, false), newCmdPoliciesSub(inv, streams, factory, true))
	return cmd
}

func newCmdPoliciesSub(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory, apply bool) *cobra.Command {
	o := &PoliciesOptions{
		Mutation: cli.NewMutationFlags(),
		Output:   cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		apply:    apply, inv: inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Name each NetworkPolicy with an IPv4 ipBlock and the IPv6 twin it would get (read-only)",
		Example: fmt.Sprintf(`  %[1]s policies plan
  %[1]s policies plan --include-namespaces shop -o json`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(cmd); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	if apply {
		cmd.Use = "apply"
		cmd.Short = "Add the IPv6 twins of the NetworkPolicies' IPv4 ipBlocks (plan, confirm, apply); --revert takes them back"
		cmd.Example = fmt.Sprintf(`  %[1]s policies apply --dry-run=client
  %[1]s policies apply --yes
  %[1]s policies apply --exclude-namespaces legacy --yes -o json
  %[1]s policies apply --revert --yes`, inv.DisplayName)
		cmd.Flags().BoolVar(&o.Revert, "revert", false, "Put back the original spec of every NetworkPolicy this command changed (from the journal)")
		o.Mutation.AddFlags(cmd)
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Namespaces.Include, "include-namespaces", nil, "Only these namespaces (comma-separated; each must exist)")
	f.StringSliceVar(&o.Namespaces.Exclude, "exclude-namespaces", nil, "Never these namespaces (comma-separated; each must exist)")
	f.StringVar(&o.Namespaces.Selector, "namespace-selector", "", "Only namespaces whose labels match this selector (e.g. team=shop)")
	o.Target.addFlags(cmd)
	o.Target.addJournalFlag(cmd)
	o.Output.AddFlags(cmd)
	return cmd
}

// Validate checks the flags, before any cluster is contacted.
func (o *PoliciesOptions) Validate(cmd *cobra.Command) error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	d, err := o.Mutation.Strategy()
	if err != nil {
		return err
	}
	o.dryRun = d
	if err := o.Target.validate(); err != nil {
		return err
	}
	if ns := flagSet(cmd, "namespace"); ns != nil && !o.Revert {
		if len(o.Namespaces.Include) > 0 {
			return cli.Usagef("-n/--namespace and --include-namespaces both name namespaces: use --include-namespaces %s,...", ns.Value.String())
		}
		o.Namespaces.Include = []string{ns.Value.String()}
	}
	if o.Revert {
		for _, name := range []string{"namespace", "include-namespaces", "exclude-namespaces", "namespace-selector"} {
			if flagSet(cmd, name) != nil {
				return cli.Usagef("--revert takes back every change the journal recorded: it takes no --%s", name)
			}
		}
		if d == cli.DryRunServer {
			return cli.Usagef("--revert takes --dry-run=client (the list of what it would undo), not --dry-run=server")
		}
		return nil
	}
	return o.Namespaces.Validate("")
}

// Run plans, shows, and for apply asks, then applies (or reverts).
func (o *PoliciesOptions) Run(ctx context.Context) error {
	kc, err := o.factory.Clients()
	if err != nil {
		return err
	}
	store, err := o.Target.Journal.store(ctx, kc.Kube)
	if err != nil {
		return err
	}
	if o.Revert {
		return o.revert(ctx, kc)
	}
	facts, err := convert.Gather(ctx, kc)
	if err != nil {
		return err
	}
	rs, notes, err := convert.PolicyRanges(ctx, facts, o.Target.target(), o.inv.Command)
	if err != nil {
		return err
	}
	plan, err := policies.MakePlan(ctx, kc.Kube, rs, o.Namespaces)
	if err != nil {
		return err
	}
	plan.Notes = append(notes, plan.Notes...)
	res := &PoliciesResult{Plan: plan, Journal: store.Location()}
	if !o.Output.Structured() {
		printPoliciesPlan(o.Out, plan)
	}
	switch {
	case plan.Changes == 0:
		res.Outcome = PoliciesNothingToDo
		res.Message = fmt.Sprintf("nothing to add: every IPv4 ipBlock of the %d NetworkPolicies that have one has its IPv6 twin, or none can be derived (%d reported)", len(plan.Policies), plan.Unmapped+plan.Conflicts)
		return o.print(res, nil)
	case !o.apply:
		res.Outcome = PoliciesPlanned
		res.Message = fmt.Sprintf("plan: %d IPv6 ipBlocks to add to %d NetworkPolicies; `%s` adds them", plan.Additions, plan.Changes, o.inv.Command("policies apply"))
		return o.print(res, nil)
	case o.dryRun == cli.DryRunClient:
		res.Outcome = PoliciesPlanned
		res.Message = fmt.Sprintf("dry run (client): %d IPv6 ipBlocks would be added to %d NetworkPolicies; nothing was sent", plan.Additions, plan.Changes)
		return o.print(res, nil)
	}
	if o.dryRun == cli.DryRunNone {
		if err := o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("policies apply"), fmt.Sprintf("Add these %d ipBlocks to %d NetworkPolicies?", plan.Additions, plan.Changes)); err != nil {
			if errors.Is(err, cli.ErrNotConfirmed) {
				res.Outcome, res.Message = PoliciesNotConfirmed, "nothing was changed"
				_ = o.print(res, nil)
			}
			return err
		}
	}
	_, release, err := o.Target.Journal.open(ctx, kc.Kube, o.dryRun, "policies apply")
	if err != nil {
		return err
	}
	defer release()
	result, applyErr := (&policies.Applier{Kube: kc.Kube, Journal: store, ServerDryRun: o.dryRun == cli.DryRunServer}).Apply(ctx, plan)
	res.Result = result
	switch {
	case applyErr != nil:
		res.Outcome = PoliciesFailed
		res.Message = fmt.Sprintf("%v; %d NetworkPolicies were changed before it (journal %s): `%s` takes them back, `%s` plans afresh",
			applyErr, result.Changed, store.Location(), o.inv.Command("policies apply --revert"), o.inv.Command("policies plan"))
		return o.print(res, errors.New(res.Message))
	case o.dryRun == cli.DryRunServer:
		res.Outcome = PoliciesDryRun
		res.Message = fmt.Sprintf("dry run (server): the apiserver accepted all %d updates; nothing was stored", result.Changed)
	default:
		res.Outcome = PoliciesConverted
		res.Message = fmt.Sprintf("added %d IPv6 ipBlocks to %d NetworkPolicies", plan.Additions, result.Changed)
		if n := plan.Unmapped + plan.Conflicts; n > 0 {
			res.Message += fmt.Sprintf("; %d IPv4 ipBlocks have no twin to derive (named above): theirs are yours to add", n)
		}
	}
	return o.print(res, nil)
}

func (o *PoliciesOptions) revert(ctx context.Context, kc *kube.Clients) error {
	r := revertRun{command: "policies apply --revert", what: "NetworkPolicy change", undoable: policies.Undoable,
		rollback: func(ctx context.Context, store *journal.Store) ([]journal.UndoResult, error) {
			return policies.Rollback(ctx, kc.Kube, store)
		},
		done: "restored the original spec of the NetworkPolicies this command changed"}
	out, err := r.run(ctx, &o.Target.Journal, kc, o.dryRun, o.Mutation, o.IOStreams, o.Output.Structured(), o.inv)
	if out == nil {
		return err
	}
	res := &PoliciesResult{Outcome: out.Outcome, Message: out.Message, Revert: out.Results, Journal: out.Journal}
	if errors.Is(err, cli.ErrNotConfirmed) {
		_ = o.print(res, nil)
		return err
	}
	return o.print(res, err)
}

func (o *PoliciesOptions) print(res *PoliciesResult, failure error) error {
	return printOutcome(o.Output, o.IOStreams, res, res.Message, failure != nil, func(w io.Writer) {
		if res.Result != nil {
			tw := printers.GetNewTabWriter(w)
			fmt.Fprintln(tw, "\nNETWORKPOLICY\tSTATUS\tMESSAGE")
			for _, p := range res.Result.Policies {
				fmt.Fprintf(tw, "%s/%s\t%s\t%s\n", p.Namespace, p.Name, p.Status, p.Message)
			}
			_ = tw.Flush()
		}
		if res.Revert != nil && res.Outcome != RevertPlanned && res.Outcome != PoliciesNotConfirmed {
			printRevert(w, res.Revert)
		}
	})
}

func printPoliciesPlan(w io.Writer, plan *policies.Plan) {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "NETWORKPOLICY\tDIRECTION\tIPV4 BLOCK\tACTION\tIPV6 TWIN\tREASON")
	for _, it := range plan.Policies {
		for _, f := range it.Findings {
			twin := "-"
			if f.IPv6 != nil {
				twin = f.IPv6.String()
			}
			fmt.Fprintf(tw, "%s\t%s[%d]\t%s\t%s\t%s\t%s\n", it.Ref(), f.Direction, f.Rule, f.IPv4, f.Action, twin, f.Reason)
		}
	}
	_ = tw.Flush()
	var ranges []string
	for _, r := range plan.Ranges {
		if r.IPv6.IsValid() {
			ranges = append(ranges, fmt.Sprintf("%s %s -> %s", r.What, r.IPv4, r.IPv6))
		}
	}
	if len(ranges) > 0 {
		fmt.Fprintf(w, "cluster ranges: %s\n", strings.Join(ranges, "; "))
	}
	for _, n := range plan.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "%d NetworkPolicies with IPv4 ipBlocks: %d to change (%d ipBlocks to add), %d ipBlocks without a twin to derive\n",
		len(plan.Policies), plan.Changes, plan.Additions, plan.Unmapped+plan.Conflicts)
}
