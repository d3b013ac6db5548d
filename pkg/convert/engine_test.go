package convert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

// world is a cluster as the fake phases see it; ran records every call.
type world struct {
	ran     []string
	done    map[string]bool
	fail    map[string]bool
	blocked map[string]string
	// after: the phase's plan needs this earlier phase's change.
	after map[string]string
}

func newWorld() *world {
	return &world{done: map[string]bool{}, fail: map[string]bool{}, blocked: map[string]string{}, after: map[string]string{}}
}

type fakePhase struct {
	name string
	w    *world
}

func (p fakePhase) Name() string { return p.name }

func (p fakePhase) Plan(context.Context, *Facts) (PhasePlan, error) {
	p.w.ran = append(p.w.ran, p.name+" (plan)")
	if b := p.w.blocked[p.name]; b != "" {
		return PhasePlan{Blockers: []string{b}}, nil
	}
	if p.w.done[p.name] {
		return PhasePlan{Action: ActionNothing, Summary: p.name + " is done"}, nil
	}
	return PhasePlan{Action: ActionChange, Summary: "change " + p.name, Details: []string{p.name + " detail"}, After: p.w.after[p.name], Needs: p.name + " needs " + p.w.after[p.name]}, nil
}

func (p fakePhase) Apply(context.Context, *Facts, PhasePlan, *Run) (Done, error) {
	p.w.ran = append(p.w.ran, p.name)
	if p.w.fail[p.name] {
		return Done{}, errors.New(p.name + " broke")
	}
	p.w.done[p.name] = true
	return Done{Message: p.name + " applied", Changed: true}, nil
}

// testPhases are the fake phases, in run order.
var testPhases = []string{PhaseAWS, PhaseNetwork, PhaseGateway, PhaseValidate}

func testEngine(t *testing.T, w *world, kc *fake.Clientset, selected ...string) (*Engine, *bytes.Buffer) {
	t.Helper()
	if len(selected) == 0 {
		selected = testPhases
	}
	var phases []Phase
	for _, n := range testPhases {
		phases = append(phases, fakePhase{name: n, w: w})
	}
	var log bytes.Buffer
	return &Engine{Facts: &Facts{Clients: &kube.Clients{Kube: kc}}, Phases: phases, Selected: selected,
		Journal: journal.NewStore(kc, journal.DefaultNamespace, journal.DefaultName), Log: &log,
		Command: func(s string) string { return "kubectl dualstack " + s }}, &log
}

func names(ps []PhasePlan, action string) []string {
	var out []string
	for _, p := range ps {
		if p.Action == action {
			out = append(out, p.Name)
		}
	}
	return out
}

