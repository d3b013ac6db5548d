package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

// ProofResult is what `validate -o json|yaml` prints. Field names are
// stable: namespace, ingress, error, checks[], summary.
type ProofResult struct {
	Namespace string          `json:"namespace"`
	Ingress   *IngressAddress `json:"ingress,omitempty"`
	// Error is why the run stopped before or during its checks (a setup
	// failure, --timeout, Ctrl-C); the checks it could not run say so too.
	Error string `json:"error,omitempty"`
	// Notes are what to know about the checks as a whole (e.g. that the
	// answers came from a simulated cluster on loopback).
	Notes []string `json:"notes,omitempty"`
	report.Report
}

// Proof deploys the scenario, waits for it, runs the checks for both
// families and cleans up: the whole of validate. A run that stops early
// still returns a report in which every check it could not run says why.
type Proof struct {
	Clients        *kube.Clients
	Scenario       Scenario
	Checks         []string
	DNSServer      string
	Curl           CurlOptions
	IngressService string
	Keep           bool
	Timeout        time.Duration
	// Command is how the user runs this tool ("kubectl dualstack").
	Command string
	// Names are extra names users reach the cluster by (--name); OpenShift's
	// api name is added from its DNS config.
	Names []string
	// Log takes notes and progress (stderr).
	Log io.Writer
}

// Run proves it, hands the report to emit (before the cleanup, so a report
// is written whatever the cleanup does) and cleans up. err is emit's, or
// the cleanup's when emit had none.
func (p *Proof) Run(ctx context.Context, emit func(ProofResult, error) error) (err error) {
	p.Scenario.Keep = p.Keep
	ctx, cancel := context.WithTimeoutCause(ctx, p.Timeout, fmt.Errorf("validate did not finish within --timeout %s", p.Timeout))
	defer cancel()
	var d Deployment
	defer func() {
		if cerr := p.cleanup(ctx, &d); cerr != nil && err == nil {
			err = cerr
		}
	}()
	res, runErr := p.prove(ctx, &d)
	return emit(res, runErr)
}

// prove runs the scenario and returns the report so far and, when the run
// stopped before its end, why.
func (p *Proof) prove(ctx context.Context, d *Deployment) (ProofResult, error) {
	progress := cli.NewProgress(p.Log)
	defer progress.Done("")
	ns := p.Scenario.Namespace
	res := ProofResult{Namespace: ns}
	v := &Validator{
		Kube: p.Clients.Kube, Dynamic: p.Clients.Dynamic,
		Exec:     &PodExecer{Config: p.Clients.Config, Client: p.Clients.Kube},
		Resolver: NewResolver(p.DNSServer),
		Curl:     p.Curl,
		Checks:   p.Checks,
		Backoff:  300 * time.Millisecond,
		Command:  p.Command,
		Names:    append(slices.Clone(p.Names), OpenShiftNames(ctx, p.Clients.Dynamic)...),
	}
	// stopped fills in the checks a stopped run could not make: INCONCLUSIVE
	// after Ctrl-C (nothing was observed), FAIL otherwise (the cluster did
	// not let the proof happen, within --timeout).
	stopped := func(err error, fix string) (ProofResult, error) {
		var term *ErrNamespaceTerminating
		if !errors.As(err, &term) { // which says itself that time ran out
			err = Interrupted(ctx, err)
		}
		status := report.Fail
		if errors.Is(context.Cause(ctx), context.Canceled) {
			status = report.Inconclusive
		}
		res.Error = err.Error()
		res.Report = v.NotRun(d, status, err.Error(), fix)
		return res, err
	}

	p.Scenario.Progress = progress.Update
	progress.Start(fmt.Sprintf("Deploying the validate scenario in namespace %s", ns))
	if err := Deploy(ctx, p.Clients.Kube, p.Clients.Dynamic, p.Scenario, d); err != nil {
		var mesh *ErrMeshMissing
		if errors.As(err, &mesh) {
			return stopped(err, mesh.Fix)
		}
		var term *ErrNamespaceTerminating
		if errors.As(err, &term) {
			return stopped(err, fmt.Sprintf("wait for namespace %s to go (`kubectl get namespace %s`), or pick another with -n", ns, ns))
		}
		return stopped(kube.Explain("deploying the validate scenario", err), "fix what the error names and re-run")
	}
	progress.Start("Waiting for the sleep and httpbin pods to be Ready")
	if err := d.WaitReady(ctx, progress.Update); err != nil {
		// Say why, from what the scheduler and kubelet reported, with a
		// budget of its own: ctx may be the one that just ran out.
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		why := d.DiagnosePods(dctx)
		dcancel()
		switch {
		case why != "" && ctx.Err() != nil:
			err = fmt.Errorf("pods not Ready: %s", why)
		case why != "":
			err = fmt.Errorf("%w: not Ready: %s", err, why)
		}
		return stopped(err, fmt.Sprintf("fix what keeps the pods from starting (`kubectl -n %s describe pods`: scheduling, image pulls, admission), then re-run", ns))
	}
	if !p.Scenario.NoMesh && (len(p.Checks) == 0 || slices.Contains(p.Checks, CheckDNSIngress) || slices.Contains(p.Checks, CheckCurlIngress)) {
		v.Ingress, v.IngressErr = FindIngress(ctx, p.Clients.Kube, p.IngressService, p.Scenario.IngressLabel)
	}
	progress.Start("Running the checks for IPv4 and IPv6")
	res.Report = v.Run(ctx, d)
	res.Ingress, res.Notes = v.Ingress, v.Notes()
	if ctx.Err() != nil {
		// The checks cut short are INCONCLUSIVE in the report already.
		err := Interrupted(ctx, ctx.Err())
		res.Error = err.Error()
		return res, err
	}
	return res, nil
}

func (p *Proof) cleanup(ctx context.Context, d *Deployment) error {
	ns := p.Scenario.Namespace
	if p.Keep {
		if d.OwnNamespace() {
			fmt.Fprintf(p.Log, "Kept namespace %s (--keep). Delete it when done: kubectl delete namespace %s\n", ns, ns)
		} else {
			fmt.Fprintf(p.Log, "Kept validate's objects in %s (--keep). Delete them when done: kubectl -n %s delete all,serviceaccounts,gateways.networking.istio.io,virtualservices.networking.istio.io,httproutes.gateway.networking.k8s.io -l %s=%s\n",
				ns, ns, LabelRun, p.Scenario.RunID)
		}
		return nil
	}
	if err := d.Cleanup(ctx); err != nil {
		return fmt.Errorf("cleaning up: %w", err)
	}
	if d.OwnNamespace() {
		fmt.Fprintf(p.Log, "Deleted namespace %s.\n", ns)
	}
	return nil
}

// Interrupted says why a run stopped when it was Ctrl-C or a timeout,
// keeping what it was doing (err) in the message.
func Interrupted(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	switch {
	case cause == nil:
		return err
	case errors.Is(cause, context.Canceled):
		return fmt.Errorf("interrupted: %w", err)
	case err == ctx.Err():
		return cause
	default:
		return fmt.Errorf("%w: %v", cause, err)
	}
}
