package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/timeline"
)

// measureInterval is how often upgrade --measure sends a request per family.
const measureInterval = 200 * time.Millisecond

// upgradeOutput is what `upgrade -o json|yaml` prints: the engine's result
// and, with --measure, what each family saw of the ingress, per phase.
type upgradeOutput struct {
	*convert.Result
	Availability *probe.WatchReport `json:"availability,omitempty"`
}

// validateMeasure checks --measure-interval and --measure-target.
func (o *UpgradeOptions) validateMeasure() error {
	if o.MeasureInterval < minInterval {
		return cli.Usagef("--measure-interval must be at least %s, got %s", minInterval, o.MeasureInterval)
	}
	if len(o.MeasureTargets) > 0 && !o.Measure {
		return cli.Usagef("--measure-target goes with --measure (it is on unless --measure=false)")
	}
	specs, err := parseTargetSpecs(o.MeasureTargets, "--measure-target")
	if err != nil {
		return err
	}
	for i, spec := range specs {
		if spec.Kind != probe.TargetURL {
			return cli.Usagef("--measure-target takes URLs (http://HOST[:PORT]/PATH); the ingress gateway is measured already, got %q", o.MeasureTargets[i])
		}
	}
	o.measureSpecs = specs
	return nil
}

// measurement is the prober running beside the phases.
type measurement struct {
	watcher *probe.Watcher
	cancel  context.CancelFunc
	done    chan struct{}
}

