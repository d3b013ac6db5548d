package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/mesh"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/nodes"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/services"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/workloads"
)

// AllPhases is every phase of upgrade, in run order.
var AllPhases = convert.AllPhases

// UpgradeOptions runs `upgrade`: flags in, the conversion engine's plan and
// result out.
type UpgradeOptions struct {
	Phases          []string
	Target          awsTargetFlags
	ForceNetwork    bool
	RecreateGateway bool
	// RetireOldGateway: a gateway migration deletes the old Service once
	// the names answer the new one (gateway --migrate --retire-old).
	RetireOldGateway bool
	// HostedZones are the dns phase's --hosted-zone.
	HostedZones []string
	// MaxUnavailable and ForceWorkloads shape the workloads phase.
	MaxUnavailable int
	ForceWorkloads bool
	// Namespaces narrows the services, policies and workloads phases.
	Namespaces      kube.NamespaceSelection
	DNSServer       string
	Timeout         time.Duration
	NewInstanceType string
	// AllowControlPlaneRestart lets an instance type change stop control-plane instances.
	AllowControlPlaneRestart bool
	Parallel                 int
	PlanFile                 string
	Mutation                 *cli.MutationFlags
	Output                   *cli.OutputFlags

	// Measure runs the availability prober beside the phases; JUnitFile
	// and ReportDir take the run's report and timeline.
	Measure   bool
	JUnitFile string
	ReportDir string
	// MeasureInterval and MeasureTargets: how often, and which URLs
	// besides the ingress, --measure probes.
	MeasureInterval time.Duration
	MeasureTargets  []string
	measureSpecs    []probe.TargetSpec

	inv     Invocation
	factory *kube.Factory
	kube    kubernetes.Interface
	// userArgs are all the flags the user gave, for the resume hint.
	userArgs []string
	// saved is the plan of --plan.
	saved *convert.Result
	// facts and phases replace the cluster's and the real phases in tests.
	facts  *convert.Facts
	phases []convert.Phase
	// confirm asks the user (tests replace it); nil asks on the terminal.
	confirm func(ctx context.Context) error
	// availability is what --measure saw; started is when Run began.
	availability *probe.WatchReport
	started      time.Time
	genericiooptions.IOStreams
}

