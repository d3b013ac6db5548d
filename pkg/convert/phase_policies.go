package convert

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/policies"
)

// PhasePolicies gives NetworkPolicies the IPv6 twins of their IPv4
// ipBlocks. It runs only when named (--phases ...,policies): a policy is
// the user's security decision, so it is never changed by default.
const PhasePolicies = "policies"

// PoliciesPhase adds the IPv6 twin of each IPv4 ipBlock of the
// NetworkPolicies (policies apply).
type PoliciesPhase struct {
	Target     Target
	Namespaces kube.NamespaceSelection
	Journal    *journal.Store
	Command    func(sub string) string
}

func (*PoliciesPhase) Name() string { return PhasePolicies }

// PolicyRanges reads the cluster's ranges in both families: the pod and service
// ranges from the cluster, the VPC's from the last AWS discovery (AWS is
// asked only on AWS; when it cannot be, blocks naming the VPC are
// reported instead of mapped).
func PolicyRanges(ctx context.Context, f *Facts, t Target, command func(string) string) (policies.Ranges, []string, error) {
	in := policies.RangeInput{Command: command}
	var notes []string
	if f.Platform.OnAWS() {
		err := func() error {
			acct, err := f.AWS(ctx, t)
			if err != nil {
				return err
			}
			inv, err := acct.Inventory(ctx)
			if err != nil {
				return err
			}
			in.VPCIPv4, in.VPCIPv6 = inv.VPC.IPv4CIDRs, inv.VPC.IPv6CIDR
			return nil
		}()
		var usage *cli.UsageError
		if errors.As(err, &usage) {
			return nil, nil, err
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("the VPC's ranges are not known (AWS: %v): blocks naming them are reported, not mapped", err))
		}
	}
	in, err := policies.ReadRanges(ctx, f.Clients.Kube, f.Clients.Dynamic, f.Platform.Kind == platform.OpenShift, in)
	if err != nil {
		return nil, notes, kube.Explain("reading the cluster's ranges", err)
	}
	return in.Make(), notes, nil
}

func (ph *PoliciesPhase) plan(ctx context.Context, f *Facts) (*policies.Plan, error) {
	rs, notes, err := PolicyRanges(ctx, f, ph.Target, ph.Command)
	if err != nil {
		return nil, err
	}
	pp, err := policies.MakePlan(ctx, f.Clients.Kube, rs, ph.Namespaces)
	if err != nil {
		return nil, err
	}
	pp.Notes = append(notes, pp.Notes...)
	return pp, nil
}

func (ph *PoliciesPhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	pp, err := ph.plan(ctx, f)
	if err != nil {
		return PhasePlan{}, err
	}
	p := PhasePlan{Policies: pp, Details: pp.Summary(10)}
	p.Details = append(p.Details, pp.Notes...)
	if pp.Changes == 0 {
		p.Action = ActionNothing
		p.Summary = fmt.Sprintf("every IPv4 ipBlock of the NetworkPolicies has its IPv6 twin, or none can be derived (%d reported)", pp.Unmapped+pp.Conflicts)
	} else {
		p.Action = ActionChange
		p.Summary = fmt.Sprintf("add %d IPv6 ipBlocks to %d NetworkPolicies, each next to its IPv4 twin (%d blocks without a twin to derive, reported)", pp.Additions, pp.Changes, pp.Unmapped+pp.Conflicts)
	}
	// Blocks that name a range the network (or aws) phase is about to give
	// IPv6 get their twins once it has: the phase runs after it and plans
	// again.
	for _, dep := range []struct{ phase, what string }{{PhaseNetwork, "has no IPv6 range yet"}, {PhaseAWS, "the VPC has no IPv6 block"}} {
		planned, ok := f.Planned(dep.phase)
		if !ok || !planned.Mutating() || !waitsFor(pp, dep.what) {
			continue
		}
		p.After, p.Needs = dep.phase, "NetworkPolicies name ranges that have no IPv6 yet"
		if p.Action == ActionNothing {
			p.Action = ActionChange
		}
		p.Summary = "after the " + dep.phase + " phase, plan again: " + p.Summary
		break
	}
	return p, nil
}

func waitsFor(pp *policies.Plan, what string) bool {
	for _, it := range pp.Policies {
		for _, fd := range it.Findings {
			if fd.Action == policies.BlockUnmapped && strings.Contains(fd.Reason, what) {
				return true
			}
		}
	}
	return false
}

// Diff compares the policies two plans change.
func (*PoliciesPhase) Diff(was, now PhasePlan) string {
	if was.Policies == nil || now.Policies == nil {
		return ""
	}
	return policies.Diff(was.Policies, now.Policies)
}

// Apply adds the planned twins; a plan made before an earlier phase gave
// the ranges IPv6 is made again now, from the ranges as they are.
func (ph *PoliciesPhase) Apply(ctx context.Context, f *Facts, p PhasePlan, run *Run) (Done, error) {
	if p.Policies == nil {
		return Done{}, errors.New("internal error: the policies phase was applied without a plan")
	}
	pp := p.Policies
	if p.After != "" {
		if f.Account != nil {
			f.Account.Invalidate() // the aws phase changed the VPC
		}
		now, err := ph.plan(ctx, f)
		if err != nil {
			return Done{}, fmt.Errorf("policies: planning again after the %s phase: %w", p.After, err)
		}
		pp = now
	}
	if pp.Changes == 0 {
		return Done{Message: "every IPv4 ipBlock of the NetworkPolicies has its IPv6 twin"}, nil
	}
	run.Progress.Start(fmt.Sprintf("%s: updating %d NetworkPolicies", run.Label, pp.Changes))
	res, err := (&policies.Applier{Kube: f.Clients.Kube, Journal: ph.Journal}).Apply(ctx, pp)
	run.Progress.Done("")
	changed := res != nil && res.Changed > 0
	if err != nil {
		return Done{Changed: changed}, fmt.Errorf("policies: %w", err)
	}
	msg := fmt.Sprintf("added %d IPv6 ipBlocks to %d NetworkPolicies", pp.Additions, res.Changed)
	if n := pp.Unmapped + pp.Conflicts; n > 0 {
		msg += fmt.Sprintf("; %d blocks have no twin to derive (`%s` names them)", n, ph.Command("policies plan"))
	}
	return Done{Changed: changed, Message: msg}, nil
}