func TestEngineAppliesInOrderStopsAtAFailureAndResumes(t *testing.T) {
	kc := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: journal.DefaultNamespace}})
	w := newWorld()
	w.after[PhaseNetwork] = PhaseAWS
	w.fail[PhaseNetwork] = true
	e, log := testEngine(t, w, kc)
	plan := e.Plan(context.Background())
	if got := names(plan.Phases, ActionAfter); !slices.Equal(got, []string{PhaseNetwork}) {
		t.Fatalf("after-underlay phases %q, want network", got)
	}
	res := NewResult(plan)
	err := e.Apply(context.Background(), res)
	if !errors.Is(err, ErrPhaseFailed) || res.Outcome != OutcomeFailed {
		t.Fatalf("err %v, outcome %s", err, res.Outcome)
	}
	want := []string{"aws (plan)", "network (plan)", "gateway (plan)", "validate (plan)", "aws", "network"}
	if !slices.Equal(w.ran, want) {
		t.Fatalf("ran %q, want %q", w.ran, want)
	}
	statuses := []string{}
	for _, p := range res.Phases {
		statuses = append(statuses, p.Status)
	}
	if !slices.Equal(statuses, []string{StatusDone, StatusFailed, StatusNotRun, StatusNotRun}) {
		t.Fatalf("statuses %q", statuses)
	}
	if !strings.Contains(log.String(), "[2/4] network: FAILED: network broke") {
		t.Fatalf("log:\n%s", log)
	}

	// Resume: aws is done (and the journal says an earlier run did it).
	w.fail[PhaseNetwork], w.ran = false, nil
	e, _ = testEngine(t, w, kc)
	plan = e.Plan(context.Background())
	if !strings.Contains(plan.Phases[0].Summary, "completed by an earlier upgrade") {
		t.Fatalf("aws: %+v", plan.Phases[0])
	}
	// network's dependency has nothing to give now: it is blocked, and says why.
	if len(plan.Blockers) != 1 || !strings.Contains(plan.Blockers[0], "network needs aws; that needs the aws phase, but it has nothing to change") {
		t.Fatalf("blockers %q", plan.Blockers)
	}
	w.after[PhaseNetwork] = ""
	plan = e.Plan(context.Background())
	res = NewResult(plan)
	if err := e.Apply(context.Background(), res); err != nil || res.Outcome != OutcomeConverted {
		t.Fatalf("resume: %v %s", err, res.Outcome)
	}
	if !slices.Equal(w.ran[len(w.ran)-3:], []string{PhaseNetwork, PhaseGateway, PhaseValidate}) {
		t.Fatalf("ran %q", w.ran)
	}

	// Everything done: the proof that passed is not repeated.
	e, _ = testEngine(t, w, kc)
	plan = e.Plan(context.Background())
	if got := names(plan.Phases, ActionNothing); len(got) != 4 {
		t.Fatalf("nothing-to-do phases %q: %+v", got, plan.Phases)
	}
}

func TestEngineDependencyOnAnUnselectedPhaseBlocks(t *testing.T) {
	kc := fake.NewClientset()
	w := newWorld()
	w.after[PhaseGateway] = PhaseAWS
	e, _ := testEngine(t, w, kc, PhaseGateway, PhaseValidate)
	plan := e.Plan(context.Background())
	if len(plan.Blockers) != 1 || !strings.Contains(plan.Blockers[0], "gateway needs aws; that needs the aws phase, but it is not in --phases") {
		t.Fatalf("blockers %q", plan.Blockers)
	}
	if got := names(plan.Phases, ActionSkipped); !slices.Equal(got, []string{PhaseAWS, PhaseNetwork}) {
		t.Fatalf("skipped %q", got)
	}
}

func TestEngineBlockerAndPlanningErrorStopEverything(t *testing.T) {
	kc := fake.NewClientset()
	w := newWorld()
	w.blocked[PhaseGateway] = "behind a Classic ELB"
	e, _ := testEngine(t, w, kc)
	plan := e.Plan(context.Background())
	if !slices.Equal(plan.Blockers, []string{"gateway: behind a Classic ELB"}) || plan.Phases[2].Action != ActionBlocked {
		t.Fatalf("plan %+v", plan)
	}
}

func TestEngineRecheckFindsDrift(t *testing.T) {
	kc := fake.NewClientset()
	w := newWorld()
	e, _ := testEngine(t, w, kc)
	plan := e.Plan(context.Background())
	_, diffs, err := e.Recheck(context.Background(), plan)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("no change, diffs %q, err %v", diffs, err)
	}
	w.done[PhaseNetwork] = true // someone did it meanwhile
	now, diffs, err := e.Recheck(context.Background(), plan)
	if err != nil || len(diffs) != 1 || !strings.Contains(diffs[0], "network: was change, is now nothing-to-do") {
		t.Fatalf("diffs %q, err %v", diffs, err)
	}
	if now.Phases[1].Action != ActionNothing {
		t.Fatalf("the new plan: %+v", now.Phases[1])
	}
	other := plan
	other.Cluster.ID = "another"
	if d := e.Compare(other, plan); len(d) != 1 || !strings.Contains(d[0], "another cluster") {
		t.Fatalf("another cluster: %q", d)
	}
}

