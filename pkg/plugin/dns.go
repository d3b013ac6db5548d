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

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/dns"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// NewCmdDNS builds `dns plan|apply|rollback`: the AAAA records of the
// names users reach the cluster by.
func NewCmdDNS(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Give the cluster's Route 53 names (api, api-int, *.apps, external-dns records) their AAAA records",
		Long: fmt.Sprintf(`A dual-stack load balancer answers AAAA on its own name, but the names users
reach the cluster by are alias A records in Route 53: the installer's api and
api-int, the ingress operator's *.apps, external-dns's. This adds, for every
alias A record whose load balancer is dual-stack, its AAAA twin with the same
alias target and routing settings (set identifier, weight, failover, health
check), one change batch per zone. Plain A records are reported, never
invented.

Zones: --hosted-zone, else OpenShift's dns.config.openshift.io/cluster
(privateZone, publicZone), else the private zones associated with the
cluster's VPC.

  %[1]s dns plan       the records it would add, read-only
  %[1]s dns apply      add them (asks first), recorded in the journal
  %[1]s dns rollback   delete exactly the records apply added`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCmdDNSPlan(inv, streams, factory), newCmdDNSApply(inv, streams, factory), newCmdDNSRollback(inv, streams, factory))
	return cmd
}

type dnsFlags struct {
	awsTargetFlags
	HostedZones []string
}

func (f *dnsFlags) addFlags(cmd *cobra.Command) {
	f.awsTargetFlags.addFlags(cmd)
	cmd.Flags().StringSliceVar(&f.HostedZones, "hosted-zone", nil, "Route 53 hosted zone IDs to work on (default: OpenShift's DNS config, else the private zones of the cluster's VPC)")
}

// DNSResult is what `dns plan|apply|rollback -o json|yaml` print. Field names are stable.
type DNSResult struct {
	Outcome string        `json:"outcome"`
	Message string        `json:"message"`
	Plan    *dns.Plan     `json:"plan,omitempty"`
	Results []awsx.Result `json:"results,omitempty"`
	Journal string        `json:"journal,omitempty"`
}

// plan resolves the account and plans from the records as they are.
func (f *dnsFlags) plan(ctx context.Context, factory *kube.Factory, tool string) (*convert.Account, *dns.Plan, error) {
	if err := f.validate(); err != nil {
		return nil, nil, err
	}
	kc, err := factory.Clients()
	if err != nil {
		return nil, nil, err
	}
	facts, err := convert.Gather(ctx, kc)
	if err != nil {
		return nil, nil, err
	}
	acct, err := convert.ResolveAWS(ctx, facts, f.target())
	if err != nil {
		return nil, nil, err
	}
	invn, err := acct.Refresh(ctx)
	if err != nil {
		return nil, nil, err
	}
	p, err := convert.PlanDNS(ctx, facts, acct, invn, nil, f.HostedZones, tool)
	return acct, p, err
}

