package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
)

// The phases of `upgrade`, in the order they run.
const (
	PhaseAWS      = "aws"
	PhaseNetwork  = "network"
	PhaseGateway  = "gateway"
	PhaseValidate = "validate"
)

// AllPhases is every phase, in run order.
var AllPhases = []string{PhaseAWS, PhaseNetwork, PhaseGateway, PhaseValidate}

// Phase statuses, as -o json reports them.
const (
	PhaseDone        = "done"         // ran in this run and succeeded
	PhaseAlreadyDone = "already-done" // nothing to do: the cluster already has it
	PhaseFailed      = "failed"
	PhaseNotRun      = "not-run" // an earlier phase failed, or the run stopped before it
	PhaseSkipped     = "skipped" // not in --phases
	PhasePlanned     = "planned" // dry run, or not confirmed
)

// Plan actions of a phase.
const (
	PlanChange       = "change"
	PlanAfterEarlier = "after-underlay" // its preflight depends on an earlier phase's change
	PlanNothing      = "nothing-to-do"
	PlanBlocked      = "blocked"
	PlanSkipped      = "skipped"
	PlanCheck        = "check" // validate: read-only proof
)

// upgradeLayer is the journal layer of upgrade's own bookkeeping: which
// phases completed, so a re-run after an interruption reports them.
const upgradeLayer = "upgrade"

// UpgradeOptions runs `upgrade`.
type UpgradeOptions struct {
	Phases          []string
	Target          awsTargetFlags
	ForceNetwork    bool
	RecreateGateway bool
	DNSServer       string
	Timeout         time.Duration
	NewInstanceType string
	// AllowControlPlaneRestart lets an instance type change stop control-plane instances.
	AllowControlPlaneRestart bool
	Parallel                 int
	PlanFile                 string
	Mutation                 *cli.MutationFlags
	Output                   *cli.OutputFlags

	inv     Invocation
	factory *kube.Factory
	kube    kubernetes.Interface
	// userArgs are all the flags the user gave, for the resume hint.
	userArgs []string
	// underlay is the aws phase, typed.
	underlay underlayPhase
	// saved is the plan of --plan.
	saved *UpgradeResult
	// overlay, edge and proof are the network, gateway and validate phases.
	overlay overlayPhase
	edge    edgePhase
	proof   proofPhase
	genericiooptions.IOStreams
}

// UpgradeResult is what `upgrade -o json|yaml` prints. Field names are stable.
type UpgradeResult struct {
	// Outcome is converted, nothing-to-do, failed, blocked, not-confirmed or dry-run.
	Outcome string        `json:"outcome"`
	Message string        `json:"message"`
	Plan    UpgradePlan   `json:"plan"`
	Phases  []PhaseResult `json:"phases"`
}

// UpgradePlan is the one combined plan, per phase.
type UpgradePlan struct {
	Cluster  PlanCluster   `json:"cluster"`
	Settings *PlanSettings `json:"settings,omitempty"`
	Phases   []PhasePlan   `json:"phases"`
	Blockers []string      `json:"blockers"`
}

// PhasePlan is what one phase will do.
type PhasePlan struct {
	Name string `json:"name"`
	// Action is change, after-underlay, nothing-to-do, blocked, skipped or check.
	Action  string   `json:"action"`
	Summary string   `json:"summary"`
	Details []string `json:"details,omitempty"`
	// The phase's own plan, as its command's -o json prints it.
	AWS     *awsx.Plan      `json:"aws,omitempty"`
	Network *NetworkResult  `json:"network,omitempty"`
	Gateway *gateway.Result `json:"gateway,omitempty"`
}

