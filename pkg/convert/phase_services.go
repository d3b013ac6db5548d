package convert

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/services"
)

// PhaseServices makes the existing Services dual-stack.
const PhaseServices = "services"

// ServicesPhase gives every existing single-stack Service with a cluster IP
// both families (services): Kubernetes never upgrades a Service created
// while the cluster was single-stack.
type ServicesPhase struct {
	Options services.Options
	Journal *journal.Store
}

func (*ServicesPhase) Name() string { return PhaseServices }

func (s *ServicesPhase) converter(f *Facts, j *journal.Store) *services.Converter {
	return &services.Converter{Kube: f.Clients.Kube, Journal: j, Options: s.Options}
}

func (s *ServicesPhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	sp, err := s.converter(f, nil).Plan(ctx)
	if err != nil {
		return PhasePlan{}, err
	}
	p := PhasePlan{Services: sp}
	if sp.Changes == 0 {
		p.Action, p.Summary = ActionNothing, fmt.Sprintf("every selected Service with a cluster IP is dual-stack (%d skipped)", sp.Skips)
		return p, nil
	}
	p.Action = ActionChange
	p.Summary = fmt.Sprintf("make %d existing Services %s with both families (%d skipped; system Services first)", sp.Changes, s.Options.Policy, sp.Skips)
	shown := 0
	for _, it := range sp.Services {
		if it.Action != services.ActionChange {
			continue
		}
		if shown == 10 {
			p.Details = append(p.Details, fmt.Sprintf("and %d more (-o json lists every one)", sp.Changes-shown))
			break
		}
		p.Details = append(p.Details, fmt.Sprintf("%s: %s -> %s", it.Ref(), it.Current, it.Target))
		shown++
	}
	if sp.Blocker != "" {
		if !sp.NeedsIPv6ServiceRange {
			p.Blockers = append(p.Blockers, sp.Blocker)
			return p, nil
		}
		// Data: the network phase gives the cluster its IPv6 service range.
		p.After, p.Needs = PhaseNetwork, "the cluster has no IPv6 service range yet"
		p.Summary = "after the network: " + p.Summary
	}
	return p, nil
}

// Diff compares the Services two plans change.
func (*ServicesPhase) Diff(was, now PhasePlan) string {
	if was.Services == nil || now.Services == nil {
		return ""
	}
	return services.Diff(was.Services, now.Services)
}

// Apply applies the plan; a plan that waited for the network phase is made
// again now that the range exists, and applied only if it changes the same
// Services the same way.
func (s *ServicesPhase) Apply(ctx context.Context, f *Facts, p PhasePlan, run *Run) (Done, error) {
	if p.Services == nil {
		return Done{}, errors.New("internal error: the services phase was applied without a plan")
	}
	c := s.converter(f, s.Journal)
	c.Log = run.Log
	sp := p.Services
	if sp.Blocker != "" {
		now, err := c.Plan(ctx)
		if err != nil {
			return Done{}, fmt.Errorf("services: %w", err)
		}
		if now.Blocker != "" {
			return Done{}, fmt.Errorf("services: %s (the network phase did not give the cluster an IPv6 service range)", now.Blocker)
		}
		if d := services.Diff(&services.Plan{Services: sp.Services}, &services.Plan{Services: now.Services}); d != "" {
			return Done{}, fmt.Errorf("services: the Services %w (%s); nothing was changed by this phase: run upgrade again", ErrPlanDrift, d)
		}
		sp = now
	}
	run.Progress.Start(fmt.Sprintf("%s: patching %d Services", run.Label, sp.Changes))
	res, err := c.Apply(ctx, sp)
	run.Progress.Done("")
	if res == nil {
		return Done{}, fmt.Errorf("services: %w", err)
	}
	changed := res.Changed > 0
	if err != nil || res.Failed > 0 {
		if err == nil {
			err = fmt.Errorf("%d failed", res.Failed)
		}
		return Done{Changed: changed}, fmt.Errorf("services: %d of %d changed, %d failed, %d not run: %w", res.Changed, sp.Changes, res.Failed, res.NotRun, err)
	}
	return Done{Changed: changed, Message: fmt.Sprintf("%d Services now have both families (%d left as they are, each with its reason in the plan)", res.Changed, sp.Skips+res.Skipped)}, nil
}

// DefaultServicesOptions are upgrade's: every namespace, PreferDualStack.
func DefaultServicesOptions() services.Options {
	return services.Options{Policy: corev1.IPFamilyPolicyPreferDualStack}
}
