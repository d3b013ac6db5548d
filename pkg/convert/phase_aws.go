package convert

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// ErrPlanDrift says the state a plan was made from changed before it was
// applied; nothing was applied.
var ErrPlanDrift = errors.New("changed since the plan was made")

// AWSPhase gives the cluster's AWS network IPv6 (aws apply): the plan
// shown is the plan applied, from the discovery it was made from.
type AWSPhase struct {
	Target   Target
	Options  awsx.PlanOptions
	Parallel int
	Journal  *journal.Store
	Command  func(sub string) string

	inv *awsx.Inventory // the discovery the last plan was made from
}

func (*AWSPhase) Name() string { return PhaseAWS }

// Account resolves the cluster's AWS account once per run.
func (f *Facts) AWS(ctx context.Context, t Target) (*Account, error) {
	if f.Account != nil {
		return f.Account, nil
	}
	return ResolveAWS(ctx, f, t)
}

func (a *AWSPhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	acct, err := f.AWS(ctx, a.Target)
	if err != nil {
		return PhasePlan{}, err
	}
	inv, err := acct.Refresh(ctx)
	if err != nil {
		return PhasePlan{}, err
	}
	a.inv = inv
	ap := awsx.MakePlan(inv, a.Options)
	p := PhasePlan{AWS: ap}
	if len(ap.Changes) == 0 {
		p.Action, p.Summary = ActionNothing, fmt.Sprintf("the underlay of VPC %s is already dual-stack", ap.Cluster.VPCID)
	} else {
		p.Action, p.Summary = ActionChange, fmt.Sprintf("%d changes to VPC %s (cluster %s, %s), as `%s`", len(ap.Changes), ap.Cluster.VPCID, orNotSet(ap.Cluster.InfraID), ap.Cluster.Region, a.Command("aws plan"))
		counts := map[string]int{}
		var ops []string
		for _, c := range ap.Changes {
			if counts[c.Operation] == 0 {
				ops = append(ops, c.Operation)
			}
			counts[c.Operation]++
		}
		for _, op := range ops {
			p.Details = append(p.Details, fmt.Sprintf("%d x %s", counts[op], op))
		}
	}
	for _, n := range ap.Notes {
		p.Details = append(p.Details, "not changed: "+n.Resource+": "+n.Message)
	}
	return p, nil
}

// Apply applies p's AWS changes exactly, against the discovery the last
// plan was made from, after checking that plan is still p.
func (a *AWSPhase) Apply(ctx context.Context, f *Facts, p PhasePlan, run *Run) (Done, error) {
	if p.AWS == nil || a.inv == nil || f.Account == nil {
		return Done{}, errors.New("internal error: the aws phase was applied without a plan")
	}
	if d := PlanDiff(p.AWS, awsx.MakePlan(a.inv, a.Options)); d != "" {
		return Done{}, fmt.Errorf("the AWS network of VPC %s %w (%s); nothing was applied: run upgrade again to plan from the current state", p.AWS.Cluster.VPCID, ErrPlanDrift, d)
	}
	run.Progress.Start(fmt.Sprintf("%s: applying %d changes", run.Label, len(p.AWS.Changes)))
	results, err := awsx.Apply(ctx, f.Account.AWS, a.inv, p.AWS, awsx.ApplyOptions{Parallel: a.Parallel, Journal: a.Journal, NodeReady: f.Account.NodeReady(),
		Status: awsx.StatusPrinter(func(s string) { run.Progress.Update(run.Label + ": " + s) }, run.Progress.Terminal())})
	run.Progress.Done("")
	f.Account.Invalidate()
	applied, failed := CountStatus(results, awsx.StatusApplied), CountStatus(results, awsx.StatusFailed)
	if err != nil {
		return Done{Changed: applied > 0}, fmt.Errorf("aws apply: %d of %d changes applied, %d failed: %w", applied, len(p.AWS.Changes), failed, err)
	}
	return Done{Changed: applied > 0, Message: fmt.Sprintf("applied %d of %d changes to VPC %s, exactly as planned (recorded in the journal)", applied, len(p.AWS.Changes), p.AWS.Cluster.VPCID)}, nil
}

// Diff compares the AWS changes of two plans.
func (*AWSPhase) Diff(was, now PhasePlan) string {
	if was.AWS == nil || now.AWS == nil {
		return ""
	}
	return PlanDiff(was.AWS, now.AWS)
}

// CountStatus counts the results with status.
func CountStatus(rs []awsx.Result, status string) int {
	n := 0
	for _, r := range rs {
		if r.Status == status {
			n++
		}
	}
	return n
}

// PlanDiff says how two AWS plans of the same VPC differ ("" when they
// make the same changes with the same parameters).
func PlanDiff(was, now *awsx.Plan) string {
	if was.Cluster.VPCID != now.Cluster.VPCID {
		return fmt.Sprintf("the VPC is now %s, not %s", now.Cluster.VPCID, was.Cluster.VPCID)
	}
	key := func(c awsx.Change) string {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(c.Parameters)) {
			kv = append(kv, k+"="+c.Parameters[k])
		}
		return c.Operation + " " + c.Resource + " " + strings.Join(kv, ",")
	}
	set := func(p *awsx.Plan) map[string]bool {
		m := map[string]bool{}
		for _, c := range p.Changes {
			m[key(c)] = true
		}
		return m
	}
	a, b := set(was), set(now)
	var gone, added []string
	for k := range a {
		if !b[k] {
			gone = append(gone, k)
		}
	}
	for k := range b {
		if !a[k] {
			added = append(added, k)
		}
	}
	if len(gone) == 0 && len(added) == 0 {
		return ""
	}
	slices.Sort(gone)
	slices.Sort(added)
	var parts []string
	if len(gone) > 0 {
		parts = append(parts, fmt.Sprintf("%d planned change(s) no longer needed or different: %s", len(gone), strings.Join(first(gone, 3), "; ")))
	}
	if len(added) > 0 {
		parts = append(parts, fmt.Sprintf("%d change(s) needed now that were not planned: %s", len(added), strings.Join(first(added, 3), "; ")))
	}
	return strings.Join(parts, "; ")
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(slices.Clone(s[:n]), fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}
