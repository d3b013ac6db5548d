package convert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// Phase is one layer of the conversion.
type Phase interface {
	Name() string
	// Plan says what the phase would do, from the facts: read-only, and it
	// never waits (a name that does not resolve is a verification result,
	// not a planning blocker).
	Plan(ctx context.Context, f *Facts) (PhasePlan, error)
	// Apply does exactly p.
	Apply(ctx context.Context, f *Facts, p PhasePlan, run *Run) (Done, error)
}

// Differ is a phase that says how two of its plans differ ("" when they
// make the same changes); without it, plans compare by their details.
type Differ interface {
	Diff(was, now PhasePlan) string
}

// Done is what an applied phase did.
type Done struct {
	Message string
	// Changed says whether anything in the cluster or AWS changed.
	Changed bool
}

// Run is what a phase reports its progress through while it applies.
type Run struct {
	// Label names the phase in progress lines ("[2/4] network").
	Label    string
	Progress *cli.Progress
	// Log takes the phase's notes, indented under its progress line.
	Log io.Writer
}

// Engine plans the selected phases from one set of facts and applies the
// plan it showed.
type Engine struct {
	Facts *Facts
	// Phases is every phase, in run order; Selected names those to run.
	Phases   []Phase
	Selected []string
	// Journal records which phases completed, so a re-run reports them.
	Journal *journal.Store
	// Log takes progress and one line per phase (stderr).
	Log io.Writer
	// Command spells a command for the user ("kubectl dualstack validate").
	Command func(sub string) string
	// OnPhase, when set, is told when a phase starts and ends applying
	// (upgrade --measure marks the phases on its availability timeline).
	OnPhase func(name string, start bool)

	earlier map[string]journal.Entry
}

// journalLayer is the engine's own bookkeeping in the journal.
const journalLayer = "upgrade"

func (e *Engine) selected(name string) bool { return slices.Contains(e.Selected, name) }

// loadEarlier reads which phases an earlier run completed.
func (e *Engine) loadEarlier(ctx context.Context) {
	e.earlier = map[string]journal.Entry{}
	if e.Journal == nil {
		return
	}
	j, err := e.Journal.Load(ctx)
	if err != nil {
		fmt.Fprintf(e.Log, "warning: could not read the journal (phases done earlier are not reported): %v\n", err)
		return
	}
	for _, en := range j.Layer(journalLayer) {
		e.earlier[en.Resource] = en
	}
}

// Plan asks every selected phase for its plan, read-only, and resolves
// the dependencies between them: a phase that needs an earlier phase's
// change runs after it, or is blocked when that phase is not selected or
// has nothing to give.
func (e *Engine) Plan(ctx context.Context) Plan {
	if e.earlier == nil {
		e.loadEarlier(ctx)
	}
	var plan Plan
	byName := map[string]PhasePlan{} // the phases planned so far
	e.Facts.planned = map[string]PhasePlan{}
	for _, ph := range e.Phases {
		name := ph.Name()
		if !e.selected(name) {
			plan.Phases = append(plan.Phases, PhasePlan{Name: name, Action: ActionSkipped, Summary: "not in --phases"})
			continue
		}
		p, err := ph.Plan(ctx, e.Facts)
		p.Name = name
		var usage *cli.UsageError
		if errors.As(err, &usage) && plan.BadInput == nil {
			// Bad input (a namespace flag naming no namespace): the run
			// stops with exit 2 before anything changes.
			plan.BadInput = err
		}
		if err != nil {
			p.Blockers = append(p.Blockers, fmt.Sprintf("planning the %s phase: %v", name, err))
		}
		if p.After != "" && p.Mutating() {
			if dep, ok := byName[p.After]; ok && dep.Mutating() {
				p.Action = ActionAfter
			} else {
				why := "it is not in --phases (leave --phases out, or add " + p.After + ")"
				switch {
				case ok && dep.Action == ActionBlocked:
					why = "it is blocked (above)"
				case ok:
					why = "it has nothing to change (" + dep.Summary + ")"
				}
				needs := p.Needs
				if needs == "" {
					needs = p.Summary
				}
				p.Blockers = append(p.Blockers, fmt.Sprintf("%s; that needs the %s phase, but %s", needs, p.After, why))
			}
		}
		if len(p.Blockers) > 0 {
			p.Action = ActionBlocked
			if p.Summary == "" {
				p.Summary = p.Blockers[0]
			}
			for _, b := range p.Blockers {
				plan.Blockers = append(plan.Blockers, name+": "+b)
			}
		}
		if en, ok := e.earlier[name]; ok && en.State == journal.Done && p.Action == ActionNothing {
			p.Summary += fmt.Sprintf(" (completed by an earlier upgrade, %s)", en.Updated.Format(time.RFC3339))
		}
		if en, ok := e.earlier[name]; ok && en.State == journal.Done && p.Action == ActionCheck {
			p.Details = append(p.Details, fmt.Sprintf("passed in an earlier upgrade (%s); run again only if a phase changes something", en.Updated.Format(time.RFC3339)))
		}
		plan.Phases = append(plan.Phases, p)
		byName[name] = p
		e.Facts.planned[name] = p
		if p.AWS != nil {
			plan.Cluster.VPCID = p.AWS.Cluster.VPCID
		}
	}
	// A proof that passed before is not repeated when nothing else is to
	// change (a second upgrade changes nothing); selected alone, it runs.
	work := slices.ContainsFunc(plan.Phases, PhasePlan.Mutating)
	for i := range plan.Phases {
		p := &plan.Phases[i]
		en, ok := e.earlier[p.Name]
		if p.Action == ActionCheck && ok && en.State == journal.Done && !work && len(e.Selected) > 1 {
			p.Action = ActionNothing
			p.Summary = fmt.Sprintf("passed in an earlier upgrade (%s) and nothing is to change; run `%s` to prove it again", en.Updated.Format(time.RFC3339), e.Command("validate"))
			p.Details = nil
		}
	}
	return plan
}

