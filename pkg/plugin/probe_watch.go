package plugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/timeline"
)

// DefaultWatchHost is the Host header of the ingress requests: validate's
// route, so the gateway answers as it does for validate.
const DefaultWatchHost = "httpbin.example.com"

// minInterval keeps --interval from turning the prober into a load test.
const minInterval = 10 * time.Millisecond

type probeWatchOptions struct {
	Output         *cli.OutputFlags
	Interval       time.Duration
	Duration       time.Duration
	IngressService string
	Host           string
	Path           string
	DNSServer      string
	MaxTime        time.Duration
	ConnectTimeout time.Duration
	Image          string
	JUnitFile      string
	ReportDir      string

	specs   []probe.TargetSpec
	inv     Invocation
	factory *kube.Factory
	genericiooptions.IOStreams
}

func newCmdProbeWatch(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &probeWatchOptions{
		Output:   cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		Interval: 200 * time.Millisecond, Host: DefaultWatchHost, Path: "/",
		MaxTime: 2 * time.Second, ConnectTimeout: time.Second, Image: DefaultCurlImage,
		inv: inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "watch [TARGET...]",
		Short: "Measure availability per IP family over time: steady requests, outages, latency, a timeline",
		Long: fmt.Sprintf(`Send a request to each target over IPv4 and over IPv6 every --interval,
record every one, and report per target and family: requests, failures, the
longest run of failures (the outage, in seconds), when the first request
succeeded, and the p50/p99 latency of the successful ones. Run it in another
shell while changing the cluster (or let 'upgrade --measure' run it).

TARGETs (default: ingress):
  ingress           the Istio ingress gateway, through its load balancer's name,
                    with Host: --host (as validate); followed by name, so a
                    re-created Service's new name is used as soon as it is in
                    the Service's status
  svc/NAME[:PORT]   the Service NAME in the namespace (-n), from a prober pod
                    created there for the run (curl -4 / curl -6, as
                    'probe curl'); PORT defaults to the Service's first port.
                    The pod is deleted at the end, also on Ctrl-C.
  http(s)://...     a URL, from this machine. A literal address
                    (http://[::1]:8080/) is probed in its own family only; a
                    name once per family (A for IPv4, AAAA for IPv6).

A request is up when an HTTP answer below 500 comes back (a 404 from the
gateway is a gateway that answers); a refused or timed-out connection, a
name without a record of the family and a 5xx are down. Each request uses a
new connection. The run lasts --duration, or until Ctrl-C, which still
prints the report.

Output: a live line on a terminal (elsewhere a line when a family goes down
or comes back), the summary table on stdout (-o json|yaml:
{targets[]{target, family, requests, failures, longestOutageSeconds,
firstSuccess, p50Ms, p99Ms}, ...}), --junit-file, and with --report-dir a
timeline chart (timeline.png, timeline.svg: a lane per family and target,
failures in red), every request as samples.csv and the report as
availability.json.

Exit status: 0 when no request failed, 1 when one did, 2 on bad usage.`),
		Example: fmt.Sprintf(`  # The ingress over both families for five minutes, with the timeline
  %[1]s probe watch --duration 5m --report-dir ./availability

  # In another shell while re-creating the gateway
  %[1]s probe watch ingress svc/web:8080 -n shop https://shop.example.com/health

  # A literal address: IPv6 only
  %[1]s probe watch http://[2001:db8::10]:8080/ -o json`, inv.DisplayName),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(args); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	o.Output.AddFlags(cmd)
	f.DurationVar(&o.Interval, "interval", o.Interval, "Time between requests to each target over each family.")
	f.DurationVar(&o.Duration, "duration", 0, "How long to probe (default: until Ctrl-C).")
	f.StringVar(&o.IngressService, "ingress-service", "", IngressServiceHelp)
	f.StringVar(&o.Host, "host", o.Host, "The Host header of the ingress requests.")
	f.StringVar(&o.Path, "path", o.Path, "The path of the ingress requests.")
	addDNSServerFlag(f, &o.DNSServer, "the ingress hostname and the URLs")
	f.DurationVar(&o.ConnectTimeout, "connect-timeout", o.ConnectTimeout, "In-pod curl --connect-timeout (svc/ targets).")
	f.DurationVar(&o.MaxTime, "max-time", o.MaxTime, "How long one request may take before it counts as failed.")
	f.StringVar(&o.Image, "image", o.Image, "Image of the prober pod (svc/ targets); needs sleep and curl, and must run as non-root.")
	f.StringVar(&o.JUnitFile, "junit-file", "", "Also write the results as JUnit XML to this file (a test case per target and family).")
	f.StringVar(&o.ReportDir, "report-dir", "", "Write the timeline chart (timeline.png, timeline.svg), every request (samples.csv) and the report (availability.json) into this directory.")
	return cmd
}

// Validate checks flags and targets before anything is contacted.
func (o *probeWatchOptions) Validate(args []string) error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if o.Interval < minInterval {
		return cli.Usagef("--interval must be at least %s, got %s", minInterval, o.Interval)
	}
	if o.Duration < 0 {
		return cli.Usagef("--duration must not be negative (0 probes until Ctrl-C), got %s", o.Duration)
	}
	if o.MaxTime <= 0 || o.ConnectTimeout <= 0 {
		return cli.Usagef("--max-time and --connect-timeout must be positive")
	}
	if err := validateDNSServer(o.DNSServer); err != nil {
		return err
	}
	if !strings.HasPrefix(o.Path, "/") {
		return cli.Usagef("--path must start with /, got %q", o.Path)
	}
	if len(args) == 0 {
		args = []string{probe.TargetIngress}
	}
	specs, err := parseTargetSpecs(args, "target")
	o.specs = specs
	return err
}

