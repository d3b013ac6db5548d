package convert

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/dns"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// PhaseDNS gives the names users reach the cluster by their AAAA records,
// once the load balancers they point at are dual-stack.
const PhaseDNS = "dns"

// DNSPhase adds the AAAA alias twins of the cluster's alias A records
// (dns apply).
type DNSPhase struct {
	Target Target
	// ZoneIDs are the --hosted-zone flags.
	ZoneIDs []string
	Journal *journal.Store
	Command func(sub string) string
	Tool    string
}

func (*DNSPhase) Name() string { return PhaseDNS }

// PlanDNS finds the zones and plans the AAAA twins for targets.
func PlanDNS(ctx context.Context, f *Facts, acct *Account, inv *awsx.Inventory, awsPlan *awsx.Plan, zoneIDs []string, tool string) (*dns.Plan, error) {
	zo, err := dns.ClusterZoneOptions(ctx, f.Clients.Dynamic, inv.VPC.ID, inv.Region, zoneIDs)
	if err != nil {
		return nil, err
	}
	zones, err := dns.FindZones(ctx, acct.AWS.Route53, zo)
	var bad *dns.BadInputError
	if errors.As(err, &bad) {
		return nil, &cli.UsageError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	return dns.MakePlan(ctx, acct.AWS.Route53, zones, dns.Targets(inv, awsPlan), tool)
}

func (d *DNSPhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	acct, err := f.AWS(ctx, d.Target)
	if errors.Is(err, awsx.ErrNotOnAWS) {
		return PhasePlan{Action: ActionNothing, Summary: "the cluster does not run on AWS: no Route 53 records to give AAAA"}, nil
	}
	if err != nil {
		return PhasePlan{}, err
	}
	inv, err := acct.Inventory(ctx)
	if err != nil {
		return PhasePlan{}, err
	}
	var awsPlan *awsx.Plan
	if p, ok := f.Planned(PhaseAWS); ok {
		awsPlan = p.AWS
	}
	dp, err := PlanDNS(ctx, f, acct, inv, awsPlan, d.ZoneIDs, d.Tool)
	if err != nil {
		return PhasePlan{}, err
	}
	p := PhasePlan{DNS: dp}
	var zoneNames []string
	for _, z := range dp.Zones {
		zoneNames = append(zoneNames, z.Name)
	}
	switch {
	case len(dp.Zones) == 0:
		p.Action, p.Summary = ActionNothing, "no hosted zone of the cluster found (none associated with VPC "+inv.VPC.ID+"); name zones with --hosted-zone"
	case len(dp.Changes) == 0:
		p.Action, p.Summary = ActionNothing, fmt.Sprintf("every alias A record to a dual-stack load balancer in %s has its AAAA (%d)", strings.Join(zoneNames, ", "), dp.Counts.WithAAAA)
	default:
		p.Action, p.Summary = ActionChange, fmt.Sprintf("add %d AAAA alias records in %s, as `%s`", len(dp.Changes), strings.Join(zoneNames, ", "), d.Command("dns apply"))
		var later []string
		now := dns.Targets(inv, nil) // as they are, before the aws phase
		for _, c := range dp.Changes {
			p.Details = append(p.Details, fmt.Sprintf("AAAA %s -> %s (zone %s)", c.Name, c.LoadBalancer, c.ZoneName))
			if t, ok := now[dns.NormalizeDNSName(c.AliasTarget)]; ok && !t.DualStack && !slices.Contains(later, t.LoadBalancer) {
				later = append(later, t.LoadBalancer)
			}
		}
		if len(later) > 0 {
			p.After = PhaseAWS
			p.Needs = "the load balancers " + strings.Join(later, ", ") + " are not dual-stack yet"
		}
	}
	for _, n := range dp.Notes {
		p.Details = append(p.Details, "not changed: "+n.Message)
	}
	return p, nil
}

// Diff compares the records two plans add.
func (*DNSPhase) Diff(was, now PhasePlan) string {
	if was.DNS == nil || now.DNS == nil {
		return ""
	}
	return dnsDiff(was.DNS, now.DNS)
}

func dnsDiff(was, now *dns.Plan) string {
	ids := func(p *dns.Plan) []string {
		var out []string
		for _, c := range p.Changes {
			out = append(out, c.ID+" -> "+c.LoadBalancer)
		}
		slices.Sort(out)
		return out
	}
	a, b := ids(was), ids(now)
	if slices.Equal(a, b) {
		return ""
	}
	return fmt.Sprintf("planned AAAA records [%s], needed now [%s]", strings.Join(first(a, 3), "; "), strings.Join(first(b, 3), "; "))
}

// Apply plans again from the records and load balancers as they are now
// (the aws phase made them dual-stack) and adds exactly the planned
// records that are still needed: one created since (by someone else) is
// skipped, one needed now but not planned is reported, not added.
func (d *DNSPhase) Apply(ctx context.Context, f *Facts, p PhasePlan, run *Run) (Done, error) {
	if p.DNS == nil || f.Account == nil {
		return Done{}, errors.New("internal error: the dns phase was applied without a plan")
	}
	inv, err := f.Account.Refresh(ctx) // the load balancers as the earlier phases left them
	if err != nil {
		return Done{}, err
	}
	live, err := PlanDNS(ctx, f, f.Account, inv, nil, d.ZoneIDs, d.Tool)
	if err != nil {
		return Done{}, err
	}
	planned := map[string]bool{}
	for _, c := range p.DNS.Changes {
		planned[c.ID] = true
	}
	todo := &dns.Plan{Zones: live.Zones}
	var extra []string
	for _, c := range live.Changes {
		if planned[c.ID] {
			todo.Changes = append(todo.Changes, c)
			delete(planned, c.ID)
		} else {
			extra = append(extra, c.Name)
		}
	}
	var gone []string
	for id := range planned {
		gone = append(gone, id)
	}
	slices.Sort(gone)
	run.Progress.Start(fmt.Sprintf("%s: adding %d AAAA records", run.Label, len(todo.Changes)))
	results, err := dns.Apply(ctx, f.Account.AWS.Route53, todo, dns.ApplyOptions{Journal: d.Journal,
		Progress: func(done, total int) {
			run.Progress.Update(fmt.Sprintf("%s: %d/%d AAAA records added", run.Label, done, total))
		}})
	run.Progress.Done("")
	added := CountStatus(results, awsx.StatusApplied)
	if err != nil {
		return Done{Changed: added > 0}, fmt.Errorf("dns: %w", err)
	}
	msg := fmt.Sprintf("added %d AAAA alias records, as planned (recorded in the journal)", added)
	if len(gone) > 0 {
		msg += fmt.Sprintf("; %d planned records were no longer needed (made since by someone else, or their target changed): %s", len(gone), strings.Join(first(gone, 3), ", "))
	}
	if len(extra) > 0 {
		msg += fmt.Sprintf("; %d more records could have an AAAA now but were not in the plan (run `%s`): %s", len(extra), d.Command("dns plan"), strings.Join(first(extra, 3), ", "))
	}
	return Done{Changed: added > 0, Message: msg}, nil
}
