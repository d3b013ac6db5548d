package plugin

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// GatewayOptions makes the Istio ingress gateway Service dual-stack.
type GatewayOptions struct {
	Service          string
	Prefer           bool
	Recreate         bool
	Timeout          time.Duration
	DNSServer        string
	PrintIstioValues bool

	Target   awsTargetFlags
	Mutation *cli.MutationFlags
	Output   *cli.OutputFlags

	inv     Invocation
	factory *kube.Factory
	dryRun  cli.DryRun
	// account, when set, is the AWS account already resolved.
	account *convert.Account
	// result is the last result, for upgrade, which runs gateway in process.
	result *gateway.Result
	genericiooptions.IOStreams
}

// NewCmdGateway builds `gateway`.
func NewCmdGateway(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &GatewayOptions{
		Timeout: 10 * time.Minute, Mutation: cli.NewMutationFlags(),
		Output: cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		inv:    inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Make the Istio ingress gateway Service and its AWS load balancer dual-stack",
		Long: `Make the Istio ingress gateway Service (label istio=ingressgateway, or --ingress-service)
dual-stack: ipFamilyPolicy RequireDualStack (PreferDualStack with --prefer),
ipFamilies with its primary family first, and the AWS annotations for a
dualstack NLB; only those fields are patched. Then switch the NLB behind it
to IpAddressType dualstack (recorded in the journal, so 'aws rollback' undoes
it) and wait until its hostname answers both A and AAAA.

A Classic ELB cannot serve IPv6 in a VPC and a Service's load-balancer type
cannot change in place: with --recreate the Service is deleted and re-created
as an NLB with the same ports, nodePorts, selector, labels, annotations and
traffic policy. Its hostname changes.

A second run changes nothing. --print-istio-values prints the istiod and
mesh settings that enable ISTIO_DUAL_STACK for the install method found.`,
		Example: fmt.Sprintf(`  %[1]s gateway
  %[1]s gateway --ingress-service istio-system/istio-ingressgateway --recreate --yes
  %[1]s gateway --dry-run=client -o json
  %[1]s gateway --print-istio-values`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Service, "ingress-service", "", IngressServiceHelp)
	// The old name, kept working: validate has always said --ingress-service.
	f.StringVar(&o.Service, "service", "", IngressServiceHelp)
	_ = f.MarkDeprecated("service", "use --ingress-service")
	_ = f.MarkHidden("service")
	f.BoolVar(&o.Prefer, "prefer", false, "Use ipFamilyPolicy PreferDualStack instead of RequireDualStack")
	f.BoolVar(&o.Recreate, "recreate", false, "Behind a Classic ELB: delete and re-create the Service as an NLB (its hostname changes)")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for the load balancer and DNS")
	addDNSServerFlag(f, &o.DNSServer, "the load balancer's hostname")
	f.BoolVar(&o.PrintIstioValues, "print-istio-values", false, "Print the Istio settings that enable dual-stack, and change nothing")
	o.Target.addFlags(cmd)
	o.Target.addJournalFlag(cmd)
	o.Mutation.AddFlags(cmd)
	o.Output.AddFlags(cmd)
	return cmd
}

// Validate checks the flags.
func (o *GatewayOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	dry, err := o.Mutation.Strategy()
	if err != nil {
		return err
	}
	o.dryRun = dry
	if o.Timeout <= 0 {
		return cli.Usagef("--timeout must be positive, got %s", o.Timeout)
	}
	return validateDNSServer(o.DNSServer)
}

// Run does the work.
func (o *GatewayOptions) Run(ctx context.Context) error {
	kc, err := o.factory.Clients()
	if err != nil {
		return err
	}
	facts, err := istio.Inspect(ctx, kc.Kube, kc.Dynamic)
	if err != nil {
		return err
	}
	if o.PrintIstioValues {
		_, err := fmt.Fprintln(o.Out, istio.EnableInstructions(facts))
		return err
	}
	o.warnIstio(facts)

	s := o.account
	if s == nil {
		if s, err = o.Target.resolve(ctx, o.factory); err != nil {
			return err
		}
	}
	store, release, err := o.Target.Journal.open(ctx, kc.Kube, o.dryRun, "gateway")
	if err != nil {
		return err
	}
	defer release()
	policy := corev1.IPFamilyPolicyRequireDualStack
	if o.Prefer {
		policy = corev1.IPFamilyPolicyPreferDualStack
	}
	planOut := o.Out
	if o.Output.Structured() {
		planOut = o.ErrOut // stdout carries only the JSON/YAML
	}
	r := &gateway.Runner{
		Kube:     kc.Kube,
		AWS:      s.LoadBalancers(store),
		Journal:  store,
		Log:      o.ErrOut,
		Resolver: resolver(o.DNSServer),
		Progress: cli.NewProgress(o.ErrOut),
		Show:     func(plan string) { fmt.Fprintln(planOut, plan) },
		Confirm: func(ctx context.Context) error {
			return o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("gateway"), "Apply these changes?")
		},
	}
	res, runErr := r.Run(ctx, gateway.Options{
		ServiceRef: o.Service, Policy: policy, Recreate: o.Recreate, Timeout: o.Timeout,
		DryRun: o.dryRun, Command: o.inv.DisplayName,
	})
	o.result = res
	if res != nil {
		if err := o.Output.Print(o.Out, res, func(w io.Writer, _ bool) error { return printGateway(w, res) }); err != nil {
			return err
		}
	}
	if runErr != nil && ctx.Err() != nil && !strings.HasPrefix(runErr.Error(), "interrupted") {
		return fmt.Errorf("interrupted: %w", runErr)
	}
	return runErr
}

func (o *GatewayOptions) warnIstio(f *istio.Facts) {
	switch {
	case !f.Found:
		fmt.Fprintln(o.ErrOut, "Warning: no istiod found; the gateway Service is changed anyway, but the mesh needs Istio 1.17+ with ISTIO_DUAL_STACK=true.")
	case !f.IstiodDualStack || !f.ProxyDualStack:
		fmt.Fprintf(o.ErrOut, "Warning: Istio is not set up for dual-stack (ISTIO_DUAL_STACK in istiod: %v, in proxy metadata: %v); see %s gateway --print-istio-values\n",
			f.IstiodDualStack, f.ProxyDualStack, o.inv.DisplayName)
	}
}

func printGateway(w io.Writer, res *gateway.Result) error {
	for _, a := range res.Actions {
		fmt.Fprintf(w, "%-20s %-45s %-10s %s\n", a.Kind, a.Target, a.Status, a.Detail)
	}
	if res.PreviousHostname != "" {
		fmt.Fprintf(w, "hostname changed: %s -> %s\n", res.PreviousHostname, res.Hostname)
	}
	if len(res.IPv4) > 0 || len(res.IPv6) > 0 {
		fmt.Fprintf(w, "%s: A %s, AAAA %s\n", res.Hostname, strings.Join(res.IPv4, " "), strings.Join(res.IPv6, " "))
	}
	return nil
}

// resolver is the system resolver, or one that asks server (host:port).