// parseTargetSpecs parses each target (what names them in errors), once
// each: a bad or repeated one is a usage error.
func parseTargetSpecs(args []string, what string) ([]probe.TargetSpec, error) {
	var specs []probe.TargetSpec
	seen := map[string]bool{}
	for _, a := range args {
		spec, err := probe.ParseTargetSpec(a)
		if err != nil {
			if what == "target" {
				return nil, cli.Usagef("%v", err)
			}
			return nil, cli.Usagef("%s: %v", what, err)
		}
		if seen[a] {
			return nil, cli.Usagef("%s %q is given twice", what, a)
		}
		seen[a] = true
		specs = append(specs, spec)
	}
	return specs, nil
}

// Run sets up the targets, probes until --duration or Ctrl-C, cleans up
// and reports.
func (o *probeWatchOptions) Run(ctx context.Context) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	httpProbe := probe.HTTPProbe{Resolver: probe.NewResolver(o.DNSServer), Timeout: o.MaxTime}
	var pod *probe.ProberPod
	defer func() {
		if pod == nil {
			return
		}
		if err := pod.Delete(); err != nil {
			fmt.Fprintf(o.ErrOut, "warning: %v\n", err)
			return
		}
		fmt.Fprintf(o.ErrOut, "Deleted the prober pod %s.\n", pod.Ref)
	}()
	var targets []probe.WatchTarget
	for _, spec := range o.specs {
		switch spec.Kind {
		case probe.TargetURL:
			targets = append(targets, probe.URLTarget(spec.URL, spec.Families, httpProbe))
		case probe.TargetIngress:
			c, err := o.factory.Clients()
			if err != nil {
				return err
			}
			fl, err := probe.FollowIngress(runCtx, c.Kube, o.IngressService, "ingressgateway")
			if err != nil {
				return kube.Explain("finding the ingress gateway", err)
			}
			targets = append(targets, fl.Target(o.Host, o.Path, httpProbe))
		case probe.TargetService:
			c, err := o.factory.Clients()
			if err != nil {
				return err
			}
			ns, err := o.factory.Namespace()
			if err != nil {
				return err
			}
			port, err := servicePort(ctx, c, ns, spec)
			if err != nil {
				return err
			}
			if pod == nil {
				fmt.Fprintf(o.ErrOut, "Starting the prober pod in namespace %s ...\n", ns)
				if pod, err = probe.StartProberPod(ctx, c.Kube, ns, o.Image, 2*time.Minute); err != nil {
					return probe.Interrupted(ctx, err)
				}
			}
			e := &probe.PodExecer{Config: c.Config, Client: c.Kube}
			targets = append(targets, pod.ServiceTarget(e, spec.Service, port, probe.CurlOptions{ConnectTimeout: o.ConnectTimeout, MaxTime: o.MaxTime}))
		}
	}
	w := &probe.Watcher{Targets: targets, Interval: o.Interval}
	live := o.live(w)
	w.OnSample = live.sample
	if o.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(runCtx, o.Duration)
		defer cancel()
	}
	until := "until Ctrl-C"
	if o.Duration > 0 {
		until = "for " + o.Duration.String()
	}
	live.start(fmt.Sprintf("Probing %d target(s) every %s %s", len(targets), o.Interval, until))
	w.Run(runCtx)
	live.stop()
	res := w.Report()
	res.Interrupted = ctx.Err() != nil
	return o.emit(w, res)
}

// servicePort checks that the Service exists and settles the port.
func servicePort(ctx context.Context, c *kube.Clients, ns string, spec probe.TargetSpec) (int32, error) {
	svc, err := c.Kube.CoreV1().Services(ns).Get(ctx, spec.Service, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return 0, fmt.Errorf("service %s/%s not found: check the name and the namespace (-n); list them with `kubectl -n %s get services`", ns, spec.Service, ns)
	case err != nil:
		return 0, kube.Explain("reading service "+ns+"/"+spec.Service, err)
	}
	if spec.Port != 0 {
		return spec.Port, nil
	}
	if len(svc.Spec.Ports) == 0 {
		return 0, fmt.Errorf("service %s/%s has no ports: name one as svc/%s:PORT", ns, spec.Service, spec.Service)
	}
	return svc.Spec.Ports[0].Port, nil
}