// PhaseResult is how one phase went.
type PhaseResult struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// NewCmdUpgrade builds `upgrade`.
func NewCmdUpgrade(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &UpgradeOptions{
		Phases:   append([]string(nil), AllPhases...),
		Timeout:  10 * time.Minute,
		Parallel: 4,
		Mutation: cli.NewMutationFlags(),
		Output:   cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		inv:      inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "The whole conversion: plan every layer, ask once, then aws apply -> network -> gateway -> validate",
		Long: fmt.Sprintf(`Take the cluster to IPv4/IPv6 dual-stack in one command. First, read-only:
discover the cluster and its AWS network, preflight every layer, and print
one combined plan: the underlay changes (as '%[1]s aws plan'), the
overlay patch (as '%[1]s network'), the gateway actions (as
'%[1]s gateway') and the checks validate will make. Then ask once
(--yes skips the question; with no terminal on stdin and no --yes it stops
after the plan), and run the phases in order, in this process (the plan
shown is the plan applied: the AWS changes are applied exactly as planned,
after a check that AWS did not change in between):

  aws       aws apply: VPC, subnets, routes, security groups, ENIs get IPv6
  network   network: the IPv6 cluster and service networks (OpenShift)
  gateway   gateway: the Istio ingress gateway Service and its NLB
  validate  validate: the proof over both families

A phase whose preflight depends on an earlier phase (the network needs the
nodes' IPv6 addresses the underlay gives; a dualstack NLB needs subnets
with IPv6) is planned "after the underlay". Real blockers (OpenShift on AWS
since 4.11 without --force-network, a Classic ELB gateway without
--recreate-gateway) stop the run before any change.

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

  # Everything, no question asked; the gateway is behind a Classic ELB
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
	f.StringSliceVar(&o.Phases, "phases", o.Phases, "Run only these phases (in the fixed order): "+strings.Join(AllPhases, ","))
	f.BoolVar(&o.ForceNetwork, "force-network", false, "Patch the Network config even where the network operator is known to refuse the conversion (network --force).")
	f.BoolVar(&o.RecreateGateway, "recreate-gateway", false, "Behind a Classic ELB: re-create the ingress gateway Service as a dual-stack NLB; its hostname changes (gateway --recreate).")
	f.StringVar(&o.DNSServer, "dns-server", "", "Resolve load balancer hostnames with this DNS server (host:port), for gateway and validate.")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long each phase may wait (the network operator, the load balancer and DNS, validate).")
	f.StringVar(&o.NewInstanceType, "allow-instance-type-change", "", "Change instances whose type has no IPv6 support to this type (aws apply --allow-instance-type-change)")
	f.BoolVar(&o.AllowControlPlaneRestart, "allow-control-plane-restart", false, "With --allow-instance-type-change: change control-plane instances too, one at a time (aws apply --allow-control-plane-restart)")
	f.IntVar(&o.Parallel, "parallel", o.Parallel, "How many independent AWS changes to make at once (aws apply --parallel)")
	f.StringVar(&o.PlanFile, "plan", "", "Apply exactly this plan, saved earlier with `upgrade --dry-run=client -o json > FILE`, after checking that the cluster and AWS still match it")
	o.Target.addFlags(cmd)
	o.Target.addJournalFlag(cmd)
	o.Mutation.AddFlags(cmd)
	o.Output.AddFlags(cmd)
	_ = cmd.RegisterFlagCompletionFunc("phases", cobra.FixedCompletions(AllPhases, cobra.ShellCompDirectiveNoFileComp))
	return cmd
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
	}
	if o.DNSServer != "" {
		if _, _, err := net.SplitHostPort(o.DNSServer); err != nil {
			return cli.Usagef("--dns-server must be host:port, e.g. 10.0.0.2:53: %v", err)
		}
	}
	return nil
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

func (o *UpgradeOptions) selected(phase string) bool { return slices.Contains(o.Phases, phase) }

// Run plans, asks, runs the phases and summarises.
func (o *UpgradeOptions) Run(ctx context.Context) error {
	// One lock for the whole run; the phases run in this process and share it.
	dry, _ := o.Mutation.Strategy()
	store, release, err := o.Target.Journal.open(ctx, o.kube, dry, "upgrade")
	if err != nil {
		return err
	}
	defer release()
	if o.underlay == nil {
		o.underlay = &awsUnderlay{flags: awsPlanFlags{awsTargetFlags: o.Target, NewInstanceType: o.NewInstanceType, AllowControlPlaneRestart: o.AllowControlPlaneRestart},
			factory: o.factory, store: store, parallel: o.Parallel}
	}
	if o.overlay == nil {
		o.overlay = overlay{inProcess{o}}
	}
	if o.edge == nil {
		o.edge = edge{inProcess{o}}
	}
	if o.proof == nil {
		o.proof = proof{inProcess{o}}
	}
	earlier := map[string]journal.Entry{}
	if j, err := store.Load(ctx); err == nil {
		for _, e := range j.Layer(upgradeLayer) {
			earlier[e.Resource] = e
		}
	} else {
		fmt.Fprintf(o.ErrOut, "warning: could not read the journal (phases done earlier are not reported): %v\n", err)
	}

	progress := cli.NewProgress(o.ErrOut)
	progress.Start("Discovering the cluster and planning every layer")
	plan := o.plan(ctx, earlier)
	progress.Done("")
	if plan.Cluster.ID, err = clusterID(ctx, o.kube); err != nil {
		return err
	}
	plan.Cluster.CreatedAt = time.Now().UTC().Truncate(time.Second)
	plan.Settings = &PlanSettings{Phases: o.Phases, ForceNetwork: o.ForceNetwork, RecreateGateway: o.RecreateGateway, NewInstanceType: o.NewInstanceType,
		AllowControlPlaneRestart: o.AllowControlPlaneRestart, ForceVPC: o.Target.ForceVPC}
	if o.factory != nil {
		if c, err := o.factory.Clients(); err == nil && c.Config != nil {
			plan.Cluster.Server = c.Config.Host
		}
	}
	for _, p := range plan.Phases {
		if p.AWS != nil {
			plan.Cluster.VPCID = p.AWS.Cluster.VPCID
		}
	}
	if o.saved != nil {
		if diffs := comparePlans(o.saved.Plan, plan); len(diffs) > 0 {
			res := &UpgradeResult{Plan: plan, Outcome: "plan-refused",
				Message: fmt.Sprintf("%v: the plan in %s (made %s) no longer matches the cluster: %s; make a new plan with `%s`", ErrPlanRefused, o.PlanFile,
					o.saved.Plan.Cluster.CreatedAt.Format(time.RFC3339), strings.Join(diffs, "; "), o.inv.Command("upgrade --dry-run=client -o json"))}
			return o.finish(res, errors.New(res.Message))
		}
		// What is applied is the saved plan; what was just planned equals it.
		plan.Phases, plan.Blockers = o.saved.Plan.Phases, o.saved.Plan.Blockers
		fmt.Fprintf(o.ErrOut, "The plan in %s (made %s) still matches the cluster.\n", o.PlanFile, o.saved.Plan.Cluster.CreatedAt.Format(time.RFC3339))
	}
	res := &UpgradeResult{Plan: plan}
	for _, p := range plan.Phases {
		res.Phases = append(res.Phases, PhaseResult{Name: p.Name, Status: PhasePlanned, Message: p.Summary})
		switch p.Action {
		case PlanSkipped:
			res.Phases[len(res.Phases)-1].Status = PhaseSkipped
		case PlanNothing: // nothing to do is not "not run", whatever stops the run
			res.Phases[len(res.Phases)-1].Status = PhaseAlreadyDone
		}
	}
	planOut := o.Out
	if o.Output.Structured() {
		planOut = o.ErrOut // stdout carries only the JSON/YAML
	}
	printUpgradePlan(planOut, plan)

	if len(plan.Blockers) > 0 {
		res.Outcome = "blocked"
		res.Message = fmt.Sprintf("nothing was changed: %d blocker(s) found before any change", len(plan.Blockers))
		setPending(res, PhaseNotRun, "blocked before any change")
		return o.finish(res, errors.New(res.Message))
	}
	mutating, check := false, false
	for _, p := range plan.Phases {
		mutating = mutating || p.Action == PlanChange || p.Action == PlanAfterEarlier
		check = check || p.Action == PlanCheck
	}
	if !mutating && !check {
		res.Outcome = "nothing-to-do"
		res.Message = "nothing to do: every selected layer is already dual-stack"
		for i, p := range plan.Phases {
			if p.Action == PlanNothing {
				res.Phases[i].Status = PhaseAlreadyDone
			}
		}
		return o.finish(res, nil)
	}
	if dry, _ := o.Mutation.Strategy(); dry == cli.DryRunClient {
		res.Outcome, res.Message = "dry-run", "dry run (client): the plan only, nothing was changed"
		return o.finish(res, nil)
	}
	if mutating { // validate alone changes nothing that stays
		if err := o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("upgrade"), "Run these phases?"); err != nil {
			if errors.Is(err, cli.ErrNotConfirmed) {
				res.Outcome, res.Message = "not-confirmed", "nothing was changed"
				setPending(res, PhaseNotRun, "not confirmed")
				_ = o.finish(res, nil)
			}
			return err
		}
	}
	return o.runPhases(ctx, store, res)
}

func setPending(res *UpgradeResult, status, why string) {
	for i := range res.Phases {
		if res.Phases[i].Status == PhasePlanned {
			res.Phases[i].Status = status
			res.Phases[i].Message = "not run: " + why
		}
	}
}

// plan asks every selected phase's command for its plan, read-only.
func (o *UpgradeOptions) plan(ctx context.Context, earlier map[string]journal.Entry) UpgradePlan {
	var plan UpgradePlan
	block := func(p *PhasePlan, msg string) {
		p.Action = PlanBlocked
		if p.Summary == "" {
			p.Summary = msg
		}
		plan.Blockers = append(plan.Blockers, p.Name+": "+msg)
	}
	for _, name := range AllPhases {
		p := PhasePlan{Name: name}
		if !o.selected(name) {
			p.Action, p.Summary = PlanSkipped, "not in --phases"
			plan.Phases = append(plan.Phases, p)
			continue
		}
		switch name {
		case PhaseAWS:
			ap, err := o.underlay.Plan(ctx)
			if err != nil {
				block(&p, fmt.Sprintf("planning the underlay: %v", err))
				break
			}
			p.AWS = ap
			if len(ap.Changes) == 0 {
				p.Action, p.Summary = PlanNothing, fmt.Sprintf("the underlay of VPC %s is already dual-stack", ap.Cluster.VPCID)
			} else {
				p.Action, p.Summary = PlanChange, fmt.Sprintf("%d changes to VPC %s (cluster %s, %s), as `%s`", len(ap.Changes), ap.Cluster.VPCID, orNone(ap.Cluster.InfraID), ap.Cluster.Region, o.inv.Command("aws plan"))
				counts := map[string]int{}
				var ops []string
				for _, c := range ap.Changes {
					if counts[c.Operation] == 0 {
						ops = append(ops, c.Operation)
					}
					counts[c.Operation]++
				}
				for _, op := range ops {
					p.Details = append(p.Details, fmt.Sprintf("%d x %s", counts[op], op))
				}
			}
			for _, n := range ap.Notes {
				p.Details = append(p.Details, "not changed: "+n.Resource+": "+n.Message)
			}
		case PhaseNetwork:
			nr, err := o.overlay.Plan(ctx)
			if nr == nil {
				block(&p, fmt.Sprintf("planning the overlay: %v", err))
				break
			}
			p.Network = nr
			o.planNetwork(&p, nr, block)
		case PhaseGateway:
			gr, err := o.edge.Plan(ctx)
			switch {
			case errors.Is(err, gateway.ErrClassic):
				block(&p, "the ingress gateway is behind a Classic ELB, which cannot serve IPv6: pass --recreate-gateway to re-create its Service as a dual-stack NLB (its hostname changes)")
			case err != nil || gr == nil:
				block(&p, fmt.Sprintf("planning the gateway: %v", err))
			default:
				p.Gateway = gr
				var planned []string
				for _, a := range gr.Actions {
					if a.Status == "planned" {
						planned = append(planned, fmt.Sprintf("%s %s: %s", a.Kind, a.Target, a.Detail))
					}
				}
				if len(planned) == 0 {
					p.Action, p.Summary = PlanNothing, fmt.Sprintf("%s is already dual-stack (%s)", gr.Service, gr.Hostname)
					break
				}
				p.Action, p.Details = PlanChange, planned
				p.Summary = fmt.Sprintf("make %s dual-stack", gr.Service)
				if len(gr.NeedsIPv6Subnets) > 0 {
					// Data, not an error message: the load balancer's subnets
					// need IPv6 first, which the aws phase gives them or not.
					if !o.selected(PhaseAWS) {
						block(&p, fmt.Sprintf("the load balancer of %s is in subnets without IPv6 (%s): run the aws phase first (leave --phases out, or add aws)",
							gr.Service, strings.Join(gr.NeedsIPv6Subnets, ", ")))
						break
					}
					p.Action = PlanAfterEarlier
					p.Summary = "after the underlay (its load balancer's subnets get IPv6 in the aws phase): " + p.Summary
				}
				if slices.ContainsFunc(gr.Actions, func(a gateway.Action) bool { return a.Kind == "recreate-service" }) {
					p.Summary += fmt.Sprintf("; --recreate-gateway: its Classic ELB is replaced by a dual-stack NLB and the hostname %s changes", gr.Hostname)
				}
			}
		case PhaseValidate:
			p.Action = PlanCheck
			p.Summary = fmt.Sprintf("prove it in namespace %s, for IPv4 and IPv6: %s (%d checks); everything it creates is deleted",
				DefaultValidateNamespace, strings.Join(probe.AllChecks, ", "), 2*len(probe.AllChecks))
			if e, ok := earlier[PhaseValidate]; ok && e.State == journal.Done {
				p.Details = append(p.Details, fmt.Sprintf("passed in an earlier upgrade (%s); run again only if a phase changes something", e.Updated.Format(time.RFC3339)))
			}
		}
		if e, ok := earlier[name]; ok && e.State == journal.Done && p.Action == PlanNothing {
			p.Summary += fmt.Sprintf(" (completed by an earlier upgrade, %s)", e.Updated.Format(time.RFC3339))
		}
		plan.Phases = append(plan.Phases, p)
	}
	// A proof that passed before is not repeated when nothing else is to
	// change (a second upgrade changes nothing); --phases validate alone runs it.
	work := false
	for _, p := range plan.Phases {
		work = work || p.Action == PlanChange || p.Action == PlanAfterEarlier
	}
	if e, ok := earlier[PhaseValidate]; ok && e.State == journal.Done && !work && len(o.Phases) > 1 {
		for i := range plan.Phases {
			if p := &plan.Phases[i]; p.Name == PhaseValidate && p.Action == PlanCheck {
				p.Action = PlanNothing
				p.Summary = fmt.Sprintf("passed in an earlier upgrade (%s) and nothing is to change; run `%s` to prove it again", e.Updated.Format(time.RFC3339), o.inv.Command("validate"))
				p.Details = nil
			}
		}
	}
	return plan
}

// planNetwork turns network's dry run into the phase's plan: problems the
// underlay will fix are "after the underlay", the others block.
func (o *UpgradeOptions) planNetwork(p *PhasePlan, nr *NetworkResult, block func(*PhasePlan, string)) {
	if nr.Mode != "openshift" {
		block(p, fmt.Sprintf("on %s the cluster network is set on the control-plane hosts: apply the plan of `%s`, then run upgrade --phases gateway,validate", nr.Mode, o.inv.Command("network")))
		return
	}
	added := func() string {
		if nr.Added == nil {
			return ""
		}
		var s []string
		if nr.Added.ClusterNetwork != nil {
			s = append(s, fmt.Sprintf("clusterNetwork %s (hostPrefix %d)", nr.Added.ClusterNetwork.CIDR, nr.Added.ClusterNetwork.HostPrefix))
		}
		if nr.Added.ServiceNetwork != "" {
			s = append(s, "serviceNetwork "+nr.Added.ServiceNetwork)
		}
		return strings.Join(s, ", ")
	}
	for _, op := range nr.Patch {
		b, _ := json.Marshal(op)
		p.Details = append(p.Details, "patch "+string(b))
	}
	switch nr.Outcome {
	case OutcomeAlreadyDualStack:
		p.Action, p.Summary = PlanNothing, nr.Message
	case OutcomeDryRun:
		p.Action = PlanChange
		if len(nr.Patch) == 0 {
			p.Summary = "IPv6 is already requested in " + network.NetworkResource + ": wait for the network operator to apply it"
		} else {
			p.Summary = fmt.Sprintf("append %s to %s, then wait for the network operator", added(), network.NetworkResource)
		}
	case OutcomePreflightFailed:
		deferred := false
		var blockers []string
		for _, pr := range nr.Preflight {
			switch {
			case pr.Check == "node-internal-ips" && o.selected(PhaseAWS):
				deferred = true
				p.Details = append(p.Details, "after the underlay: "+pr.Message+" (the aws phase gives the instances IPv6)")
			case pr.Forceable && o.ForceNetwork:
				p.Details = append(p.Details, "WARN (--force-network): "+pr.Message)
			case pr.Forceable:
				blockers = append(blockers, pr.Message+"; "+pr.Fix+" (upgrade: --force-network)")
			default:
				blockers = append(blockers, pr.Message+"; fix: "+pr.Fix)
			}
		}
		if len(blockers) > 0 {
			for _, b := range blockers {
				block(p, b)
			}
			return
		}
		p.Action = PlanChange
		if deferred {
			p.Action = PlanAfterEarlier
		}
		p.Summary = fmt.Sprintf("after the underlay: append %s to %s, then wait for the network operator", added(), network.NetworkResource)
	default:
		block(p, fmt.Sprintf("unexpected plan from network (%s): %s", nr.Outcome, nr.Message))
	}
}

// runPhases runs the planned phases in order, stopping at the first failure.
func (o *UpgradeOptions) runPhases(ctx context.Context, store *journal.Store, res *UpgradeResult) error {
	progress := cli.NewProgress(o.ErrOut)
	total := len(o.Phases)
	n := 0
	changed := false
	stderr := &indentWriter{w: o.ErrOut, prefix: "    "}
	for i, p := range res.Plan.Phases {
		if p.Action == PlanSkipped {
			continue
		}
		n++
		pr := &res.Phases[i]
		label := fmt.Sprintf("[%d/%d] %s", n, total, p.Name)
		if p.Action == PlanNothing {
			pr.Status, pr.Message = PhaseAlreadyDone, p.Summary
			fmt.Fprintf(o.ErrOut, "%s: already done: %s\n", label, pr.Message)
			o.record(ctx, store, p.Name, journal.Done)
			continue
		}
		fmt.Fprintf(o.ErrOut, "%s: %s\n", label, p.Summary)
		o.record(ctx, store, p.Name, journal.Pending)
		var msg string
		var didChange bool
		var err error
		switch p.Name {
		case PhaseAWS:
			msg, didChange, err = o.runAWS(ctx, p.AWS, progress, label)
		case PhaseNetwork:
			if err = o.waitNodesIPv6(ctx, progress, label); err == nil {
				msg, didChange, err = o.runNetwork(ctx, stderr)
			}
		case PhaseGateway:
			msg, didChange, err = o.runGateway(ctx, stderr)
		case PhaseValidate:
			msg, err = o.runValidate(ctx, stderr)
		}
		changed = changed || didChange
		if err != nil {
			pr.Status, pr.Message = PhaseFailed, err.Error()
			fmt.Fprintf(o.ErrOut, "%s: FAILED: %s\n", label, pr.Message)
			o.record(ctx, store, p.Name, journal.Failed)
			setPending(res, PhaseNotRun, "phase "+p.Name+" failed")
			res.Outcome = "failed"
			res.Message = fmt.Sprintf("stopped at phase %s: %s", p.Name, err)
			return o.finish(res, errors.New(res.Message))
		}
		pr.Status, pr.Message = PhaseDone, msg
		fmt.Fprintf(o.ErrOut, "%s: done: %s\n", label, msg)
		o.record(ctx, store, p.Name, journal.Done)
	}
	res.Outcome = "converted"
	res.Message = "every selected phase is done"
	if !changed {
		res.Outcome, res.Message = "nothing-to-do", "nothing changed: every selected layer was already dual-stack"
	}
	return o.finish(res, nil)
}

// record notes a phase's state in the journal; failing to is a warning:
// the phases themselves are idempotent.
func (o *UpgradeOptions) record(ctx context.Context, store *journal.Store, phase string, state journal.State) {
	err := store.Put(ctx, journal.Entry{ID: upgradeLayer + "/phase/" + phase, Layer: upgradeLayer, Operation: "phase", Resource: phase, State: state})
	if err != nil {
		fmt.Fprintf(o.ErrOut, "warning: %v\n", err)
	}
}

func (o *UpgradeOptions) runAWS(ctx context.Context, plan *awsx.Plan, progress *cli.Progress, label string) (string, bool, error) {
	progress.Start(fmt.Sprintf("%s: applying %d changes", label, len(plan.Changes)))
	results, err := o.underlay.Apply(ctx, plan, func(done, total int, r awsx.Result) {
		progress.Update(fmt.Sprintf("%s: %d/%d %s %s: %s", label, done, total, r.Operation, r.Resource, r.Status))
	})
	progress.Done("")
	applied, failed := countStatus(results, awsx.StatusApplied), countStatus(results, awsx.StatusFailed)
	if err != nil {
		return "", applied > 0, fmt.Errorf("aws apply: %d of %d changes applied, %d failed: %w", applied, len(plan.Changes), failed, err)
	}
	return fmt.Sprintf("applied %d of %d changes to VPC %s, exactly as planned (recorded in the journal)", applied, len(plan.Changes), plan.Cluster.VPCID), applied > 0, nil
}

// waitNodesIPv6 gives the nodes time to report the IPv6 addresses the
// underlay gave their instances (the kubelets pick them up).
func (o *UpgradeOptions) waitNodesIPv6(ctx context.Context, progress *cli.Progress, label string) error {
	hasIPv6 := func(n *corev1.Node) bool { return len(ipfamily.NodeInternalIPs(n, ipfamily.IPv6)) > 0 }
	nodes, err := kube.ListNodes(ctx, o.kube, metav1.ListOptions{})
	if err != nil {
		return kube.Explain("listing nodes", err)
	}
	without := 0
	for i := range nodes {
		if !hasIPv6(&nodes[i]) {
			without++
		}
	}
	if without == 0 {
		return nil
	}
	progress.Start(fmt.Sprintf("%s: waiting for %d of %d nodes to report an IPv6 InternalIP (timeout %s)", label, without, len(nodes), o.Timeout))
	defer progress.Done("")
	err = kube.WaitAll(ctx, kube.NodesLW(o.kube), &corev1.Node{}, o.Timeout, func(objs map[string]runtime.Object) (bool, error) {
		all := kube.Nodes(objs)
		w := 0
		for _, n := range all {
			if !hasIPv6(n) {
				w++
			}
		}
		progress.Update(fmt.Sprintf("%s: %d of %d nodes without an IPv6 InternalIP", label, w, len(all)))
		return w == 0, nil
	})
	if err != nil {
		return fmt.Errorf("nodes did not report IPv6 InternalIPs within --timeout %s (restart their kubelets so they pick up the instances' IPv6 addresses): %w", o.Timeout, err)
	}
	return nil
}

func (o *UpgradeOptions) runNetwork(ctx context.Context, log io.Writer) (string, bool, error) {
	r, err := o.overlay.Apply(ctx, log)
	if r != nil && r.Outcome == OutcomeAlreadyDualStack {
		return r.Message, false, nil
	}
	if err != nil {
		if r != nil && r.Message != "" {
			return "", true, fmt.Errorf("network (%s): %s", r.Outcome, r.Message)
		}
		return "", false, fmt.Errorf("network: %w", err)
	}
	return r.Message, true, nil
}

func (o *UpgradeOptions) runGateway(ctx context.Context, log io.Writer) (string, bool, error) {
	r, err := o.edge.Apply(ctx, log)
	if err != nil {
		return "", r != nil && r.Changed, fmt.Errorf("gateway: %w", err)
	}
	msg := fmt.Sprintf("%s is dual-stack: %s answers A %s, AAAA %s", r.Service, r.Hostname, strings.Join(r.IPv4, " "), strings.Join(r.IPv6, " "))
	if r.PreviousHostname != "" {
		msg += fmt.Sprintf(" (hostname changed from %s: update DNS records that point at it)", r.PreviousHostname)
	}
	return msg, r.Changed, nil
}

func (o *UpgradeOptions) runValidate(ctx context.Context, log io.Writer) (string, error) {
	r, err := o.proof.Run(ctx, log)
	if r == nil {
		return "", fmt.Errorf("validate: %w", err)
	}
	msg := fmt.Sprintf("%d/%d checks passed", r.Summary.Pass, r.Summary.Total)
	if err != nil || !r.AllPassed() {
		var failed []string
		for _, c := range r.Checks {
			if c.Status != "PASS" {
				failed = append(failed, fmt.Sprintf("%s %s %s: %s", c.Status, c.Name, c.Family, c.Message))
			}
		}
		detail := strings.Join(failed, "; ")
		switch {
		case r.Error != "":
			detail = r.Error
		case detail == "" && err != nil:
			detail = err.Error() // the checks passed, the cleanup did not
		}
		return "", fmt.Errorf("validate: %s; %s", msg, detail)
	}
	return msg, nil
}

// finish prints the result (and, on a table, the summary and what to do next).
func (o *UpgradeOptions) finish(res *UpgradeResult, err error) error {
	if perr := o.Output.Print(o.Out, res, func(w io.Writer, _ bool) error { return o.printSummary(w, res) }); perr != nil {
		return perr
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

func (o *UpgradeOptions) printSummary(w io.Writer, res *UpgradeResult) error {
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
	return nil
}

// printNext says how to go on after a stop: what was done, what not, how
// to resume and how to roll back.
func (o *UpgradeOptions) printNext(w io.Writer, res *UpgradeResult) {
	if res.Outcome != "failed" && res.Outcome != "blocked" {
		return
	}
	var done, notDone []string
	for _, p := range res.Phases {
		switch p.Status {
		case PhaseDone, PhaseAlreadyDone:
			done = append(done, p.Name)
		case PhaseFailed, PhaseNotRun:
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
	if res.Outcome == "blocked" {
		fmt.Fprintln(w, "Fix the blockers above (or leave their phase out with --phases), then run upgrade again.")
		return
	}
	fmt.Fprintf(w, "To resume: fix the cause, then run `%s` again: every phase is idempotent, finished ones are reported as already done.\n", o.inv.Command(o.resumeCommand()))
	fmt.Fprintf(w, "To roll back every layer (the gateway Service, the network, the AWS changes): `%s`.\n", o.inv.Command("rollback --yes"))
}

func printUpgradePlan(w io.Writer, plan UpgradePlan) {
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

// indentWriter prefixes each line a phase's command writes, so its output
// reads as part of the phase.
type indentWriter struct {
	w       io.Writer
	prefix  string
	midLine bool
}

func (iw *indentWriter) Write(b []byte) (int, error) {
	var out bytes.Buffer
	for _, c := range b {
		if !iw.midLine && c != '\r' {
			out.WriteString(iw.prefix)
			iw.midLine = true
		}
		out.WriteByte(c)
		if c == '\n' || c == '\r' {
			iw.midLine = false
		}
	}
	if _, err := iw.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
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
