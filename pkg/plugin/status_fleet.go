package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/status"
)

// defaultFleetTimeout bounds each cluster's status in the fleet view when
// --request-timeout is not set: one cluster that never answers (a VPN that
// is down, a deleted cluster) must not hold the whole table up.
const defaultFleetTimeout = time.Minute

// FleetOptions runs `status` against several contexts of the kubeconfig.
type FleetOptions struct {
	AllContexts bool
	Contexts    []string
	// Parallel bounds how many clusters are read at once.
	Parallel int
	Output   *cli.OutputFlags
	inv      Invocation
	factory  *kube.Factory

	kubeconfig *kube.Kubeconfig
	selected   []string
	timeout    time.Duration
	genericiooptions.IOStreams
}

// FleetResult is what `status --all-contexts -o json|yaml` prints: one
// entry per context, in the table's order, then the summary. Field names
// are stable.
type FleetResult struct {
	Contexts []FleetEntry `json:"contexts"`
	Summary  FleetSummary `json:"summary"`
}

// FleetEntry is one context's row, with the cluster's full report (what
// `status --context NAME -o json` prints) when it could be read.
type FleetEntry struct {
	Context string `json:"context"`
	// Cluster is the kubeconfig's cluster entry of the context.
	Cluster    string               `json:"cluster"`
	Server     string               `json:"server,omitempty"`
	AWSProfile string               `json:"awsProfile,omitempty"`
	Layers     status.LayerVerdicts `json:"layers"`
	// Failed counts the failed checks.
	Failed int `json:"failed"`
	// Error says why the cluster could not be read; there is no report then.
	Error      string        `json:"error,omitempty"`
	DurationMs int64         `json:"durationMs"`
	Report     *StatusResult `json:"report,omitempty"`
}

// FleetSummary counts the contexts by outcome.
type FleetSummary struct {
	Contexts int `json:"contexts"`
	// Passed had no failed check (warnings allowed).
	Passed      int `json:"passed"`
	Failed      int `json:"failed"`
	Unreachable int `json:"unreachable"`
}

// String is the line under the table.
func (s FleetSummary) String() string {
	return fmt.Sprintf("%s: %d without failed checks, %d with failed checks, %d unreachable",
		plural(s.Contexts, "context"), s.Passed, s.Failed, s.Unreachable)
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// addFleetFlags registers the fleet flags on status.
func (o *FleetOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.AllContexts, "all-contexts", false,
		"Report every context of the kubeconfig, one row each (--request-timeout bounds each cluster; default 1m)")
	f.StringSliceVar(&o.Contexts, "contexts", nil,
		"Report these contexts of the kubeconfig, one row each, in this order (comma-separated)")
	f.IntVar(&o.Parallel, "parallel", 8, "With --all-contexts or --contexts: how many clusters to read at once")
	_ = cmd.RegisterFlagCompletionFunc("contexts", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		k, err := o.factory.Kubeconfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return k.Contexts(), cobra.ShellCompDirectiveNoFileComp
	})
}

// requested reports whether the fleet view was asked for.
func (o *FleetOptions) requested() bool { return o.AllContexts || len(o.Contexts) > 0 }

// oneClusterFlags pick one cluster, user or server: with several contexts
// each context's own are used, so these would be silently ignored.
var oneClusterFlags = []string{"context", "cluster", "user", "server", "token", "certificate-authority",
	"client-certificate", "client-key", "tls-server-name", "insecure-skip-tls-verify", "proxy-url", "as", "as-group", "as-uid", "as-user-extra"}

// Validate checks the flags (cmd gives the inherited kubectl flags).
func (o *FleetOptions) Validate(cmd *cobra.Command) error {
	if o.AllContexts && len(o.Contexts) > 0 {
		return cli.Usagef("--all-contexts and --contexts both pick the contexts: use one")
	}
	for _, name := range oneClusterFlags {
		if cmd.Flags().Changed(name) {
			return cli.Usagef("--%s applies to one cluster; with --all-contexts or --contexts each context's own is used: drop --%s", name, name)
		}
	}
	if o.Parallel < 1 {
		return cli.Usagef("--parallel must be at least 1, got %d", o.Parallel)
	}
	for _, c := range o.Contexts {
		if strings.TrimSpace(c) == "" {
			return cli.Usagef("--contexts has an empty name: give context names separated by commas")
		}
	}
	return o.Output.Validate()
}

// Complete reads the kubeconfig and picks the contexts.
func (o *FleetOptions) Complete() error {
	k, err := o.factory.Kubeconfig()
	if err != nil {
		return err
	}
	o.kubeconfig = k
	if o.timeout, err = k.RequestTimeout(); err != nil {
		return err
	}
	if o.timeout == 0 {
		o.timeout = defaultFleetTimeout
	}
	if o.AllContexts {
		o.selected = k.Contexts()
		if len(o.selected) == 0 {
			return cli.Usagef("the kubeconfig has no contexts; check --kubeconfig or $KUBECONFIG")
		}
		return nil
	}
	o.selected, err = k.Select(o.Contexts)
	return err
}

