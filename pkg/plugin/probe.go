package plugin

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
)

// NewCmdProbe builds `probe curl` and `probe dns`: ad-hoc looks at both
// families side by side.
func NewCmdProbe(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Ad-hoc: curl or resolve over IPv4 and IPv6 side by side",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCmdProbeCurl(inv, streams, factory), newCmdProbeDNS(inv, streams, factory))
	return cmd
}

// ProbeRow is one family's result; `-o json` prints {results: [...]}.
type ProbeRow struct {
	Family   probe.Family `json:"family"`
	OK       bool         `json:"ok"`
	RemoteIP string       `json:"remoteIP,omitempty"`
	HTTPCode int          `json:"httpCode,omitempty"`
	Seconds  float64      `json:"seconds,omitempty"`
	Server   string       `json:"server,omitempty"`
	Addrs    []string     `json:"addresses,omitempty"`
	Source   string       `json:"source,omitempty"` // workstation or the pod
	Error    string       `json:"error,omitempty"`
}

// ProbeResult is the output of a probe.
type ProbeResult struct {
	Target  string     `json:"target"`
	Results []ProbeRow `json:"results"`
}

type probeOptions struct {
	Output         *cli.OutputFlags
	Container      string
	From           string
	DNSServer      string
	ConnectTimeout time.Duration
	MaxTime        time.Duration
	factory        *kube.Factory
	genericiooptions.IOStreams
}

func newProbeOptions(streams genericiooptions.IOStreams, factory *kube.Factory) *probeOptions {
	return &probeOptions{
		Output:         cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		ConnectTimeout: probe.DefaultCurlOptions.ConnectTimeout,
		MaxTime:        probe.DefaultCurlOptions.MaxTime,
		factory:        factory,
		IOStreams:      streams,
	}
}

func newCmdProbeCurl(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := newProbeOptions(streams, factory)
	cmd := &cobra.Command{
		Use:     "curl POD URL",
		Short:   "Exec curl -4 and curl -6 to URL from a pod, side by side (remote IP, HTTP code, time)",
		Example: fmt.Sprintf(`  %[1]s probe curl sleep-7d9c http://httpbin:8000/get -n demo -c sleep`, inv.DisplayName),
		Args:    usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Output.Validate(); err != nil {
				return err
			}
			return o.runCurl(cmd.Context(), args[0], args[1])
		},
	}
	o.Output.AddFlags(cmd)
	cmd.Flags().StringVarP(&o.Container, "container", "c", "", "Container to exec in (default: the pod's first).")
	cmd.Flags().DurationVar(&o.ConnectTimeout, "connect-timeout", o.ConnectTimeout, "curl --connect-timeout.")
	cmd.Flags().DurationVar(&o.MaxTime, "max-time", o.MaxTime, "curl --max-time.")
	return cmd
}

func newCmdProbeDNS(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := newProbeOptions(streams, factory)
	cmd := &cobra.Command{
		Use:   "dns HOST",
		Short: "Resolve A and AAAA of HOST from here (and with --from POD, inside a pod)",
		Example: fmt.Sprintf(`  %[1]s probe dns a1b2.elb.us-east-1.amazonaws.com
  %[1]s probe dns httpbin --from sleep -n demo`, inv.DisplayName),
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Output.Validate(); err != nil {
				return err
			}
			return o.runDNS(cmd.Context(), args[0])
		},
	}
	o.Output.AddFlags(cmd)
	cmd.Flags().StringVar(&o.From, "from", "", "Also resolve inside this pod, with its resolver (needs getent in the image).")
	cmd.Flags().StringVarP(&o.Container, "container", "c", "", "With --from: the container (default: the pod's first).")
	cmd.Flags().StringVar(&o.DNSServer, "dns-server", "", "Ask this DNS server (host or host:port) instead of the system resolver.")
	return cmd
}