// emit writes the files, the JUnit and the report, and says how it went.
func (o *probeWatchOptions) emit(w *probe.Watcher, res probe.WatchReport) error {
	var errs []error
	if o.ReportDir != "" {
		files, err := timeline.Write(o.ReportDir, timeline.Data{Start: res.Start, End: res.End, Interval: o.Interval, Lanes: w.Lanes(), Samples: w.Samples(), Marks: w.Marks(), Report: res})
		res.Files = files
		if err != nil {
			errs = append(errs, err)
		}
	}
	if o.JUnitFile != "" {
		rep := res.Checks(report.Fail)
		if err := writeJUnitSuite(o.JUnitFile, "kubectl-dualstack-probe-watch", &rep, res.End.Sub(res.Start)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := o.Output.Print(o.Out, res, func(out io.Writer, _ bool) error { return printWatchTable(out, res) }); err != nil {
		errs = append(errs, err)
	}
	switch {
	case len(errs) > 0:
		return joinFirst(errs)
	case res.Failed():
		return cli.SilentFailure
	}
	return nil
}

// printWatchTable is the summary: one row per target and family.
func printWatchTable(out io.Writer, res probe.WatchReport) error {
	tw := printers.GetNewTabWriter(out)
	fmt.Fprintln(tw, "TARGET\tFAMILY\tREQUESTS\tFAILURES\tLONGEST OUTAGE\tFIRST SUCCESS\tP50\tP99\tLAST ERROR")
	for _, l := range res.Targets {
		first := "never"
		if l.FirstSuccess != nil {
			first = fmt.Sprintf("+%.1fs", l.FirstSuccess.Sub(res.Start).Seconds())
		}
		lastErr := "-"
		if l.LastError != "" {
			lastErr = strings.Join(strings.Fields(l.LastError), " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1fs\t%s\t%.1fms\t%.1fms\t%s\n", l.Target, l.Family, l.Requests, l.Failures, l.LongestOutageSeconds, first, l.P50Ms, l.P99Ms, lastErr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	how := ""
	if res.Interrupted {
		how = ", stopped by Ctrl-C"
	}
	fmt.Fprintf(out, "\nProbed for %.1fs every %dms%s.\n", res.DurationSeconds, res.IntervalMs, how)
	for _, f := range res.Files {
		fmt.Fprintf(out, "Wrote %s\n", f)
	}
	return nil
}

// writeJUnitSuite writes r as one JUnit test suite named suite.
func writeJUnitSuite(path, suite string, r *report.Report, elapsed time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing --junit-file: %w", err)
	}
	if err := r.WriteJUnit(f, suite, elapsed); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// liveView shows the run as it goes on stderr: on a terminal one line,
// rewritten, with each lane's counts; elsewhere a line when a lane goes
// down or comes back, so logs stay short.
type liveView struct {
	w        io.Writer
	progress *cli.Progress
	watcher  *probe.Watcher
	mu       sync.Mutex
	down     map[probe.Lane]time.Time
	done     chan struct{}
	wg       sync.WaitGroup
}

func (o *probeWatchOptions) live(w *probe.Watcher) *liveView {
	return &liveView{w: o.ErrOut, progress: cli.NewProgress(o.ErrOut), watcher: w, down: map[probe.Lane]time.Time{}}
}

func (v *liveView) start(msg string) {
	v.progress.Start(msg)
	if !v.progress.Terminal() {
		return
	}
	v.done = make(chan struct{})
	v.wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-v.done:
				return
			case <-t.C:
				var parts []string
				for _, l := range v.watcher.Report().Targets {
					parts = append(parts, fmt.Sprintf("%s %s %d/%d failed", l.Family, l.Target, l.Failures, l.Requests))
				}
				v.progress.Update(strings.Join(parts, " | "))
			}
		}
	})
}

func (v *liveView) stop() {
	if v.done != nil {
		close(v.done)
		v.wg.Wait()
	}
	v.progress.Done("")
}

func (v *liveView) sample(s probe.Sample) {
	if s.Lost || v.progress.Terminal() {
		return
	}
	lane := probe.Lane{Target: s.Target, Family: s.Family}
	v.mu.Lock()
	defer v.mu.Unlock()
	since, down := v.down[lane]
	switch {
	case !s.OK && !down:
		v.down[lane] = s.Time
		fmt.Fprintf(v.w, "%s %s %s: down: %s\n", s.Time.Format("15:04:05.000"), s.Family, s.Target, s.Error)
	case s.OK && down && s.Time.After(since):
		delete(v.down, lane)
		fmt.Fprintf(v.w, "%s %s %s: up again after %.1fs\n", s.Time.Format("15:04:05.000"), s.Family, s.Target, s.Time.Sub(since).Seconds())
	}
}