// Recheck plans again from what the cluster and AWS are now, and says how
// that differs from was (nothing, when the plan still holds).
func (e *Engine) Recheck(ctx context.Context, was Plan) (Plan, []string, error) {
	if err := e.Facts.RefreshNodes(ctx); err != nil {
		return Plan{}, nil, err
	}
	now := e.Plan(ctx)
	now.Cluster.ID, now.Cluster.Server, now.Settings = was.Cluster.ID, was.Cluster.Server, was.Settings
	return now, e.Compare(was, now), nil
}

// Compare lists how the plan made now differs from was: another cluster,
// a phase whose action changed, or a phase that would change other things.
func (e *Engine) Compare(was, now Plan) []string {
	if was.Cluster.ID != now.Cluster.ID {
		return []string{fmt.Sprintf("it is for another cluster (kube-system UID %s, this one is %s)", orNotSet(was.Cluster.ID), orNotSet(now.Cluster.ID))}
	}
	phases := map[string]Phase{}
	for _, ph := range e.Phases {
		phases[ph.Name()] = ph
	}
	byName := map[string]PhasePlan{}
	for _, p := range now.Phases {
		byName[p.Name] = p
	}
	var diffs []string
	for _, w := range was.Phases {
		is, ok := byName[w.Name]
		if !ok {
			diffs = append(diffs, w.Name+": not planned now")
			continue
		}
		if w.Action != is.Action {
			diffs = append(diffs, fmt.Sprintf("%s: was %s, is now %s (%s)", w.Name, w.Action, is.Action, is.Summary))
			continue
		}
		if d, ok := phases[w.Name].(Differ); ok {
			if s := d.Diff(w, is); s != "" {
				diffs = append(diffs, w.Name+": "+s)
			}
		} else if !slices.Equal(w.Details, is.Details) {
			diffs = append(diffs, fmt.Sprintf("%s: was %q, is now %q", w.Name, w.Details, is.Details))
		}
	}
	if len(was.Blockers) == 0 && len(now.Blockers) > 0 {
		diffs = append(diffs, fmt.Sprintf("blocked now: %q", now.Blockers))
	}
	return diffs
}

// NewResult is the result of a run of plan before any phase ran.
func NewResult(plan Plan) *Result {
	res := &Result{Plan: plan}
	for _, p := range plan.Phases {
		r := PhaseResult{Name: p.Name, Status: StatusPlanned, Message: p.Summary}
		switch p.Action {
		case ActionSkipped:
			r.Status = StatusSkipped
		case ActionNothing: // nothing to do is not "not run", whatever stops the run
			r.Status = StatusAlreadyDone
		}
		res.Phases = append(res.Phases, r)
	}
	return res
}

// SetPending marks the phases that did not run.
func (r *Result) SetPending(status, why string) {
	for i := range r.Phases {
		if r.Phases[i].Status == StatusPlanned {
			r.Phases[i].Status = status
			r.Phases[i].Message = "not run: " + why
		}
	}
}

