package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// GatewayPhase makes the Istio ingress gateway Service and its NLB
// dual-stack (gateway), with the AWS account the facts resolved.
type GatewayPhase struct {
	Target   Target
	Recreate bool
	Timeout  time.Duration
	Resolver gateway.Resolver
	Journal  *journal.Store
	Tool     string
	// Behind a Classic ELB without Recreate, the gateway is migrated (no
	// downtime): the records of ZoneIDs (as the dns phase finds them) move
	// to the new NLB once Reach gets an answer per family through it; with
	// RetireOld the old Service goes RetireAfter after the names moved.
	ZoneIDs     []string
	Reach       func(ctx context.Context, family, addr, host string, port int32) error
	RetireOld   bool
	RetireAfter time.Duration
}

func (*GatewayPhase) Name() string { return PhaseGateway }

func (g *GatewayPhase) run(ctx context.Context, f *Facts, dry cli.DryRun, log io.Writer, progress *cli.Progress) (*gateway.Result, error) {
	acct, err := f.AWS(ctx, g.Target)
	if err != nil {
		return nil, err
	}
	r := &gateway.Runner{
		Kube: f.Clients.Kube, AWS: acct.LoadBalancers(g.Journal), Journal: g.Journal,
		Log: log, Resolver: g.Resolver, Progress: progress,
		Show:    func(string) {},
		Confirm: func(context.Context) error { return nil }, // the engine asked once
	}
	o := gateway.Options{Policy: corev1.IPFamilyPolicyRequireDualStack, Recreate: g.Recreate, Timeout: g.Timeout, DryRun: dry, Command: g.Tool}
	res, err := r.Run(ctx, o)
	if !errors.Is(err, gateway.ErrClassic) {
		return res, err
	}
	// Behind a Classic ELB: migrate, the names moved without downtime.
	r.Names, r.Reach = acct.Names(f.Clients.Dynamic, g.Journal, g.ZoneIDs), g.Reach
	return r.Migrate(ctx, gateway.MigrateOptions{Options: o, RetireOld: g.RetireOld, RetireAfter: g.RetireAfter})
}

// migrated says whether res is a migration's.
func migrated(res *gateway.Result) bool {
	return slices.ContainsFunc(res.Actions, func(a gateway.Action) bool { return a.Kind == gateway.OpMigrateService })
}

func (g *GatewayPhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	var p PhasePlan
	gr, err := g.run(ctx, f, cli.DryRunClient, io.Discard, cli.NewProgress(io.Discard))
	switch {
	case err != nil:
		return p, err
	case gr == nil:
		return p, errors.New("no result")
	}
	p.Gateway = gr
	for _, a := range gr.Actions {
		if a.Status == "planned" {
			p.Details = append(p.Details, fmt.Sprintf("%s %s: %s", a.Kind, a.Target, a.Detail))
		}
	}
	if len(p.Details) == 0 {
		p.Action, p.Summary = ActionNothing, fmt.Sprintf("%s is already dual-stack (%s)", gr.Service, gr.Hostname)
		return p, nil
	}
	p.Action, p.Summary = ActionChange, fmt.Sprintf("make %s dual-stack", gr.Service)
	if migrated(gr) {
		retire := fmt.Sprintf("both keep serving; `%s gateway --retire` deletes the old one later", g.Tool)
		if g.RetireOld {
			retire = fmt.Sprintf("the old one is deleted %s after the names answer the new one (--retire-old-gateway)", g.RetireAfter)
		}
		p.Summary = fmt.Sprintf("migrate %s off its Classic ELB without downtime: a dual-stack NLB Service %s next to it, the Route 53 names moved to it once it answers both families; %s (--recreate-gateway re-creates it instead, with an outage)",
			gr.Service, gateway.MigratedName(gr.Service), retire)
	}
	if len(gr.NeedsIPv6Subnets) > 0 {
		// Data, not an error message: the load balancer's subnets need
		// IPv6 first, which the aws phase gives them or not.
		p.After = PhaseAWS
		p.Needs = fmt.Sprintf("the load balancer of %s is in subnets without IPv6 (%s)", gr.Service, strings.Join(gr.NeedsIPv6Subnets, ", "))
		p.Summary = "after the underlay (its load balancer's subnets get IPv6 in the aws phase): " + p.Summary
	}
	if slices.ContainsFunc(gr.Actions, func(a gateway.Action) bool { return a.Kind == "recreate-service" }) {
		host := gr.Hostname
		if host == "" { // an interrupted re-creation: the old Service is gone
			host = gr.PreviousHostname
		}
		p.Summary += fmt.Sprintf("; --recreate-gateway: its Classic ELB is replaced by a dual-stack NLB and the hostname %s changes", host)
	}
	if m, err := f.Mesh(ctx); err == nil {
		if w := meshWarning(m, g.Tool); w != "" {
			p.Details = append(p.Details, "warning: "+w)
		}
	}
	return p, nil
}

