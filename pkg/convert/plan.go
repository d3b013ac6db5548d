// Package convert is the conversion engine: the facts about a cluster,
// gathered once, and the typed phases that take it to dual-stack, each
// planned read-only (Plan) and applied exactly as planned (Apply). A plan is
// plain data: the table, -o json|yaml, dry runs, saved plans and the drift
// check all use it. The commands in pkg/plugin only wire flags to it and
// print what it returns.
package convert

import (
	"slices"
	"time"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/dns"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/mesh"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/nodes"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/policies"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/router"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/services"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/workloads"
)

// The phases of a conversion, in the order they run.
const (
	PhaseAWS     = "aws"
	PhaseNetwork = "network"
	// PhaseNodes ("nodes") and PhaseServices ("services") are in their
	// phase files.
	PhaseGateway  = "gateway"
	PhaseValidate = "validate"
)

// AllPhases is every phase, in run order.
var AllPhases = []string{PhaseAWS, PhaseNodes, PhaseNetwork, PhaseMesh, PhaseServices, PhasePolicies, PhaseWorkloads, PhaseGateway, PhaseRouter, PhaseDNS, PhaseValidate}

// OnlyWhenAsked are the phases a plain upgrade leaves out: they run only
// when --phases names them (a NetworkPolicy is the user's security
// decision; the OpenShift router's change costs minutes of *.apps outage).
var OnlyWhenAsked = []string{PhasePolicies, PhaseRouter}

// DefaultPhases are the phases of an upgrade without --phases.
func DefaultPhases() []string {
	var out []string
	for _, p := range AllPhases {
		if !slices.Contains(OnlyWhenAsked, p) {
			out = append(out, p)
		}
	}
	return out
}

// Phase statuses, as -o json reports them.
const (
	StatusDone        = "done"         // ran in this run and succeeded
	StatusAlreadyDone = "already-done" // nothing to do: the cluster already has it
	StatusFailed      = "failed"
	StatusNotRun      = "not-run" // an earlier phase failed, or the run stopped before it
	StatusSkipped     = "skipped" // not in --phases
	StatusPlanned     = "planned" // dry run, or not confirmed
)

// Plan actions of a phase.
const (
	ActionChange  = "change"
	ActionAfter   = "after-underlay" // its preflight depends on an earlier phase's change
	ActionNothing = "nothing-to-do"
	ActionBlocked = "blocked"
	ActionSkipped = "skipped"
	ActionCheck   = "check" // validate: read-only proof
)

// Outcomes of a run.
const (
	OutcomeConverted    = "converted"
	OutcomeNothingToDo  = "nothing-to-do"
	OutcomeFailed       = "failed"
	OutcomeBlocked      = "blocked"
	OutcomeNotConfirmed = "not-confirmed"
	OutcomeDryRun       = "dry-run"
	OutcomePlanRefused  = "plan-refused"
	OutcomeDrift        = "drift"
)

// Result is what `upgrade -o json|yaml` prints. Field names are stable.
type Result struct {
	// Outcome is converted, nothing-to-do, failed, blocked, not-confirmed,
	// dry-run, plan-refused or drift.
	Outcome string        `json:"outcome"`
	Message string        `json:"message"`
	Plan    Plan          `json:"plan"`
	Phases  []PhaseResult `json:"phases"`
}

// Plan is the one combined plan, per phase.
type Plan struct {
	Cluster  Cluster     `json:"cluster"`
	Settings *Settings   `json:"settings,omitempty"`
	Phases   []PhasePlan `json:"phases"`
	Blockers []string    `json:"blockers"`
	// BadInput is the first phase's refusal of the flags (a
	// cli.UsageError): the run stops with it, exit 2.
	BadInput error `json:"-"`
}

// PhasePlan is what one phase will do.
type PhasePlan struct {
	Name string `json:"name"`
	// Action is change, after-underlay, nothing-to-do, blocked, skipped or check.
	Action  string   `json:"action"`
	Summary string   `json:"summary"`
	Details []string `json:"details,omitempty"`
	// After names the earlier phase whose change this one needs (the
	// network needs the nodes' IPv6 addresses the aws phase gives; a
	// dual-stack NLB needs subnets with IPv6): data, not an error message.
	After string `json:"after,omitempty"`
	// Needs says what the phase needs from After, for the blocker when
	// After is not selected or has nothing to give.
	Needs string `json:"-"`
	// Blockers stop the whole run before any change.
	Blockers []string `json:"-"`
	// The phase's own plan, as its command's -o json prints it.
	AWS       *awsx.Plan      `json:"aws,omitempty"`
	Network   *network.Result `json:"network,omitempty"`
	Gateway   *gateway.Result `json:"gateway,omitempty"`
	Services  *services.Plan  `json:"services,omitempty"`
	Nodes     *nodes.Plan     `json:"nodes,omitempty"`
	Mesh      *mesh.Plan      `json:"mesh,omitempty"`
	Workloads *workloads.Plan `json:"workloads,omitempty"`
	DNS       *dns.Plan       `json:"dns,omitempty"`
	Policies  *policies.Plan  `json:"policies,omitempty"`
	Router    *router.Plan    `json:"router,omitempty"`
}

// Mutating says whether applying the phase changes the cluster or AWS.
func (p PhasePlan) Mutating() bool { return p.Action == ActionChange || p.Action == ActionAfter }

// PhaseResult is how one phase went.
type PhaseResult struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Cluster says which cluster a plan is for, so a saved plan is never
// applied to another.
type Cluster struct {
	// ID is the UID of the kube-system namespace: stable for the life of a
	// cluster, different for every cluster.
	ID        string    `json:"id"`
	Server    string    `json:"server,omitempty"`
	VPCID     string    `json:"vpcId,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Settings are the options that shape a plan; a saved plan carries them,
// so applying it plans with the same ones.
type Settings struct {
	Phases          []string `json:"phases"`
	ForceNetwork    bool     `json:"forceNetwork,omitempty"`
	RecreateGateway bool     `json:"recreateGateway,omitempty"`
	NewInstanceType string   `json:"allowInstanceTypeChange,omitempty"`
	// AllowControlPlaneRestart and ForceVPC are the flags of the same names.
	AllowControlPlaneRestart bool `json:"allowControlPlaneRestart,omitempty"`
	ForceVPC                 bool `json:"forceVpc,omitempty"`
	// MaxUnavailable and ForceWorkloads are the workloads phase's flags.
	MaxUnavailable int  `json:"maxUnavailable,omitempty"`
	ForceWorkloads bool `json:"forceWorkloads,omitempty"`
	// Namespaces narrows the services and workloads phases.
	Namespaces *kube.NamespaceSelection `json:"namespaces,omitempty"`
	// HostedZones are the dns phase's --hosted-zone (and the zones a
	// gateway migration moves records in).
	HostedZones []string `json:"hostedZones,omitempty"`
	// RetireOldGateway: after a gateway migration, delete the old Service
	// once the names answer the new one and their TTL passed.
	RetireOldGateway bool `json:"retireOldGateway,omitempty"`
}
