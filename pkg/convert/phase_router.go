package convert

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/router"
)

// PhaseRouter moves OpenShift's default router from its Classic ELB to an
// NLB. It runs only when named (--phases ...,router): the ingress operator
// re-creates the router Service, so *.apps is down for minutes and its
// hostname changes.
const PhaseRouter = "router"

// RouterPhase patches the default IngressController's load balancer type
// (router).
type RouterPhase struct {
	Timeout time.Duration
	Journal *journal.Store
}

func (*RouterPhase) Name() string { return PhaseRouter }

func (r *RouterPhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	st, err := router.Read(ctx, f.Clients.Kube, f.Clients.Dynamic)
	if err != nil {
		return PhasePlan{}, kube.Explain("reading the default router", err)
	}
	rp := router.MakePlan(st)
	p := PhasePlan{Router: rp, Summary: rp.Summary, Action: ActionNothing}
	if rp.Action == router.ActionChange {
		p.Action = ActionChange
		p.Details = append([]string{"merge patch: " + rp.Patch}, rp.Notes...)
	}
	return p, nil
}

// Diff compares what two plans read of the IngressController.
func (*RouterPhase) Diff(was, now PhasePlan) string {
	if was.Router == nil || now.Router == nil {
		return ""
	}
	if was.Router.Current.ResourceVersion != now.Router.Current.ResourceVersion || was.Router.Current.UID != now.Router.Current.UID {
		return fmt.Sprintf("%s changed (resourceVersion %s, now %s)", router.Ref, was.Router.Current.ResourceVersion, now.Router.Current.ResourceVersion)
	}
	return ""
}

func (r *RouterPhase) Apply(ctx context.Context, f *Facts, p PhasePlan, run *Run) (Done, error) {
	if p.Router == nil {
		return Done{}, errors.New("internal error: the router phase was applied without a plan")
	}
	c := &router.Changer{Kube: f.Clients.Kube, Dynamic: f.Clients.Dynamic, Journal: r.Journal, Timeout: r.Timeout,
		Progress: func(msg string) { run.Progress.Update(run.Label + ": " + msg) }}
	run.Progress.Start(run.Label + ": patching " + router.Ref)
	res, err := c.Apply(ctx, p.Router)
	run.Progress.Done("")
	changed := res != nil && res.Status == "changed"
	if err != nil {
		return Done{Changed: changed}, fmt.Errorf("router: %w", err)
	}
	if f.Account != nil {
		f.Account.Invalidate() // a load balancer was replaced
	}
	return Done{Changed: changed, Message: res.Message + "; its NLB is IPv4 until the aws phase makes it dualstack"}, nil
}