// Run reads every selected cluster, at most Parallel at once, and prints
// one row each; cli.SilentFailure when one failed a check or was not read.
func (o *FleetOptions) Run(ctx context.Context) error {
	res := FleetResult{Contexts: make([]FleetEntry, len(o.selected))}
	g := errgroup.Group{}
	g.SetLimit(o.Parallel)
	for i, name := range o.selected {
		g.Go(func() error {
			res.Contexts[i] = o.statusOf(ctx, name)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err // interrupted: a partial table would pass for the fleet
	}
	res.Summary.Contexts = len(res.Contexts)
	for _, e := range res.Contexts {
		switch {
		case e.Error != "":
			res.Summary.Unreachable++
		case e.Failed > 0:
			res.Summary.Failed++
		default:
			res.Summary.Passed++
		}
	}
	paint := cli.NewPainter(o.Out)
	if err := o.Output.Print(o.Out, res, func(w io.Writer, wide bool) error {
		return res.printTable(w, wide, paint)
	}); err != nil {
		return err
	}
	if res.Summary.Passed != res.Summary.Contexts {
		return cli.SilentFailure
	}
	return nil
}

// statusOf is one context's row; its failures are the row's, not the run's.
func (o *FleetOptions) statusOf(ctx context.Context, name string) FleetEntry {
	info := o.kubeconfig.Info(name)
	e := FleetEntry{Context: name, Cluster: info.Cluster, Server: info.Server, AWSProfile: info.AWSProfile}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := o.read(ctx, name, info)
	e.DurationMs = time.Since(start).Milliseconds()
	if err != nil {
		// The client's own --request-timeout (the same length, started a
		// little later) can fire before the context's timer has run.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || time.Since(start) >= o.timeout {
			err = fmt.Errorf("no complete answer within %s (raise --request-timeout): %w", o.timeout, err)
		}
		e.Error = err.Error()
		return e
	}
	e.Report = &res
	e.Layers = status.Verdicts(res.Report)
	e.Failed = res.Summary.Fail
	return e
}

func (o *FleetOptions) read(ctx context.Context, name string, info kube.ContextInfo) (StatusResult, error) {
	c, err := o.kubeconfig.Clients(name)
	if err != nil {
		return StatusResult{}, err
	}
	return readStatus(ctx, c, status.Options{AWSProfile: info.AWSProfile}, o.inv.DisplayName)
}

// printTable writes one row per context, then the summary; wide adds
// columns and each cluster's full report underneath.
func (r FleetResult) printTable(w io.Writer, wide bool, paint cli.Painter) error {
	tw := printers.GetNewTabWriter(w)
	header := "CONTEXT\tCLUSTER\tPLATFORM\tVERSION\tUNDERLAY\tOVERLAY\tMESH\tEDGE\tFAILED\tERROR"
	if wide {
		header = "CONTEXT\tCLUSTER\tSERVER\tAWS PROFILE\tPLATFORM\tVERSION\tUNDERLAY\tOVERLAY\tMESH\tEDGE\tFAILED\tWARNINGS\tTIME\tERROR"
	}
	fmt.Fprintln(tw, header)
	for _, e := range r.Contexts {
		platform, version, failed, warnings := "-", "-", "-", "-"
		if e.Report != nil {
			platform, version = platformName(e.Report), versionName(e.Report)
			failed, warnings = fmt.Sprint(e.Failed), fmt.Sprint(e.Report.Summary.Warn)
		}
		verdict := func(s report.Status) string {
			if s == "" {
				return "-"
			}
			return report.PaintStatus(paint, s)
		}
		layers := strings.Join([]string{verdict(e.Layers.Underlay), verdict(e.Layers.Overlay), verdict(e.Layers.Mesh), verdict(e.Layers.Edge)}, "\t")
		errText := oneLine(e.Error)
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Context, dash(e.Cluster), dash(e.Server), dash(e.AWSProfile),
				platform, version, layers, failed, warnings, (time.Duration(e.DurationMs) * time.Millisecond).String(), errText)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Context, dash(e.Cluster), platform, version, layers, failed, errText)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s\n", r.Summary)
	if !wide {
		return nil
	}
	for _, e := range r.Contexts {
		if e.Report == nil {
			continue
		}
		fmt.Fprintf(w, "\n=== %s\n", e.Context)
		if err := e.Report.PrintTable(w, true, paint); err != nil {
			return err
		}
	}
	return nil
}

// platformName is "OpenShift/aws", "kind", ...: the kind, and the cloud
// when it is known.
func platformName(r *StatusResult) string {
	name := string(r.Cluster.Kind)
	if r.Cluster.Cloud != "" {
		name += "/" + r.Cluster.Cloud
	}
	return dash(name)
}

// versionName is the Kubernetes version, after OpenShift's when there is one.
func versionName(r *StatusResult) string {
	if r.Cluster.OpenShiftVersion != "" {
		return r.Cluster.OpenShiftVersion + " (" + dash(r.Cluster.KubernetesVersion) + ")"
	}
	return dash(r.Cluster.KubernetesVersion)
}

// oneLine keeps a table row on one line whatever an error says.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