func TestPhaseDiffs(t *testing.T) {
	a := &awsx.Plan{Cluster: awsx.Cluster{VPCID: "vpc-1"}, Changes: []awsx.Change{
		{Operation: "AssociateSubnetCidrBlock", Resource: "subnet-1", Parameters: map[string]string{"subnetId": "subnet-1", "ipv6CidrBlock": "2600::/64"}},
		{Operation: "CreateRoute", Resource: "rtb-1", Parameters: map[string]string{"routeTableId": "rtb-1"}},
	}}
	same := &awsx.Plan{Cluster: awsx.Cluster{VPCID: "vpc-1"}, Changes: []awsx.Change{a.Changes[1], a.Changes[0]}}
	if d := PlanDiff(a, same); d != "" {
		t.Fatalf("same changes in another order: %q", d)
	}
	other := &awsx.Plan{Cluster: awsx.Cluster{VPCID: "vpc-1"}, Changes: []awsx.Change{
		{Operation: "AssociateSubnetCidrBlock", Resource: "subnet-1", Parameters: map[string]string{"subnetId": "subnet-1", "ipv6CidrBlock": "2600:0:0:1::/64"}},
	}}
	d := PlanDiff(a, other)
	if !strings.Contains(d, "2 planned change(s) no longer needed or different") || !strings.Contains(d, "1 change(s) needed now") {
		t.Fatalf("diff %q", d)
	}
	if d := PlanDiff(a, &awsx.Plan{Cluster: awsx.Cluster{VPCID: "vpc-2"}}); !strings.Contains(d, "vpc-2") {
		t.Fatalf("another VPC: %q", d)
	}
	netPlan := func(v string) PhasePlan {
		return PhasePlan{Network: &network.Result{Patch: []network.PatchOp{{Op: "test", Path: "/spec/serviceNetwork", Value: []string{v}}}}}
	}
	if d := (&NetworkPhase{}).Diff(netPlan("172.30.0.0/16"), netPlan("172.31.0.0/16")); !strings.Contains(d, "the Network config changed") {
		t.Fatalf("network diff %q", d)
	}
	if d := (&NetworkPhase{}).Diff(netPlan("172.30.0.0/16"), netPlan("172.30.0.0/16")); d != "" {
		t.Fatalf("same patch: %q", d)
	}
}

// The aws phase applies the plan it was given only if the discovery it
// holds still gives that plan.
func TestAWSPhaseRefusesAPlanThatNoLongerHolds(t *testing.T) {
	inv := &awsx.Inventory{VPC: awsx.VPC{ID: "vpc-1"}}
	a := &AWSPhase{inv: inv}
	planned := PhasePlan{AWS: &awsx.Plan{Cluster: awsx.Cluster{VPCID: "vpc-1"}, Changes: []awsx.Change{{Operation: "AssociateVpcCidrBlock", Resource: "vpc-1"}}}}
	_, err := a.Apply(context.Background(), &Facts{Account: &Account{}}, planned, &Run{})
	if !errors.Is(err, ErrPlanDrift) || !strings.Contains(err.Error(), "nothing was applied") {
		t.Fatalf("err %v", err)
	}
}

func TestIndentWriter(t *testing.T) {
	var b bytes.Buffer
	w := Indent(&b, "  ")
	fmt.Fprint(w, "one\ntw")
	fmt.Fprint(w, "o\n\nthree\n")
	if got, want := b.String(), "  one\n  two\n  \n  three\n"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}

func TestProofMessage(t *testing.T) {
	var pass probe.ProofResult
	pass.Add(report.Check{Name: "pod-ips", Family: "IPv4", Status: report.Pass})
	if msg, err := proofMessage(pass, nil); err != nil || msg != "1/1 checks passed" {
		t.Fatalf("%q %v", msg, err)
	}
	fail := pass
	fail.Add(report.Check{Name: "curl-service", Family: "IPv6", Status: report.Fail, Message: "no route"})
	if _, err := proofMessage(fail, nil); err == nil || !strings.Contains(err.Error(), "1/2 checks passed; FAIL curl-service IPv6: no route") {
		t.Fatalf("%v", err)
	}
	stopped := probe.ProofResult{Error: "pods not Ready: image pull"}
	if _, err := proofMessage(stopped, errors.New("x")); err == nil || !strings.Contains(err.Error(), "pods not Ready: image pull") {
		t.Fatalf("%v", err)
	}
}