// ErrPhaseFailed says a phase failed; the Result says which and why.
var ErrPhaseFailed = errors.New("a phase failed")

// Apply runs res's plan, phase by phase in order, and stops at the first
// failure; res says how each phase went.
func (e *Engine) Apply(ctx context.Context, res *Result) error {
	progress := cli.NewProgress(e.Log)
	byName := map[string]Phase{}
	for _, ph := range e.Phases {
		byName[ph.Name()] = ph
	}
	total := len(e.Selected)
	n := 0
	changed := false
	log := &indentWriter{w: e.Log, prefix: "    "}
	for i, p := range res.Plan.Phases {
		if p.Action == ActionSkipped {
			continue
		}
		n++
		pr := &res.Phases[i]
		label := fmt.Sprintf("[%d/%d] %s", n, total, p.Name)
		if p.Action == ActionNothing {
			pr.Status, pr.Message = StatusAlreadyDone, p.Summary
			fmt.Fprintf(e.Log, "%s: already done: %s\n", label, pr.Message)
			e.record(ctx, p.Name, journal.Done)
			continue
		}
		fmt.Fprintf(e.Log, "%s: %s\n", label, p.Summary)
		e.record(ctx, p.Name, journal.Pending)
		if e.OnPhase != nil {
			e.OnPhase(p.Name, true)
		}
		done, err := byName[p.Name].Apply(ctx, e.Facts, p, &Run{Label: label, Progress: progress, Log: log})
		if e.OnPhase != nil {
			e.OnPhase(p.Name, false)
		}
		changed = changed || done.Changed
		if err != nil {
			pr.Status, pr.Message = StatusFailed, err.Error()
			fmt.Fprintf(e.Log, "%s: FAILED: %s\n", label, pr.Message)
			e.record(ctx, p.Name, journal.Failed)
			res.SetPending(StatusNotRun, "phase "+p.Name+" failed")
			res.Outcome = OutcomeFailed
			res.Message = fmt.Sprintf("stopped at phase %s: %s", p.Name, err)
			return fmt.Errorf("%w: %s", ErrPhaseFailed, res.Message)
		}
		pr.Status, pr.Message = StatusDone, done.Message
		fmt.Fprintf(e.Log, "%s: done: %s\n", label, done.Message)
		e.record(ctx, p.Name, journal.Done)
	}
	res.Outcome, res.Message = OutcomeConverted, "every selected phase is done"
	if !changed {
		res.Outcome, res.Message = OutcomeNothingToDo, "nothing changed: every selected layer was already dual-stack"
	}
	return nil
}

// record notes a phase's state in the journal; failing to is a warning:
// the phases themselves are idempotent.
func (e *Engine) record(ctx context.Context, phase string, state journal.State) {
	if e.Journal == nil {
		return
	}
	err := e.Journal.Put(ctx, journal.Entry{ID: journalLayer + "/phase/" + phase, Layer: journalLayer, Operation: "phase", Resource: phase, State: state})
	if err != nil {
		fmt.Fprintf(e.Log, "warning: %v\n", err)
	}
}

func orNotSet(s string) string {
	if s == "" {
		return "not set"
	}
	return s
}

// Indent is w with prefix before every line.
func Indent(w io.Writer, prefix string) io.Writer { return &indentWriter{w: w, prefix: prefix} }

// ForgetPhases marks the phases' records undone (after a rollback), so a
// later run does not call rolled-back phases done.
func ForgetPhases(ctx context.Context, store *journal.Store) error {
	j, err := store.Load(ctx)
	if err != nil {
		return err
	}
	var reset []journal.Entry
	for _, e := range j.Layer(journalLayer) {
		if e.State != journal.Undone {
			e.State = journal.Undone
			reset = append(reset, e)
		}
	}
	return store.PutAll(ctx, reset)
}

// indentWriter prefixes each line a phase writes, so its notes read as
// part of the phase.
type indentWriter struct {
	w       io.Writer
	prefix  string
	midLine bool
}

func (iw *indentWriter) Write(b []byte) (int, error) {
	var out bytes.Buffer
	for _, c := range b {
		if !iw.midLine && c != '\r' {
			out.WriteString(iw.prefix)
			iw.midLine = true
		}
		out.WriteByte(c)
		if c == '\n' || c == '\r' {
			iw.midLine = false
		}
	}
	if _, err := iw.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}
