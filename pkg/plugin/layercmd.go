package plugin

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Outcomes of a layer command's --revert, as -o json reports them.
const (
	RevertDone       = "reverted"
	RevertNothing    = "nothing-to-revert"
	RevertPlanned    = "revert-planned" // --revert --dry-run=client
	RevertNotConfirm = "not-confirmed"
	RevertFailed     = "failed"
)

// revertRun is one layer command's --revert: what the journal recorded for
// the layer, taken back after a confirmation.
type revertRun struct {
	command  string // "nodes --revert"
	what     string // "cloud config change", for "nothing to revert" and the question
	undoable func(*journal.Journal) []journal.Entry
	rollback func(context.Context, *journal.Store) ([]journal.UndoResult, error)
	// done is the message of a revert that went through.
	done string
}

// revertOutcome is what a --revert did, for the command's own result.
type revertOutcome struct {
	Outcome, Message string
	Results          []journal.UndoResult
	Journal          string
}

// run lists, asks, then takes back; the outcome is filled in every case
// that gets as far as the journal, and err is set on a failure (the
// message says what was restored and how to go on).
func (r revertRun) run(ctx context.Context, j *journalFlag, kc *kube.Clients, dry cli.DryRun, mutation *cli.MutationFlags,
	streams genericiooptions.IOStreams, structured bool, inv Invocation) (*revertOutcome, error) {
	store, release, err := j.open(ctx, kc.Kube, dry, r.command)
	if err != nil {
		return nil, err
	}
	defer release()
	jr, err := store.Load(ctx)
	if err != nil {
		return nil, kube.Explain("reading the journal", err)
	}
	out := &revertOutcome{Journal: store.Location(), Results: []journal.UndoResult{}}
	for _, e := range r.undoable(jr) {
		out.Results = append(out.Results, journal.UndoResult{Operation: e.Operation, Resource: e.Resource, Status: "planned"})
	}
	if len(out.Results) == 0 {
		out.Outcome = RevertNothing
		out.Message = fmt.Sprintf("nothing to revert: the journal %s records no %s that is not undone", store.Location(), r.what)
		return out, nil
	}
	if !structured {
		fmt.Fprintf(streams.Out, "Revert from the journal %s: %d recorded changes\n", store.Location(), len(out.Results))
		printRevert(streams.Out, out.Results)
	}
	if dry == cli.DryRunClient {
		out.Outcome, out.Message = RevertPlanned, "dry run (client): the list only, nothing was changed"
		return out, nil
	}
	if err := mutation.Confirm(ctx, streams, inv.Command(r.command), fmt.Sprintf("Take back these %d changes?", len(out.Results))); err != nil {
		if errors.Is(err, cli.ErrNotConfirmed) {
			out.Outcome, out.Message = RevertNotConfirm, "nothing was changed"
			return out, err
		}
		return nil, err
	}
	results, rerr := r.rollback(ctx, store)
	out.Results = results
	if rerr != nil {
		out.Outcome = RevertFailed
		out.Message = fmt.Sprintf("revert stopped: %v; what was restored is recorded, so running `%s` again continues", rerr, inv.Command(r.command+" --yes"))
		return out, errors.New(out.Message)
	}
	out.Outcome = RevertDone
	out.Message = fmt.Sprintf("%s (journal %s)", r.done, store.Location())
	return out, nil
}

// clientDryRunOnly checks -o and --dry-run for a layer command whose plan
// is its dry run: --dry-run=server is refused (why says what it would not
// prove, if anything).
func clientDryRunOnly(out *cli.OutputFlags, m *cli.MutationFlags, command, why string) (cli.DryRun, error) {
	if err := out.Validate(); err != nil {
		return "", err
	}
	d, err := m.Strategy()
	if err != nil {
		return "", err
	}
	if d == cli.DryRunServer {
		msg := command + " takes --dry-run=client (the plan), not --dry-run=server"
		if why != "" {
			msg += ": " + why
		}
		return "", cli.Usagef("%s", msg)
	}
	return d, nil
}
