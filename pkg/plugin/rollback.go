package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
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

// RollbackResult is what `rollback -o json|yaml` prints. Field names are stable.
type RollbackResult struct {
	// Outcome is rolled-back, nothing-to-do, dry-run, not-confirmed or failed.
	Outcome string          `json:"outcome"`
	Message string          `json:"message"`
	Journal string          `json:"journal"`
	Changes []RollbackEntry `json:"changes"`
}

// RollbackEntry is one recorded change to take back, and how it went.
type RollbackEntry struct {
	Layer     string `json:"layer"` // gateway, overlay, underlay
	Operation string `json:"operation"`
	Resource  string `json:"resource"`
	// Status is planned, undone, skipped, failed or not-run.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

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
gateway Service (the inverse of its patch, or the original Service in place
of a re-created one), the IPv6 entries network added to the cluster network
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
	j, err := store.Load(ctx)
	if err != nil {
		return kube.Explain("reading the journal", err)
	}
	res := &RollbackResult{Journal: store.Location(), Changes: []RollbackEntry{}}
	for _, e := range gateway.Undoable(j) {
		res.Changes = append(res.Changes, RollbackEntry{Layer: gateway.Layer, Operation: e.Operation, Resource: e.Resource, Status: "planned"})
	}
	netEntry, hasNet := j.Get(networkJournalID)
	hasNet = hasNet && (netEntry.State == journal.Done || netEntry.State == journal.Pending)
	if hasNet {
		res.Changes = append(res.Changes, RollbackEntry{Layer: "overlay", Operation: netEntry.Operation, Resource: netEntry.Resource, Status: "planned",
			Message: fmt.Sprintf("remove clusterNetwork %s, serviceNetwork %s", netEntry.Undo["clusterNetwork"], netEntry.Undo["serviceNetwork"])})
	}
	var session *awsSession
	var vpc string
	if underlayPending(j) {
		s, invn, err := o.Target.inventory(ctx, o.factory)
		if err != nil {
			return fmt.Errorf("the journal records AWS changes, so rollback needs AWS: %w", err)
		}
		session, vpc = s, invn.VPC.ID
		for _, e := range awsx.Undoable(j, vpc) {
			res.Changes = append(res.Changes, RollbackEntry{Layer: awsx.Layer, Operation: e.Operation, Resource: e.Resource, Status: "planned"})
		}
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

	progress := cli.NewProgress(o.ErrOut)
	var failed []string
	set := func(layer, resource, status, msg string) {
		for i := range res.Changes {
			c := &res.Changes[i]
			if c.Layer == layer && c.Resource == resource && c.Status == "planned" {
				c.Status, c.Message = status, msg
				return
			}
		}
	}
	// The gateway first: its Service sits on the network and the NLB.
	progress.Start("Rolling back the gateway")
	gres, gerr := gateway.Rollback(ctx, kc.Kube, store, o.Timeout)
	progress.Done("")
	for _, r := range gres {
		set(gateway.Layer, r.Resource, r.Status, r.Message)
	}
	if gerr != nil {
		failed = append(failed, gerr.Error())
	}
	if hasNet && len(failed) == 0 {
		nres, nerr := o.revertNetwork(ctx, kc, store)
		switch {
		case nerr != nil:
			set("overlay", netEntry.Resource, "failed", nerr.Error())
			failed = append(failed, "network: "+nerr.Error())
		case nres.Outcome == OutcomeNothingToRevert:
			set("overlay", netEntry.Resource, "skipped", nres.Message)
		default:
			set("overlay", netEntry.Resource, "undone", nres.Message)
		}
	}
	if session != nil && len(failed) == 0 {
		progress.Start("Rolling back the AWS changes to VPC " + vpc)
		results, aerr := awsx.Rollback(ctx, session.aws, vpc, store, awsx.RollbackOptions{
			NodeReady: session.nodeReady(),
			Progress: func(done, total int, r awsx.Result) {
				progress.Update(fmt.Sprintf("%d/%d undo %s %s: %s %s", done, total, r.Operation, r.Resource, r.Status, r.Error))
			},
		})
		progress.Done("")
		for _, r := range results {
			status := r.Status
			if status == awsx.StatusUndone {
				status = "undone"
			}
			set(awsx.Layer, r.Resource, status, r.Error)
		}
		if aerr != nil {
			failed = append(failed, "aws: "+aerr.Error())
		}
	}
	for i := range res.Changes {
		if res.Changes[i].Status == "planned" {
			res.Changes[i].Status, res.Changes[i].Message = "not-run", "an earlier layer failed"
		}
	}
	if len(failed) > 0 {
		res.Outcome = "failed"
		res.Message = fmt.Sprintf("rollback stopped: %s; what was undone is recorded, so running `%s` again continues from there", strings.Join(failed, "; "), o.inv.Command("rollback --yes"))
		return o.print(res, errors.New(res.Message))
	}
	o.forgetPhases(ctx, store)
	res.Outcome = "rolled-back"
	res.Message = fmt.Sprintf("undid the recorded changes of every layer (journal %s)", store.Location())
	return o.print(res, nil)
}

// underlayPending says whether the journal has AWS changes not undone.
func underlayPending(j *journal.Journal) bool {
	for _, e := range j.Layer(awsx.Layer) {
		if e.State != journal.Undone {
			return true
		}
	}
	return false
}

// revertNetwork takes back network's entries with the same transaction as
// `network --revert`, already confirmed; its result is read as a value.
func (o *RollbackOptions) revertNetwork(ctx context.Context, kc *kube.Clients, store *journal.Store) (*NetworkResult, error) {
	res := &NetworkResult{Mode: "openshift", Action: "revert"}
	ov := &network.Overlay{
		Kube: kc.Kube, Dynamic: kc.Dynamic, Journal: store, DryRun: cli.DryRunNone, Timeout: o.Timeout,
		Command: o.inv.DisplayName, Log: &indentWriter{w: o.ErrOut, prefix: "    "},
		Confirm: func(context.Context, string, string) error { return nil }, // rollback asked once for every layer
	}
	err := ov.Revert(ctx, res)
	if err != nil && res.Message != "" {
		return res, fmt.Errorf("%s (%s)", res.Message, network.NetworkResource)
	}
	return res, err
}

// forgetPhases marks upgrade's phase records undone, so a later upgrade
// does not call rolled-back phases done.
func (o *RollbackOptions) forgetPhases(ctx context.Context, store *journal.Store) {
	j, err := store.Load(ctx)
	if err != nil {
		return
	}
	var reset []journal.Entry
	for _, e := range j.Layer(upgradeLayer) {
		if e.State != journal.Undone {
			e.State = journal.Undone
			reset = append(reset, e)
		}
	}
	if err := store.PutAll(ctx, reset); err != nil {
		fmt.Fprintf(o.ErrOut, "warning: could not mark upgrade's phases as rolled back in the journal: %v\n", err)
	}
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
