package plugin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// underlayPhase is upgrade's aws phase as typed calls: the plan shown and
// confirmed is the plan applied, after a check that AWS did not change in
// between.
type underlayPhase interface {
	Plan(ctx context.Context) (*awsx.Plan, error)
	Apply(ctx context.Context, p *awsx.Plan, progress func(done, total int, r awsx.Result)) ([]awsx.Result, error)
}

// ErrPlanDrift says the state a plan was made from changed before it was
// applied; nothing was applied.
var ErrPlanDrift = errors.New("changed since the plan was made")

// awsUnderlay resolves the cluster's AWS account once and plans and applies
// through pkg/aws directly.
type awsUnderlay struct {
	flags    awsPlanFlags
	factory  *kube.Factory
	store    *journal.Store
	parallel int

	session *awsSession
}

func (u *awsUnderlay) Plan(ctx context.Context) (*awsx.Plan, error) {
	s, inv, err := u.flags.inventory(ctx, u.factory)
	if err != nil {
		return nil, err
	}
	u.session = s
	return awsx.MakePlan(inv, u.planOptions()), nil
}

func (u *awsUnderlay) Apply(ctx context.Context, p *awsx.Plan, progress func(done, total int, r awsx.Result)) ([]awsx.Result, error) {
	if u.session == nil {
		if _, err := u.Plan(ctx); err != nil {
			return nil, err
		}
	}
	inv, err := u.session.discover(ctx)
	if err != nil {
		return nil, err
	}
	now := awsx.MakePlan(inv, u.planOptions())
	if d := planDiff(p, now); d != "" {
		return nil, fmt.Errorf("the AWS network of VPC %s %w (%s); nothing was applied: run upgrade again to plan from the current state", p.Cluster.VPCID, ErrPlanDrift, d)
	}
	return awsx.Apply(ctx, u.session.aws, inv, p, awsx.ApplyOptions{Parallel: u.parallel, Journal: u.store, Progress: progress, NodeReady: u.session.nodeReady()})
}

func (u *awsUnderlay) planOptions() awsx.PlanOptions {
	return awsx.PlanOptions{NewInstanceType: u.flags.NewInstanceType, AllowControlPlaneRestart: u.flags.AllowControlPlaneRestart}
}

// planDiff says how two plans of the same VPC differ ("" when they make
// the same changes with the same parameters).
func planDiff(was, now *awsx.Plan) string {
	if was.Cluster.VPCID != now.Cluster.VPCID {
		return fmt.Sprintf("the VPC is now %s, not %s", now.Cluster.VPCID, was.Cluster.VPCID)
	}
	key := func(c awsx.Change) string {
		keys := slices.Sorted(maps.Keys(c.Parameters))
		var kv []string
		for _, k := range keys {
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