// startMeasure starts probing the ingress gateway through its load
// balancer's name, if it answers from here now, and marks each phase the
// engine applies. It returns nil (and says why on stderr) when it does not.
func (o *UpgradeOptions) startMeasure(ctx context.Context, eng *convert.Engine) *measurement {
	if !o.Measure || o.kube == nil {
		return nil
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	notMeasuring := func(why string) *measurement {
		cancel()
		fmt.Fprintf(o.ErrOut, "Not measuring availability: %s (--measure=false skips this check).\n", why)
		return nil
	}
	interval := o.MeasureInterval
	if interval == 0 {
		interval = measureInterval
	}
	httpProbe := probe.HTTPProbe{Resolver: resolver(o.DNSServer), Timeout: 2 * time.Second}
	var extra []probe.WatchTarget
	for _, spec := range o.measureSpecs {
		extra = append(extra, probe.URLTarget(spec.URL, spec.Families, httpProbe))
	}
	start := func(targets []probe.WatchTarget) *measurement {
		m := &measurement{watcher: &probe.Watcher{Targets: targets, Interval: interval}, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(m.done)
			m.watcher.Run(runCtx)
		}()
		var mu sync.Mutex
		eng.OnPhase = func(name string, start bool) {
			mu.Lock()
			defer mu.Unlock()
			if start {
				m.watcher.Begin(name)
			} else {
				m.watcher.End(name)
			}
		}
		names := make([]string, 0, len(targets))
		for _, t := range targets {
			names = append(names, t.Name)
		}
		fmt.Fprintf(o.ErrOut, "Measuring availability: a request over each family to %s every %s (ingress Host: %s).\n", strings.Join(names, ", "), interval, DefaultWatchHost)
		return m
	}
	// The URLs given are measured whether the ingress answers or not.
	onlyExtra := func(why string) *measurement {
		if len(extra) == 0 {
			return notMeasuring(why)
		}
		fmt.Fprintf(o.ErrOut, "Not measuring the ingress gateway: %s.\n", why)
		return start(extra)
	}
	fl, err := probe.FollowIngress(runCtx, o.kube, "", "ingressgateway")
	if err != nil {
		return onlyExtra("no ingress gateway to probe: " + err.Error())
	}
	target := fl.Target(DefaultWatchHost, "/", httpProbe)
	// Reachable means an answer over either family, within a few tries:
	// a cluster still IPv4-only answers over IPv4.
	reachable, why := false, ""
	for attempt := 0; attempt < 3 && !reachable && ctx.Err() == nil; attempt++ {
		for _, f := range probe.Families {
			out := target.Probe(ctx, f)
			if out.OK {
				reachable = true
				break
			}
			if f == probe.IPv4 {
				why = out.Error
			}
		}
		if !reachable {
			time.Sleep(300 * time.Millisecond)
		}
	}
	if !reachable {
		return onlyExtra(fmt.Sprintf("the ingress gateway %s/%s does not answer from here (%s)", fl.Namespace, fl.Name, why))
	}
	return start(append([]probe.WatchTarget{target}, extra...))
}

// stop ends the prober and reports what it saw; with --report-dir it
// writes the timeline, phases marked.
func (m *measurement) stop(o *UpgradeOptions) *probe.WatchReport {
	if m == nil {
		return nil
	}
	m.cancel()
	<-m.done
	res := m.watcher.Report()
	if o.ReportDir != "" {
		files, err := timeline.Write(o.ReportDir, timeline.Data{Start: res.Start, End: res.End, Interval: m.watcher.Interval,
			Lanes: m.watcher.Lanes(), Samples: m.watcher.Samples(), Marks: m.watcher.Marks(), Report: res})
		res.Files = files
		if err != nil {
			fmt.Fprintf(o.ErrOut, "warning: %v\n", err)
		}
	}
	return &res
}

// printAvailability is the table's part of the summary: per phase, what
// each family saw.
func printAvailability(w io.Writer, a *probe.WatchReport) error {
	if a == nil || len(a.Targets) == 0 {
		return nil
	}
	targets := []string{}
	for _, l := range a.Targets {
		if !slices.Contains(targets, l.Target) {
			targets = append(targets, l.Target)
		}
	}
	fmt.Fprintf(w, "\nAvailability of %s, a request per family every %dms, per phase:\n", strings.Join(targets, ", "), a.IntervalMs)
	tw := printers.GetNewTabWriter(w)
	many := len(targets) > 1 // then a TARGET column
	if many {
		fmt.Fprintln(tw, "PHASE\tTARGET\tFAMILY\tREQUESTS\tFAILURES\tLONGEST OUTAGE\tFIRST SUCCESS\tP50\tP99")
	} else {
		fmt.Fprintln(tw, "PHASE\tFAMILY\tREQUESTS\tFAILURES\tLONGEST OUTAGE\tFIRST SUCCESS\tP50\tP99")
	}
	row := func(phase string, l probe.LaneStats) {
		first := "never"
		if l.FirstSuccess != nil {
			first = fmt.Sprintf("+%.1fs", l.FirstSuccess.Sub(a.Start).Seconds())
		}
		if many {
			phase += "\t" + l.Target
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1fs\t%s\t%.1fms\t%.1fms\n", phase, l.Family, l.Requests, l.Failures, l.LongestOutageSeconds, first, l.P50Ms, l.P99Ms)
	}
	for _, p := range a.Phases {
		for _, l := range p.Targets {
			row(p.Name, l)
		}
	}
	for _, l := range a.Targets {
		row("(whole run)", l)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range a.Files {
		fmt.Fprintf(w, "Wrote %s\n", f)
	}
	return nil
}

// upgradeJUnit is the run as JUnit: a test case per phase, then one per
// family for the whole run and for each phase, with the same numbers as
// -o json. A family that saw failures is a WARN (a failure element): the
// outage happened, whatever the upgrade's outcome.
func upgradeJUnit(res *convert.Result, a *probe.WatchReport) report.Report {
	var rep report.Report
	for _, p := range res.Phases {
		c := report.Check{Layer: "upgrade", Name: p.Name, Message: p.Status + ": " + p.Message}
		switch p.Status {
		case convert.StatusDone, convert.StatusAlreadyDone:
			c.Status = report.Pass
		case convert.StatusFailed:
			c.Status = report.Fail
		default:
			c.Status = report.Skip
		}
		rep.Add(c)
	}
	if a != nil {
		for _, c := range a.Checks(report.Warn).Checks {
			rep.Add(c)
		}
	}
	return rep
}

// writeUpgradeJUnit writes --junit-file, if asked, in every outcome.
func (o *UpgradeOptions) writeUpgradeJUnit(res *convert.Result) error {
	if o.JUnitFile == "" {
		return nil
	}
	rep := upgradeJUnit(res, o.availability)
	return writeJUnitSuite(o.JUnitFile, "kubectl-dualstack-upgrade", &rep, time.Since(o.started))
}