// Diff compares the gateway actions of two plans.
func (*GatewayPhase) Diff(was, now PhasePlan) string {
	if !slices.Equal(was.Details, now.Details) {
		return fmt.Sprintf("was [%s], is now [%s]", strings.Join(was.Details, "; "), strings.Join(now.Details, "; "))
	}
	return ""
}

func (g *GatewayPhase) Apply(ctx context.Context, f *Facts, _ PhasePlan, run *Run) (Done, error) {
	if m, err := f.Mesh(ctx); err == nil {
		if w := meshWarning(m, g.Tool); w != "" {
			fmt.Fprintln(run.Log, "Warning: "+w)
		}
	}
	r, err := g.run(ctx, f, cli.DryRunNone, run.Log, cli.NewProgress(run.Log))
	if err != nil {
		return Done{Changed: r != nil && r.Changed}, fmt.Errorf("gateway: %w", err)
	}
	msg := fmt.Sprintf("%s is dual-stack: %s answers A %s, AAAA %s", r.Service, r.Hostname, strings.Join(r.IPv4, " "), strings.Join(r.IPv6, " "))
	switch {
	case migrated(r):
		msg = fmt.Sprintf("%s serves dual-stack at %s (A %s, AAAA %s); %d Route 53 record(s) moved from %s",
			gateway.MigratedName(r.Service), r.Hostname, strings.Join(r.IPv4, " "), strings.Join(r.IPv6, " "), len(r.Moves), r.PreviousHostname)
		if slices.ContainsFunc(r.Actions, func(a gateway.Action) bool { return a.Kind == gateway.OpRetireService && a.Status == "applied" }) {
			msg += fmt.Sprintf("; %s is retired", r.Service)
		} else {
			msg += fmt.Sprintf("; %s still serves behind its Classic ELB: `%s gateway --retire` deletes it once nothing uses %s", r.Service, g.Tool, r.PreviousHostname)
		}
	case r.PreviousHostname != "":
		msg += fmt.Sprintf(" (hostname changed from %s: update DNS records that point at it)", r.PreviousHostname)
	}
	return Done{Message: msg, Changed: r.Changed}, nil
}

// meshWarning says what Istio lacks for dual-stack ("" when nothing).
func meshWarning(m *istio.Facts, tool string) string {
	switch {
	case !m.Found:
		return "no istiod found; the gateway Service is changed anyway, but the mesh needs Istio 1.17+ with ISTIO_DUAL_STACK=true."
	case !m.IstiodDualStack || !m.ProxyDualStack:
		return fmt.Sprintf("Istio is not set up for dual-stack (ISTIO_DUAL_STACK in istiod: %v, in proxy metadata: %v); see %s gateway --print-istio-values",
			m.IstiodDualStack, m.ProxyDualStack, tool)
	}
	return ""
}