func printDNSPlan(w io.Writer, p *dns.Plan) error {
	var zones []string
	for _, z := range p.Zones {
		kind := "public"
		if z.Private {
			kind = "private"
		}
		zones = append(zones, fmt.Sprintf("%s (%s %s, %s)", z.Name, kind, z.ID, z.FoundBy))
	}
	if len(zones) == 0 {
		fmt.Fprintln(w, "No hosted zone of the cluster found; name zones with --hosted-zone.")
		return nil
	}
	fmt.Fprintf(w, "Zones: %s\n", strings.Join(zones, "; "))
	fmt.Fprintf(w, "Read %d records: %d alias A (%d with their AAAA already), %d plain A.\n", p.Counts.Records, p.Counts.AliasA, p.Counts.WithAAAA, p.Counts.PlainA)
	if len(p.Changes) > 0 {
		tw := printers.GetNewTabWriter(w)
		fmt.Fprintln(tw, "\nADD\tNAME\tZONE\tALIAS TARGET\tLOAD BALANCER")
		for _, c := range p.Changes {
			name := c.Name
			if c.SetIdentifier != "" {
				name += " [" + c.SetIdentifier + "]"
			}
			fmt.Fprintf(tw, "AAAA\t%s\t%s\t%s\t%s\n", name, c.ZoneName, c.AliasTarget, c.LoadBalancer)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	printNotes(w, p.Notes)
	return nil
}

func newCmdDNSPlan(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	var f dnsFlags
	out := cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show, read-only, the AAAA records the cluster's names lack",
		Example: fmt.Sprintf(`  %[1]s dns plan
  %[1]s dns plan --hosted-zone Z0123456789ABCDEFGHIJ -o json   # {outcome, message, plan {zones[], changes[], notes[], counts}}`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			_, p, err := f.plan(cmd.Context(), factory, inv.DisplayName)
			if err != nil {
				return err
			}
			res := DNSResult{Outcome: "planned", Plan: p, Message: fmt.Sprintf("%d AAAA records to add; nothing was changed", len(p.Changes))}
			if len(p.Changes) == 0 {
				res.Outcome, res.Message = "nothing-to-do", "every alias A record to a dual-stack load balancer has its AAAA"
			}
			return printOutcome(out, streams, res, res.Message, false, func(w io.Writer) { _ = printDNSPlan(w, p) })
		},
	}
	f.addFlags(cmd)
	out.AddFlags(cmd)
	return cmd
}

func newCmdDNSApply(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	var f dnsFlags
	mut := cli.NewMutationFlags()
	out := cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML)
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Add the AAAA records of `dns plan`, after confirmation; recorded for rollback",
		Long: `Plan, show the plan, ask (unless --yes), then add the records: one
ChangeResourceRecordSets batch per zone (up to 1,000 records each; Route 53
applies a batch whole or not at all), each recorded in the journal before
and after, then wait until Route 53 reports the batch in sync on its name
servers. A record someone created since the plan makes its batch fail with
nothing changed in that zone: run it again. A second apply adds nothing.`,
		Example: fmt.Sprintf(`  %[1]s dns apply
  %[1]s dns apply --yes -o json
  %[1]s dns apply --dry-run=client   # the plan only`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			dry, err := clientDryRunOnly(out, mut, "dns apply", "Route 53 has no dry run")
			if err != nil {
				return err
			}
			acct, p, err := f.plan(ctx, factory, inv.DisplayName)
			if err != nil {
				return err
			}
			res := DNSResult{Plan: p}
			switch {
			case len(p.Changes) == 0:
				res.Outcome, res.Message = "nothing-to-do", "every alias A record to a dual-stack load balancer has its AAAA"
				return printOutcome(out, streams, res, res.Message, false, func(w io.Writer) { _ = printDNSPlan(w, p) })
			case dry == cli.DryRunClient:
				res.Outcome, res.Message = "planned", fmt.Sprintf("dry run (client): %d AAAA records would be added; nothing was sent", len(p.Changes))
				return printOutcome(out, streams, res, res.Message, false, func(w io.Writer) { _ = printDNSPlan(w, p) })
			}
			if !out.Structured() {
				if err := printDNSPlan(streams.Out, p); err != nil {
					return err
				}
			}
			if err := mut.Confirm(ctx, streams, inv.Command("dns apply"), fmt.Sprintf("Add these %d AAAA records?", len(p.Changes))); err != nil {
				if errors.Is(err, cli.ErrNotConfirmed) && out.Structured() {
					res.Outcome, res.Message = "not-confirmed", "nothing was changed"
					_ = out.Print(streams.Out, res, nil)
				}
				return err
			}
			store, release, err := f.Journal.open(ctx, acct.Kube().Kube, dry, "dns apply")
			if err != nil {
				return err
			}
			defer release()
			res.Journal = store.Location()
			progress := cli.NewProgress(streams.ErrOut)
			progress.Start(fmt.Sprintf("Adding %d AAAA records", len(p.Changes)))
			results, applyErr := dns.Apply(ctx, acct.AWS.Route53, p, dns.ApplyOptions{Journal: store,
				Progress: func(done, total int) {
					progress.Update(fmt.Sprintf("%d/%d AAAA records added and in sync", done, total))
				}})
			progress.Done("")
			res.Results = results
			added := convert.CountStatus(results, awsx.StatusApplied)
			if applyErr != nil {
				res.Outcome = "failed"
				res.Message = fmt.Sprintf("%v; what was added is in the journal %s: `%s` deletes it", applyErr, store.Location(), inv.Command("dns rollback --yes"))
				return printOutcome(out, streams, res, res.Message, true, func(w io.Writer) { _ = printResults(w, results) })
			}
			res.Outcome = "converted"
			res.Message = fmt.Sprintf("added %d AAAA records, in sync on Route 53's name servers (journal %s)", added, store.Location())
			return printOutcome(out, streams, res, res.Message, false, func(w io.Writer) { _ = printResults(w, results) })
		},
	}
	f.addFlags(cmd)
	f.addJournalFlag(cmd)
	mut.AddFlags(cmd)
	out.AddFlags(cmd)
	return cmd
}

func newCmdDNSRollback(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	var f awsTargetFlags
	mut := cli.NewMutationFlags()
	out := cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML)
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Delete exactly the AAAA records `dns apply` recorded",
		Long: `Delete, one batch per zone, the AAAA records the journal says the dns phase
added, each only while it is still the record that was added (one changed
since is left alone, and said so). Records that were there before are never
touched.`,
		Example: fmt.Sprintf(`  %[1]s dns rollback
  %[1]s dns rollback --yes`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			dry, err := clientDryRunOnly(out, mut, "dns rollback", "")
			if err != nil {
				return err
			}
			acct, err := f.resolve(ctx, factory)
			if err != nil {
				return err
			}
			r := revertRun{command: "dns rollback", what: "AAAA record", undoable: convert.DNSUndoable,
				rollback: func(ctx context.Context, store *journal.Store) ([]journal.UndoResult, error) {
					results, err := dns.Rollback(ctx, acct.AWS.Route53, store)
					var out []journal.UndoResult
					for _, r := range results {
						out = append(out, journal.UndoResult{Operation: r.Operation, Resource: r.Resource, Status: r.Status, Message: r.Error})
					}
					return out, err
				},
				done: "deleted the AAAA records dns apply added"}
			o, err := r.run(ctx, &f.Journal, acct.Kube(), dry, mut, streams, out.Structured(), inv)
			if o == nil {
				return err
			}
			res := DNSResult{Outcome: o.Outcome, Message: o.Message, Journal: o.Journal}
			for _, u := range o.Results {
				res.Results = append(res.Results, awsx.Result{Operation: u.Operation, Resource: u.Resource, Status: u.Status, Error: u.Message})
			}
			if errors.Is(err, cli.ErrNotConfirmed) {
				_ = printOutcome(out, streams, res, res.Message, false, func(io.Writer) {})
				return err
			}
			return printOutcome(out, streams, res, res.Message, err != nil, func(w io.Writer) {
				if o.Outcome == RevertDone || o.Outcome == RevertFailed {
					_ = printResults(w, res.Results)
				}
			})
		},
	}
	f.addFlags(cmd)
	f.addJournalFlag(cmd)
	mut.AddFlags(cmd)
	out.AddFlags(cmd)
	return cmd
}