// NewCmdUpgrade builds `upgrade`.
func NewCmdUpgrade(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &UpgradeOptions{
		Phases:          convert.DefaultPhases(),
		Timeout:         10 * time.Minute,
		Parallel:        4,
		MaxUnavailable:  1,
		Measure:         true,
		MeasureInterval: measureInterval,
		Mutation:        cli.NewMutationFlags(),
		Output:          cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		inv:             inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "The whole conversion: plan every layer, ask once, then aws -> nodes -> network -> mesh -> services -> workloads -> gateway -> validate",
		Long: fmt.Sprintf(`Take the cluster to IPv4/IPv6 dual-stack in one command. First, read-only:
discover the cluster and its AWS network, preflight every layer, and print
one combined plan: the underlay changes (as '%[1]s aws plan'), the
overlay patch (as '%[1]s network'), the gateway actions (as
'%[1]s gateway') and the checks validate will make. Then ask once
(--yes skips the question; with no terminal on stdin and no --yes it stops
after the plan), and run the phases in order, in this process. The plan
shown is the plan applied: the facts (nodes, platform, AWS discovery) are
read once and every phase plans from them; after you answer, the plan is
made again and compared, and if the cluster or the AWS network changed in
the meantime nothing is applied: the new plan is shown and you are asked
again.

  aws        aws apply: VPC, subnets, routes, security groups, ENIs get IPv6
  nodes      nodes: the cloud provider reports each node's IPv6 InternalIP
  network    network: the IPv6 cluster and service networks (OpenShift)
  mesh       Istio's dual-stack mode (istiod env, proxy metadata, its Service)
  services   services: existing single-stack Services get both families
  workloads  pods without an IPv6 address re-created through evictions
             (PodDisruptionBudgets hold; --max-unavailable at a time)
  gateway    gateway: the Istio ingress gateway Service and its NLB
             (behind a Classic ELB: migrated to a new NLB Service)
  dns        dns apply: Route 53 alias records get their AAAA twins
  validate   validate: the proof over both families

Only when named in --phases, never by default:

  policies   policies apply: NetworkPolicies get the IPv6 twins of their
             IPv4 ipBlocks (runs before workloads)
  router     router: OpenShift's default IngressController asks for an
             NLB; the ingress operator re-creates the router Service
             (minutes of *.apps outage, a new hostname; runs after gateway)

A phase that needs what an earlier phase gives (the nodes need the
underlay's IPv6 on their instances, the network needs the nodes' IPv6
addresses, re-created pods need the network's IPv6; a dualstack NLB needs
subnets with IPv6) is planned "after the underlay"; when that phase is not selected
or has nothing to change, it is a blocker that says so. Real blockers (OpenShift on AWS
since 4.11 without --force-network) stop the run before any change.

Behind a Classic ELB, which cannot serve IPv6, the gateway phase migrates
the gateway without downtime (gateway --migrate): a dual-stack NLB Service
<name>-dualstack next to the old one, the Route 53 names moved to it once
it answers both families; the old one keeps serving until 'gateway
--retire' (or --retire-old-gateway). --recreate-gateway re-creates the
Service instead: faster, with an outage and a new hostname.

A failed phase stops the run; the summary says what was done, what was not,
and how to go on. Every phase is idempotent: re-run upgrade to resume, it
reports the phases already done and continues. Completed phases are
recorded in the journal ConfigMap. To undo every layer: '%[1]s rollback'.

A saved plan: '%[1]s upgrade --dry-run=client -o json > plan.json', then
'%[1]s upgrade --plan plan.json --yes' applies exactly that plan, after
checking that it is for this cluster and that nothing it was made from
changed (else it stops, exit 1, and says what changed).

Exit status: 0 converted (or nothing to do), 1 blocked, not confirmed or a
phase failed, 2 bad usage.`, inv.DisplayName),
		Example: fmt.Sprintf(`  # The plan only
  %[1]s upgrade --dry-run=client

  # Everything, no question asked; a Classic ELB gateway is migrated,
  # the old one retired once the names answer the new one
  %[1]s upgrade --yes --retire-old-gateway

  # The same, re-creating the gateway (an outage, a new hostname)
  %[1]s upgrade --yes --recreate-gateway

  # Only the overlay and the proof
  %[1]s upgrade --phases network,validate --yes

  # Review a plan, then apply exactly it
  %[1]s upgrade --dry-run=client --recreate-gateway -o json > plan.json
  %[1]s upgrade --plan plan.json --yes`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			o.userArgs = flagsGiven(cmd)
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Phases, "phases", o.Phases, "Run only these phases (in the fixed order): "+strings.Join(AllPhases, ",")+"; "+strings.Join(convert.OnlyWhenAsked, " and ")+" run only when named here")
	f.BoolVar(&o.ForceNetwork, "force-network", false, "Patch the Network config even where the network operator is known to refuse the conversion (network --force).")
	f.StringSliceVar(&o.Namespaces.Include, "include-namespaces", nil, "services, policies and workloads: only these namespaces (comma-separated; each must exist)")
	f.StringSliceVar(&o.Namespaces.Exclude, "exclude-namespaces", nil, "services, policies and workloads: never these namespaces (comma-separated; each must exist)")
	f.StringVar(&o.Namespaces.Selector, "namespace-selector", "", "services, policies and workloads: only namespaces whose labels match this selector")
	f.IntVar(&o.MaxUnavailable, "max-unavailable", o.MaxUnavailable, "workloads: how many pods are evicted at once (each batch waits for its replacements to be Ready with both families)")
	f.BoolVar(&o.ForceWorkloads, "force-workloads", false, "workloads: also evict pods no controller manages, as kubectl drain --force does; they do not come back")
	f.StringSliceVar(&o.HostedZones, "hosted-zone", nil, "dns: the Route 53 hosted zones (IDs) whose alias records get AAAA (default: OpenShift's DNS config, else the private zones of the cluster's VPC)")
	f.BoolVar(&o.RecreateGateway, "recreate-gateway", false, "Behind a Classic ELB: re-create the ingress gateway Service as a dual-stack NLB, with an outage until it is provisioned; its hostname changes (gateway --recreate). Without it the gateway is migrated without downtime (gateway --migrate).")
	f.BoolVar(&o.RetireOldGateway, "retire-old-gateway", false, "After a gateway migration: delete the old Service (and its Classic ELB) once the moved names answer the new one and their TTL (60s) passed (gateway --migrate --retire-old)")
	addDNSServerFlag(f, &o.DNSServer, "load balancer hostnames (gateway and validate)")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long each phase may wait (the network operator, the load balancer and DNS, validate).")
	f.StringVar(&o.NewInstanceType, "allow-instance-type-change", "", "Change instances whose type has no IPv6 support to this type (aws apply --allow-instance-type-change)")
	f.BoolVar(&o.AllowControlPlaneRestart, "allow-control-plane-restart", false, "With --allow-instance-type-change: change control-plane instances too, one at a time (aws apply --allow-control-plane-restart)")
	f.IntVar(&o.Parallel, "parallel", o.Parallel, "How many independent AWS changes to make at once (aws apply --parallel)")
	f.StringVar(&o.PlanFile, "plan", "", "Apply exactly this plan, saved earlier with `upgrade --dry-run=client -o json > FILE`, after checking that the cluster and AWS still match it")
	f.BoolVar(&o.Measure, "measure", o.Measure, "While the phases run, send a request per family to the ingress gateway every --measure-interval and report, per phase, what each family saw (when the ingress answers from here; --measure=false to skip)")
	f.DurationVar(&o.MeasureInterval, "measure-interval", o.MeasureInterval, "With --measure: the time between requests to each target over each family")
	f.StringArrayVar(&o.MeasureTargets, "measure-target", nil, "With --measure: also probe this URL (repeatable); a literal address is probed in its own family only, a name once per family")
	f.StringVar(&o.JUnitFile, "junit-file", "", "Also write the result as JUnit XML to this file: a test case per phase and, with --measure, per phase and family")
	f.StringVar(&o.ReportDir, "report-dir", "", "With --measure: write the availability timeline (timeline.png, timeline.svg, phases marked), every request (samples.csv) and the report (availability.json) into this directory")
	o.Target.addFlags(cmd)
	o.Target.addJournalFlag(cmd)
	o.Mutation.AddFlags(cmd)
	o.Output.AddFlags(cmd)
	_ = cmd.RegisterFlagCompletionFunc("phases", cobra.FixedCompletions(AllPhases, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (o *UpgradeOptions) workloadsOptions() workloads.Options {
	w := convert.DefaultWorkloadsOptions()
	w.MaxUnavailable, w.Force, w.Timeout = o.MaxUnavailable, o.ForceWorkloads, o.Timeout
	w.Namespaces, w.ExcludeNamespaces, w.NamespaceSelector = o.Namespaces.Include, o.Namespaces.Exclude, o.Namespaces.Selector
	return w
}

func (o *UpgradeOptions) servicesOptions() services.Options {
	s := convert.DefaultServicesOptions()
	s.IncludeNamespaces, s.ExcludeNamespaces, s.NamespaceSelector = o.Namespaces.Include, o.Namespaces.Exclude, o.Namespaces.Selector
	return s
}

// Validate checks the flags, before any cluster is contacted.
func (o *UpgradeOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	dry, err := o.Mutation.Strategy()
	if err != nil {
		return err
	}
	if dry == cli.DryRunServer {
		return cli.Usagef("upgrade takes --dry-run=client (the plan only); for a server-side check run each command with --dry-run=server")
	}
	if err := o.validateMeasure(); err != nil {
		return err
	}
	if err := o.Target.validate(); err != nil {
		return err
	}
	phases, err := parsePhases(o.Phases)
	if err != nil {
		return err
	}
	o.Phases = phases
	if o.Timeout <= 0 {
		return cli.Usagef("--timeout must be positive, e.g. --timeout 10m")
	}
	if o.Parallel < 1 {
		return cli.Usagef("--parallel must be at least 1")
	}
	if o.MaxUnavailable < 1 {
		return cli.Usagef("--max-unavailable must be at least 1, got %d", o.MaxUnavailable)
	}
	if err := o.Namespaces.Validate(""); err != nil {
		return err
	}
	if o.PlanFile != "" {
		if dry == cli.DryRunClient {
			return cli.Usagef("--plan applies a saved plan: it takes no --dry-run (the file is the plan)")
		}
		saved, err := loadPlan(o.PlanFile)
		if err != nil {
			return err
		}
		o.saved = saved
		st := saved.Plan.Settings
		o.Phases, o.ForceNetwork, o.RecreateGateway, o.NewInstanceType = st.Phases, st.ForceNetwork, st.RecreateGateway, st.NewInstanceType
		o.AllowControlPlaneRestart, o.Target.ForceVPC = st.AllowControlPlaneRestart, st.ForceVPC
		if st.MaxUnavailable > 0 {
			o.MaxUnavailable = st.MaxUnavailable
		}
		o.ForceWorkloads = st.ForceWorkloads
		o.HostedZones = st.HostedZones
		o.RetireOldGateway = st.RetireOldGateway
		if st.Namespaces != nil {
			o.Namespaces = *st.Namespaces
		}
	}
	return validateDNSServer(o.DNSServer)
}

// parsePhases checks the names and puts them in run order.
func parsePhases(in []string) ([]string, error) {
	want := map[string]bool{}
	for _, p := range in {
		p = strings.ToLower(strings.TrimSpace(p))
		if !slices.Contains(AllPhases, p) {
			return nil, cli.Usagef("unknown phase %q in --phases: choose from %s", p, strings.Join(AllPhases, ","))
		}
		want[p] = true
	}
	if len(want) == 0 {
		return nil, cli.Usagef("--phases is empty: choose from %s", strings.Join(AllPhases, ","))
	}
	var out []string
	for _, p := range AllPhases {
		if want[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

// Complete builds the clients.
func (o *UpgradeOptions) Complete() error {
	if o.kube == nil {
		c, err := o.factory.Clients()
		if err != nil {
			return err
		}
		o.kube = c.Kube
	}
	return nil
}

// engine gathers the facts once and builds the phases from the flags.
func (o *UpgradeOptions) engine(ctx context.Context, store *journal.Store) (*convert.Engine, error) {
	facts := o.facts
	if facts == nil {
		kc, err := o.factory.Clients()
		if err != nil {
			return nil, err
		}
		if facts, err = convert.Gather(ctx, kc); err != nil {
			return nil, err
		}
	}
	phases := o.phases
	if phases == nil {
		request, err := network.ParseRequest(network.DefaultClusterNetwork, network.DefaultHostPrefix, network.DefaultServiceNetwork)
		if err != nil {
			return nil, err
		}
		target := o.Target.target()
		phases = []convert.Phase{
			&convert.AWSPhase{Target: target, Parallel: o.Parallel, Journal: store, Command: o.inv.Command,
				Options: awsx.PlanOptions{NewInstanceType: o.NewInstanceType, AllowControlPlaneRestart: o.AllowControlPlaneRestart}},
			&convert.NodesPhase{Options: nodes.Options{Timeout: o.Timeout}, Journal: store},
			&convert.NetworkPhase{Request: request, Force: o.ForceNetwork, Timeout: o.Timeout, Journal: store, Tool: o.inv.DisplayName, Command: o.inv.Command},
			&convert.MeshPhase{Options: mesh.Options{Timeout: o.Timeout}, Journal: store},
			&convert.ServicesPhase{Options: o.servicesOptions(), Journal: store},
			&convert.PoliciesPhase{Target: target, Namespaces: o.Namespaces, Journal: store, Command: o.inv.Command},
			&convert.WorkloadsPhase{Options: o.workloadsOptions()},
			&convert.GatewayPhase{Target: target, Recreate: o.RecreateGateway, Timeout: o.Timeout, Resolver: resolver(o.DNSServer), Journal: store, Tool: o.inv.DisplayName,
				ZoneIDs: o.HostedZones, Reach: probe.Reach(resolver(o.DNSServer)), RetireOld: o.RetireOldGateway, RetireAfter: gateway.DefaultRetireAfter},
			&convert.RouterPhase{Timeout: o.Timeout, Journal: store},
			&convert.DNSPhase{Target: target, ZoneIDs: o.HostedZones, Journal: store, Command: o.inv.Command, Tool: o.inv.DisplayName},
			o.validatePhase(),
		}
	}
	return &convert.Engine{Facts: facts, Phases: phases, Selected: o.Phases, Journal: store, Log: o.ErrOut, Command: o.inv.Command}, nil
}

// validatePhase is validate with its defaults and upgrade's --timeout and
// --dns-server.
func (o *UpgradeOptions) validatePhase() *convert.ValidatePhase {
	v := newValidateOptions(o.inv, o.IOStreams, o.factory)
	v.Scenario.Namespace = DefaultValidateNamespace
	return &convert.ValidatePhase{Proof: probe.Proof{
		Scenario: v.Scenario, DNSServer: o.DNSServer, Timeout: o.Timeout, Command: o.inv.DisplayName,
		Curl: probe.CurlOptions{ConnectTimeout: v.ConnectTimeout, MaxTime: v.MaxTime},
	}}
}

// Run plans, asks, applies the plan it showed and summarises.
func (o *UpgradeOptions) Run(ctx context.Context) error {
	o.started = time.Now()
	// One lock for the whole run; the phases run in this process and share it.
	dry, _ := o.Mutation.Strategy()
	store, release, err := o.Target.Journal.open(ctx, o.kube, dry, "upgrade")
	if err != nil {
		return err
	}
	defer release()
	progress := cli.NewProgress(o.ErrOut)
	progress.Start("Discovering the cluster and planning every layer")
	eng, err := o.engine(ctx, store)
	if err != nil {
		progress.Done("")
		return err
	}
	plan := eng.Plan(ctx)
	progress.Done("")
	if plan.BadInput != nil {
		return plan.BadInput
	}
	if plan.Cluster.ID, err = convert.ClusterID(ctx, o.kube); err != nil {
		return err
	}
	plan.Cluster.CreatedAt = time.Now().UTC().Truncate(time.Second)
	plan.Settings = &convert.Settings{Phases: o.Phases, ForceNetwork: o.ForceNetwork, RecreateGateway: o.RecreateGateway, NewInstanceType: o.NewInstanceType,
		AllowControlPlaneRestart: o.AllowControlPlaneRestart, ForceVPC: o.Target.ForceVPC, MaxUnavailable: o.MaxUnavailable, ForceWorkloads: o.ForceWorkloads, HostedZones: o.HostedZones, RetireOldGateway: o.RetireOldGateway}
	if o.Namespaces.Selector != "" || len(o.Namespaces.Include) > 0 || len(o.Namespaces.Exclude) > 0 {
		ns := o.Namespaces
		plan.Settings.Namespaces = &ns
	}
	if eng.Facts.Clients != nil && eng.Facts.Clients.Config != nil {
		plan.Cluster.Server = eng.Facts.Clients.Config.Host
	}
	if o.saved != nil {
		if diffs := eng.Compare(o.saved.Plan, plan); len(diffs) > 0 {
			res := &convert.Result{Plan: plan, Outcome: convert.OutcomePlanRefused,
				Message: fmt.Sprintf("%v: the plan in %s (made %s) no longer matches the cluster: %s; make a new plan with `%s`", ErrPlanRefused, o.PlanFile,
					o.saved.Plan.Cluster.CreatedAt.Format(time.RFC3339), strings.Join(diffs, "; "), o.inv.Command("upgrade --dry-run=client -o json"))}
			return o.finish(res, errors.New(res.Message))
		}
		// What is applied is the saved plan; what was just planned equals it.
		plan.Phases, plan.Blockers = o.saved.Plan.Phases, o.saved.Plan.Blockers
		fmt.Fprintf(o.ErrOut, "The plan in %s (made %s) still matches the cluster.\n", o.PlanFile, o.saved.Plan.Cluster.CreatedAt.Format(time.RFC3339))
	}
	for {
		res := convert.NewResult(plan)
		o.printPlan(plan)
		if len(plan.Blockers) > 0 {
			res.Outcome = convert.OutcomeBlocked
			res.Message = fmt.Sprintf("nothing was changed: %d blocker(s) found before any change", len(plan.Blockers))
			res.SetPending(convert.StatusNotRun, "blocked before any change")
			return o.finish(res, errors.New(res.Message))
		}
		mutating := slices.ContainsFunc(plan.Phases, convert.PhasePlan.Mutating)
		check := slices.ContainsFunc(plan.Phases, func(p convert.PhasePlan) bool { return p.Action == convert.ActionCheck })
		if !mutating && !check {
			res.Outcome, res.Message = convert.OutcomeNothingToDo, "nothing to do: every selected layer is already dual-stack"
			return o.finish(res, nil)
		}
		if dry == cli.DryRunClient {
			res.Outcome, res.Message = convert.OutcomeDryRun, "dry run (client): the plan only, nothing was changed"
			return o.finish(res, nil)
		}
		if mutating { // validate alone changes nothing that stays
			if err := o.ask(ctx); err != nil {
				if errors.Is(err, cli.ErrNotConfirmed) {
					res.Outcome, res.Message = convert.OutcomeNotConfirmed, "nothing was changed"
					res.SetPending(convert.StatusNotRun, "not confirmed")
					_ = o.finish(res, nil)
				}
				return err
			}
			if !o.Mutation.Yes {
				// Time passed while the plan was read: check that what it
				// was made from still holds, and ask again if not.
				now, diffs, err := eng.Recheck(ctx, plan)
				if err != nil {
					return err
				}
				if len(diffs) > 0 && o.saved != nil {
					// A saved plan is applied as it is, or not at all.
					res.Outcome, res.Message = convert.OutcomePlanRefused, fmt.Sprintf("%v: the cluster or its AWS network changed while the plan in %s was shown (%s); nothing was changed; make a new plan with `%s`",
						ErrPlanRefused, o.PlanFile, strings.Join(diffs, "; "), o.inv.Command("upgrade --dry-run=client -o json"))
					res.SetPending(convert.StatusNotRun, "the plan no longer holds")
					return o.finish(res, errors.New(res.Message))
				}
				if len(diffs) > 0 {
					fmt.Fprintf(o.ErrOut, "The cluster or its AWS network changed while the plan was shown (%s); nothing was changed. The plan now:\n", strings.Join(diffs, "; "))
					plan = now
					continue
				}
			}
		}
		m := o.startMeasure(ctx, eng)
		err := eng.Apply(ctx, res)
		o.availability = m.stop(o)
		return o.finish(res, err)
	}
}

func (o *UpgradeOptions) ask(ctx context.Context) error {
	if o.confirm != nil && !o.Mutation.Yes {
		return o.confirm(ctx)
	}
	return o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("upgrade"), "Run these phases?")
}

// printPlan prints the plan: on stdout for the table, on stderr with -o
// json|yaml (stdout carries only the result).
func (o *UpgradeOptions) printPlan(plan convert.Plan) {
	w := o.Out
	if o.Output.Structured() {
		w = o.ErrOut
	}
	fmt.Fprintln(w, "Upgrade plan:")
	for i, p := range plan.Phases {
		fmt.Fprintf(w, "\n%d. %s [%s] %s\n", i+1, p.Name, p.Action, p.Summary)
		for _, d := range p.Details {
			fmt.Fprintf(w, "     %s\n", d)
		}
	}
	if len(plan.Blockers) > 0 {
		fmt.Fprintf(w, "\nBlocked: nothing will be changed (%d):\n", len(plan.Blockers))
		for _, b := range plan.Blockers {
			fmt.Fprintf(w, "  - %s\n", b)
		}
	}
	fmt.Fprintln(w)
}

// finish prints the result (and, on a table, the summary and what to do next).
func (o *UpgradeOptions) finish(res *convert.Result, err error) error {
	jerr := o.writeUpgradeJUnit(res)
	if perr := o.Output.Print(o.Out, upgradeOutput{Result: res, Availability: o.availability}, func(w io.Writer, _ bool) error { return o.printSummary(w, res) }); perr != nil {
		return perr
	}
	if jerr != nil {
		return jerr
	}
	if err != nil && o.Output.Structured() {
		fmt.Fprintln(o.ErrOut, res.Message)
		o.printNext(o.ErrOut, res)
	}
	if err != nil {
		return cli.SilentFailure
	}
	return nil
}

func (o *UpgradeOptions) printSummary(w io.Writer, res *convert.Result) error {
	fmt.Fprintln(w)
	if len(res.Phases) == 0 {
		_, err := fmt.Fprintln(w, res.Message)
		return err
	}
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "PHASE\tSTATUS\tMESSAGE")
	for _, p := range res.Phases {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Status, p.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, res.Message)
	o.printNext(w, res)
	return printAvailability(w, o.availability)
}

// printNext says how to go on after a stop: what was done, what not, how
// to resume and how to roll back.
func (o *UpgradeOptions) printNext(w io.Writer, res *convert.Result) {
	if res.Outcome != convert.OutcomeFailed && res.Outcome != convert.OutcomeBlocked {
		return
	}
	var done, notDone []string
	for _, p := range res.Phases {
		switch p.Status {
		case convert.StatusDone, convert.StatusAlreadyDone:
			done = append(done, p.Name)
		case convert.StatusFailed, convert.StatusNotRun:
			notDone = append(notDone, p.Name)
		}
	}
	nothing := func(s []string) string {
		if len(s) == 0 {
			return "nothing"
		}
		return strings.Join(s, ", ")
	}
	fmt.Fprintf(w, "Done: %s. Not done: %s.\n", nothing(done), nothing(notDone))
	if res.Outcome == convert.OutcomeBlocked {
		fmt.Fprintln(w, "Fix the blockers above (or leave their phase out with --phases), then run upgrade again.")
		return
	}
	fmt.Fprintf(w, "To resume: fix the cause, then run `%s` again: every phase is idempotent, finished ones are reported as already done.\n", o.inv.Command(o.resumeCommand()))
	fmt.Fprintf(w, "To roll back every layer (the gateway Service, the network, the AWS changes): `%s`.\n", o.inv.Command("rollback --yes"))
}

// resumeCommand is the upgrade command line to resume with: the flags the
// user gave (but -o and --dry-run), then --yes.
func (o *UpgradeOptions) resumeCommand() string {
	parts := []string{"upgrade"}
	for _, a := range o.userArgs {
		parts = append(parts, a)
	}
	return strings.Join(append(parts, "--yes"), " ")
}

// flagsGiven lists the flags set on the command line, as --name=value,
// for the resume hint; --yes, --dry-run and -o are left to the hint.
func flagsGiven(cmd *cobra.Command) []string {
	var out []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "yes", "dry-run", "output":
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			out = append(out, "--"+f.Name+"="+strings.Join(sv.GetSlice(), ","))
			return
		}
		out = append(out, "--"+f.Name+"="+f.Value.String())
	})
	return out
}
