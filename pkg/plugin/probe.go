package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
)

// NewCmdProbe builds `probe curl` and `probe dns` (ad-hoc looks at both
// families side by side) and `probe watch` (availability over time).
func NewCmdProbe(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Ad-hoc: curl or resolve over IPv4 and IPv6 side by side; watch availability per family over time",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCmdProbeCurl(inv, streams, factory), newCmdProbeDNS(inv, streams, factory), newCmdProbeWatch(inv, streams, factory))
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
		Args:    namedArgs("POD", "URL"),
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
		Args: namedArgs("HOST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Output.Validate(); err != nil {
				return err
			}
			if err := validateDNSServer(o.DNSServer); err != nil {
				return err
			}
			return o.runDNS(cmd.Context(), args[0])
		},
	}
	o.Output.AddFlags(cmd)
	cmd.Flags().StringVar(&o.From, "from", "", "Also resolve inside this pod, with its resolver (needs getent in the image).")
	cmd.Flags().StringVarP(&o.Container, "container", "c", "", "With --from: the container (default: the pod's first).")
	addDNSServerFlag(cmd.Flags(), &o.DNSServer, "the name")
	return cmd
}

// execer builds the exec client for the pod named on the command line and
// checks that the pod can be exec'd in.
func (o *probeOptions) execer(ctx context.Context, pod string) (*probe.PodExecer, probe.PodRef, error) {
	c, err := o.factory.Clients()
	if err != nil {
		return nil, probe.PodRef{}, err
	}
	ns, err := o.factory.Namespace()
	if err != nil {
		return nil, probe.PodRef{}, err
	}
	ref := probe.PodRef{Namespace: ns, Name: pod, Container: o.Container}
	if err := checkPod(ctx, c.Kube, ref); err != nil {
		return nil, ref, err
	}
	return &probe.PodExecer{Config: c.Config, Client: c.Kube}, ref, nil
}

// checkPod fails early, with one error on stderr, when the pod is missing,
// not running or has no such container. Without it both families would
// show the same exec failure as two rows of results on stdout, and the
// apiserver's answer is lost on the way: the SPDY fallback turns it into
// an untyped "unable to upgrade connection".
func checkPod(ctx context.Context, kc kubernetes.Interface, ref probe.PodRef) error {
	pod, err := kc.CoreV1().Pods(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("pod %s not found: check the name and the namespace (-n); list them with `kubectl -n %s get pods`", ref, ref.Namespace)
	case apierrors.IsForbidden(err):
		// Exec may be allowed where reading pods is not: let it decide.
		return nil
	case err != nil:
		return kube.Explain("reading pod "+ref.String(), err)
	}
	if ref.Container != "" {
		var names []string
		for _, c := range pod.Spec.Containers {
			names = append(names, c.Name)
		}
		if !slices.Contains(names, ref.Container) {
			return fmt.Errorf("pod %s has no container %q: pass -c with one of %s", ref, ref.Container, strings.Join(names, ", "))
		}
	}
	if phase := pod.Status.Phase; phase != corev1.PodRunning {
		if phase == "" {
			phase = corev1.PodPending // as kubectl shows a pod with no status yet
		}
		return fmt.Errorf("pod %s is %s, not Running: nothing can run in it yet (see `kubectl -n %s describe pod %s`)", ref, phase, ref.Namespace, ref.Name)
	}
	return nil
}

func (o *probeOptions) runCurl(ctx context.Context, pod, url string) error {
	e, target, err := o.execer(ctx, pod)
	if err != nil {
		return err
	}
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
		e, target, err := o.execer(ctx, o.From)
		if err != nil {
			return err
		}
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
