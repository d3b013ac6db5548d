package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

// DefaultValidateNamespace is where validate works unless -n says otherwise.
const DefaultValidateNamespace = "dualstack-validate"

// ValidateOptions runs the end-to-end proof.
type ValidateOptions struct {
	Output   *cli.OutputFlags
	Scenario probe.Scenario
	Keep     bool
	Checks   []string
	// Names are --name: more names users reach the cluster by.
	Names          []string
	Timeout        time.Duration
	ConnectTimeout time.Duration
	MaxTime        time.Duration
	IngressService string
	DNSServer      string
	JUnitFile      string

	inv     Invocation
	factory *kube.Factory
	clients *kube.Clients
	// result is the last report emitted, for upgrade, which runs validate
	// in process.
	result *ValidateResult
	genericiooptions.IOStreams
}

// ValidateResult is what `validate -o json|yaml` prints.
type ValidateResult = probe.ProofResult

// newValidateOptions is validate with its defaults (upgrade runs it in
// process with these).
func newValidateOptions(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *ValidateOptions {
	return &ValidateOptions{
		Output:  cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		inv:     inv,
		factory: factory,
		Scenario: probe.Scenario{
			Host:         "httpbin.example.com",
			IngressLabel: "ingressgateway",
			Gateway:      "istio-system/istio-ingressgateway",
			CurlImage:    DefaultCurlImage,
			HTTPBinImage: "ghcr.io/mccutchen/go-httpbin:v2.26.0",
		},
		Timeout:        5 * time.Minute,
		ConnectTimeout: probe.DefaultCurlOptions.ConnectTimeout,
		MaxTime:        probe.DefaultCurlOptions.MaxTime,
		IOStreams:      streams,
	}
}

// NewCmdValidate builds `validate`.
func NewCmdValidate(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := newValidateOptions(inv, streams, factory)
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Prove IPv4/IPv6 dual-stack end to end: pods, Services, in-mesh curl, DNS, the ingress",
		Long: fmt.Sprintf(`Deploy a small scenario in its own namespace and prove, for IPv4 and IPv6
separately, that dual-stack works end to end:

  pod-ips       the sleep and httpbin pods have an IP of the family
  service-ips   their RequireDualStack Services have a cluster IP of the family
  curl-service  exec in the sleep pod: curl -4|-6 http://httpbin:8000 -> 200
                (through the mesh: server: envoy)
  dns-service   in-pod A|AAAA lookup of the httpbin Service name
  dns-ingress   the ingress hostname has A|AAAA records (--dns-server to ask one server)
  curl-ingress  from here, -4|-6 through the ingress with Host: httpbin.example.com -> 200
                (server: istio-envoy)

The namespace (default %[2]s, -n to change) is labelled for sidecar injection
and enforces the restricted Pod Security Standard; the pods run as non-root
with a ServiceAccount of their own and no token. The families are checked
concurrently; a check whose result was lost is retried, then reported
INCONCLUSIVE, never PASS. Everything created is deleted at the end, also on
Ctrl-C or --timeout, unless --keep. An existing namespace is never used unless
--namespace-reuse, and then only validate's own objects are removed; one
still Terminating from an earlier run is waited for, within --timeout.

The report (stdout and --junit-file) is written whatever happens: when the run
stops early (Istio missing, pods never Ready, --timeout, Ctrl-C) every check
it could not run says why.

Exit status: 0 when every check passed, 1 otherwise, 2 on bad usage.`, inv.DisplayName, DefaultValidateNamespace),
		Example: fmt.Sprintf(`  # The whole proof, as a table
  %[1]s validate

  # JSON for scripts and a JUnit file for CI
  %[1]s validate -o json --junit-file validate.xml

  # Only the in-cluster checks, without Istio
  %[1]s validate --no-mesh --checks pod-ips,service-ips,curl-service,dns-service`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(cmd); err != nil {
				// The flags were fine but name no cluster we can reach:
				// still write the report, so a CI job has one to read.
				v := &probe.Validator{Checks: o.Checks}
				return o.emit(time.Now(), ValidateResult{Namespace: o.Scenario.Namespace, Report: v.NotRun(nil, report.Fail, err.Error(), "fix the kubeconfig or its flags and re-run")}, err)
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	o.Output.AddFlags(cmd)
	f.BoolVar(&o.Keep, "keep", false, "Leave the namespace and objects in place for debugging (and print how to delete them).")
	f.BoolVar(&o.Scenario.NamespaceReuse, "namespace-reuse", false, "Use an existing namespace; only validate's own objects are created and removed there.")
	f.BoolVar(&o.Scenario.NoMesh, "no-mesh", false, "No sidecar injection and no ingress route: prove the cluster network only.")
	f.StringVar(&o.Scenario.Revision, "revision", "", "Label the namespace istio.io/rev=REVISION instead of istio-injection=enabled (istiod runs a revision).")
	f.BoolVar(&o.Scenario.GatewayAPI, "gateway-api", false, "Route the ingress with a Gateway API HTTPRoute instead of an Istio Gateway + VirtualService.")
	f.StringVar(&o.Scenario.Gateway, "gateway", o.Scenario.Gateway, "With --gateway-api: the parent Gateway as namespace/name.")
	f.StringVar(&o.Scenario.Host, "host", o.Scenario.Host, "The host name routed through the ingress gateway.")
	f.StringVar(&o.IngressService, "ingress-service", "", IngressServiceHelp)
	addDNSServerFlag(f, &o.DNSServer, "the ingress hostname")
	f.StringSliceVar(&o.Checks, "checks", nil, "Run only these checks: "+strings.Join(probe.KnownChecks, ","))
	f.StringSliceVar(&o.Names, "name", nil, "A name users reach the cluster by, resolved per family by the dns-names check (repeatable; OpenShift's api.<baseDomain> is always checked)")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "Bound the whole run, cleanup excepted.")
	f.DurationVar(&o.ConnectTimeout, "connect-timeout", o.ConnectTimeout, "curl --connect-timeout for each request.")
	f.DurationVar(&o.MaxTime, "max-time", o.MaxTime, "curl --max-time for each request.")
	f.StringVar(&o.Scenario.CurlImage, "curl-image", o.Scenario.CurlImage, "Image of the sleep pod; needs sleep, curl and getent, and must run as non-root.")
	f.StringVar(&o.Scenario.HTTPBinImage, "httpbin-image", o.Scenario.HTTPBinImage, "Image of httpbin, listening on $PORT (8080) as non-root.")
	f.StringVar(&o.JUnitFile, "junit-file", "", "Also write the results as JUnit XML to this file.")
	_ = cmd.RegisterFlagCompletionFunc("checks", cobra.FixedCompletions(probe.KnownChecks, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// Validate checks the flags.
func (o *ValidateOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if err := validateDNSServer(o.DNSServer); err != nil {
		return err
	}
	for _, c := range o.Checks {
		if !slices.Contains(probe.KnownChecks, c) {
			return cli.Usagef("unknown check %q in --checks: choose from %s", c, strings.Join(probe.KnownChecks, ","))
		}
	}
	for _, n := range o.Names {
		if n == "" || strings.ContainsAny(n, "/: ") || strings.HasPrefix(n, ".") {
			return cli.Usagef("--name %q is not a DNS name (give a host name such as api.example.com, no scheme or port)", n)
		}
	}
	if o.Timeout <= 0 || o.ConnectTimeout <= 0 || o.MaxTime <= 0 {
		return cli.Usagef("--timeout, --connect-timeout and --max-time must be positive")
	}
	if o.Scenario.GatewayAPI && !strings.Contains(o.Scenario.Gateway, "/") {
		return cli.Usagef("--gateway must be namespace/name, got %q", o.Scenario.Gateway)
	}
	return nil
}

// Complete builds the clients and settles the namespace: -n when given,
// otherwise dualstack-validate (never the context's namespace).
func (o *ValidateOptions) Complete(cmd *cobra.Command) error {
	o.Scenario.Namespace = DefaultValidateNamespace
	if f := cmd.Flags().Lookup("namespace"); f != nil && f.Changed {
		o.Scenario.Namespace = f.Value.String()
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	o.Scenario.RunID = hex.EncodeToString(id)
	c, err := o.factory.Clients()
	if err != nil {
		return err
	}
	o.clients = c
	return nil
}

// Run deploys, waits, checks, reports and cleans up. The report (stdout and
// --junit-file) is written whatever happens: a run that stops early reports
// every check it could not run, and why.
func (o *ValidateOptions) Run(ctx context.Context) error {
	start := time.Now()
	p := &probe.Proof{
		Clients: o.clients, Scenario: o.Scenario, Checks: o.Checks, DNSServer: o.DNSServer,
		Curl:           probe.CurlOptions{ConnectTimeout: o.ConnectTimeout, MaxTime: o.MaxTime},
		IngressService: o.IngressService, Keep: o.Keep, Timeout: o.Timeout, Log: o.ErrOut, Command: o.inv.DisplayName, Names: o.Names,
	}
	return p.Run(ctx, func(res ValidateResult, runErr error) error { return o.emit(start, res, runErr) })
}

// emit writes the report to stdout and --junit-file and returns the error
// to exit with: runErr when the run stopped early, else a silent failure
// unless every check passed.
func (o *ValidateOptions) emit(start time.Time, res ValidateResult, runErr error) error {
	o.result = &res
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	if o.JUnitFile != "" {
		if err := writeJUnit(o.JUnitFile, &res.Report, time.Since(start)); err != nil {
			errs = append(errs, err)
		}
	}
	paint := cli.NewPainter(o.Out)
	if err := o.Output.Print(o.Out, res, func(w io.Writer, _ bool) error {
		if err := res.Report.PrintProofTable(w, paint); err != nil {
			return err
		}
		for _, n := range res.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
		return nil
	}); err != nil {
		errs = append(errs, err)
	}
	switch {
	case len(errs) > 0:
		// The first error decides the exit code (a bad kubeconfig stays 2).
		return joinFirst(errs)
	case !res.AllPassed():
		return cli.SilentFailure
	}
	return nil
}

// joinFirst joins errors on one line, keeping the first one's type (and so
// its exit code) reachable through errors.As.
func joinFirst(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	var rest []string
	for _, e := range errs[1:] {
		rest = append(rest, e.Error())
	}
	return fmt.Errorf("%w; also: %s", errs[0], strings.Join(rest, "; "))
}

func writeJUnit(path string, r *report.Report, elapsed time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing --junit-file: %w", err)
	}
	if err := r.WriteJUnit(f, "kubectl-dualstack-validate", elapsed); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