func (o *probeOptions) execer() (*probe.PodExecer, string, error) {
	c, err := o.factory.Clients()
	if err != nil {
		return nil, "", err
	}
	ns, err := o.factory.Namespace()
	if err != nil {
		return nil, "", err
	}
	return &probe.PodExecer{Config: c.Config, Client: c.Kube}, ns, nil
}

func (o *probeOptions) runCurl(ctx context.Context, pod, url string) error {
	e, ns, err := o.execer()
	if err != nil {
		return err
	}
	target := probe.PodRef{Namespace: ns, Name: pod, Container: o.Container}
	rows := make([]ProbeRow, len(probe.Families))
	var wg sync.WaitGroup
	for i, f := range probe.Families {
		wg.Go(func() {
			row := ProbeRow{Family: f, Source: target.String()}
			res, err := probe.Curl(ctx, e, target, f, url, probe.CurlOptions{ConnectTimeout: o.ConnectTimeout, MaxTime: o.MaxTime})
			switch {
			case err != nil:
				row.Error = "result lost: " + kube.Explain("exec", err).Error()
			case res.ExitCode != 0:
				row.Error = res.Describe()
			default:
				row.OK = res.HTTPCode >= 200 && res.HTTPCode < 400
				row.RemoteIP, row.HTTPCode, row.Seconds, row.Server = res.RemoteIP, res.HTTPCode, res.Seconds, res.Server
			}
			rows[i] = row
		})
	}
	wg.Wait()
	return o.print(ProbeResult{Target: url, Results: rows}, []string{"FAMILY", "REMOTE IP", "CODE", "TIME", "SERVER", "ERROR"}, func(r ProbeRow) []string {
		return []string{string(r.Family), r.RemoteIP, code(r.HTTPCode), fmt.Sprintf("%.0fms", r.Seconds*1000), r.Server, r.Error}
	})
}

func (o *probeOptions) runDNS(ctx context.Context, host string) error {
	var rows []ProbeRow
	resolver := probe.NewResolver(o.DNSServer)
	for _, f := range probe.Families {
		row := ProbeRow{Family: f, Source: "workstation"}
		addrs, err := probe.LookupFamily(ctx, resolver, f, host)
		row.Addrs, row.OK = addrs, err == nil && len(addrs) > 0
		if err != nil {
			row.Error = err.Error()
		} else if len(addrs) == 0 {
			row.Error = "no " + f.RecordType() + " record"
		}
		rows = append(rows, row)
	}
	if o.From != "" {
		e, ns, err := o.execer()
		if err != nil {
			return err
		}
		target := probe.PodRef{Namespace: ns, Name: o.From, Container: o.Container}
		for _, f := range probe.Families {
			row := ProbeRow{Family: f, Source: target.String()}
			addrs, res, err := probe.InPodLookup(ctx, e, target, f, host)
			row.Addrs, row.OK = addrs, err == nil && len(addrs) > 0
			switch {
			case err != nil:
				row.Error = err.Error()
			case len(addrs) == 0:
				row.Error = fmt.Sprintf("no %s address (getent exit %d)", f, res.ExitCode)
			}
			rows = append(rows, row)
		}
	}
	return o.print(ProbeResult{Target: host, Results: rows}, []string{"FROM", "FAMILY", "ADDRESSES", "ERROR"}, func(r ProbeRow) []string {
		return []string{r.Source, string(r.Family), strings.Join(r.Addrs, ","), r.Error}
	})
}

func (o *probeOptions) print(res ProbeResult, header []string, row func(ProbeRow) []string) error {
	if err := o.Output.Print(o.Out, res, func(w io.Writer, _ bool) error {
		tw := printers.GetNewTabWriter(w)
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, r := range res.Results {
			cells := row(r)
			for i, c := range cells {
				if c == "" {
					cells[i] = "-"
				}
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		return tw.Flush()
	}); err != nil {
		return err
	}
	for _, r := range res.Results {
		if !r.OK {
			return cli.SilentFailure
		}
	}
	return nil
}

func code(c int) string {
	if c == 0 {
		return ""
	}
	return fmt.Sprint(c)
}
