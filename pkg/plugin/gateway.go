package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/dns"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
)

// GatewayOptions makes the Istio ingress gateway Service dual-stack.
type GatewayOptions struct {
	Service          string
	Prefer           bool
	Recreate         bool
	Migrate          bool
	RetireOld        bool
	RetireAfter      time.Duration
	Retire           bool
	Revert           bool
	HostedZones      []string
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
traffic policy. Its hostname changes, and the ingress is down until the NLB
is provisioned and its name resolves.

--migrate moves it without downtime instead: a second Service
<name>-dualstack (same selector, ports, annotations; a dual-stack NLB) is
created next to the Classic one; once its name answers A and AAAA and a
request per family through it is answered, every Route 53 alias record
leading to the old load balancer is moved to the new one with its AAAA twin
(zones as for 'dns': --hosted-zone, the cluster's DNS config, the VPC's
private zones; without such records, the records to change are printed;
records another external-dns source owns are left alone), and external-dns
annotations move to the new Service. Both keep serving: --retire-old
deletes the old Service once the moved names answer AAAA and a request per
family, and --retire-after (the old answers' TTL) has passed since the
move; or a later 'gateway --retire' does. 'gateway --revert' (or
'rollback') moves the names back and deletes the new Service; after a
retirement it first creates the old Service again (a new Classic ELB) and
moves the names back to that one. Every step is recorded in the journal.

A second run changes nothing. --print-istio-values prints the istiod and
mesh settings that enable ISTIO_DUAL_STACK for the install method found.`,
		Example: fmt.Sprintf(`  %[1]s gateway
  %[1]s gateway --ingress-service istio-system/istio-ingressgateway --recreate --yes
  %[1]s gateway --migrate --retire-old --yes
  %[1]s gateway --retire --yes
  %[1]s gateway --revert --yes
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
	f.BoolVar(&o.Migrate, "migrate", false, "Behind a Classic ELB: create a dual-stack NLB Service <name>-dualstack next to it and move the DNS names to it, without downtime")
	f.BoolVar(&o.RetireOld, "retire-old", false, "With --migrate: delete the old Service --retire-after after the names moved")
	f.DurationVar(&o.RetireAfter, "retire-after", gateway.DefaultRetireAfter, "With --retire-old: how long the old Service keeps serving after the names moved (the old records' TTL)")
	f.BoolVar(&o.Retire, "retire", false, "Delete the old Service a --migrate left serving")
	f.BoolVar(&o.Revert, "revert", false, "Take back a --migrate: create a retired old Service again, move the names back, restore its annotations, delete the new Service")
	f.StringSliceVar(&o.HostedZones, "hosted-zone", nil, "With --migrate: the Route 53 hosted zone IDs whose alias records move (default: OpenShift's DNS config, else the private zones of the cluster's VPC)")
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
	modes := []string{}
	for name, on := range map[string]bool{"--recreate": o.Recreate, "--migrate": o.Migrate, "--retire": o.Retire, "--revert": o.Revert, "--print-istio-values": o.PrintIstioValues} {
		if on {
			modes = append(modes, name)
		}
	}
	if len(modes) > 1 {
		slices.Sort(modes)
		return cli.Usagef("%s cannot be combined: choose one", strings.Join(modes, " and "))
	}
	if o.RetireOld && !o.Migrate {
		return cli.Usagef("--retire-old goes with --migrate (a later `%s gateway --retire` retires a migrated gateway's old Service)", o.inv.DisplayName)
	}
	if o.RetireAfter < 0 {
		return cli.Usagef("--retire-after must not be negative, got %s", o.RetireAfter)
	}
	if len(o.HostedZones) > 0 && !o.Migrate {
		return cli.Usagef("--hosted-zone goes with --migrate (the zones whose records move)")
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
		Reach:    probe.Reach(resolver(o.DNSServer)),
		Progress: cli.NewProgress(o.ErrOut),
		Show:     func(plan string) { fmt.Fprintln(planOut, plan) },
		Confirm: func(ctx context.Context) error {
			return o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("gateway"), "Apply these changes?")
		},
	}
	gopts := gateway.Options{
		ServiceRef: o.Service, Policy: policy, Recreate: o.Recreate, Timeout: o.Timeout,
		DryRun: o.dryRun, Command: o.inv.DisplayName,
	}
	var res *gateway.Result
	var runErr error
	switch {
	case o.Migrate:
		r.Names = s.Names(kc.Dynamic, store, o.HostedZones)
		res, runErr = r.Migrate(ctx, gateway.MigrateOptions{Options: gopts, RetireOld: o.RetireOld, RetireAfter: o.RetireAfter})
	case o.Retire:
		res, runErr = r.Retire(ctx, gopts)
	case o.Revert:
		return o.revert(ctx, kc.Kube, s, store)
	default:
		res, runErr = r.Run(ctx, gopts)
	}
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

// revert takes back a migration: the names first (while the old load
// balancer serves), then the gateway's migration entries.
func (o *GatewayOptions) revert(ctx context.Context, kc kubernetes.Interface, acct *convert.Account, store *journal.Store) error {
	j, err := store.Load(ctx)
	if err != nil {
		return err
	}
	var plan []string
	for _, e := range j.Undoable(gateway.Layer) {
		if e.Operation == gateway.OpRetireService {
			plan = append(plan, fmt.Sprintf("  %s: create again from the journal (a new Classic ELB); the records go back to that one", e.Resource))
		}
	}
	for _, e := range j.Undoable(dns.MoveLayer) {
		plan = append(plan, fmt.Sprintf("  record %s (zone %s): back to the old gateway's load balancer", e.Resource, e.Undo["zoneName"]))
	}
	for _, e := range j.Undoable(gateway.Layer) {
		switch e.Operation {
		case gateway.OpMigrateService, gateway.OpMoveExternalDNS:
			plan = append(plan, fmt.Sprintf("  %s %s: take back", e.Operation, e.Resource))
		}
	}
	if len(plan) == 0 {
		return cli.Usagef("the journal records no gateway migration to revert")
	}
	fmt.Fprintln(o.ErrOut, "Reverting the gateway migration:\n"+strings.Join(plan, "\n"))
	if o.dryRun != cli.DryRunNone {
		return nil
	}
	if err := o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("gateway"), "Revert the migration?"); err != nil {
		return err
	}
	show := func(results []gateway.RollbackResult) {
		for _, r := range results {
			fmt.Fprintf(o.Out, "%-20s %-45s %-8s %s\n", r.Operation, r.Resource, r.Status, r.Message)
		}
	}
	// A retired old Service first: the records can only go back to a load
	// balancer that serves.
	if gateway.RetiredWithoutRestore(j) {
		results, err := gateway.RestoreRetired(ctx, kc, store, o.Timeout)
		show(results)
		if err != nil {
			return fmt.Errorf("%w; the dual-stack gateway still serves the names: re-run `%s gateway --revert`", err, o.inv.DisplayName)
		}
		if j, err = store.Load(ctx); err != nil {
			return err
		}
	}
	if dns.HasMoves(j) {
		if _, err := dns.RollbackMoves(ctx, acct.AWS.Route53, store, gateway.Redirects(j)); err != nil {
			return fmt.Errorf("%w; nothing else was reverted (both Services serve): re-run `%s gateway --revert`", err, o.inv.DisplayName)
		}
	}
	results, err := gateway.RollbackMigration(ctx, kc, store, o.Timeout)
	show(results)
	if err != nil {
		return fmt.Errorf("%w; the names were moved back: re-run `%s gateway --revert` to finish", err, o.inv.DisplayName)
	}
	return nil
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
