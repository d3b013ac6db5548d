package plugin

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

func TestParsePhases(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		bad  bool
	}{
		{in: []string{"validate", "aws"}, want: []string{"aws", "validate"}},
		{in: []string{" Network ", "gateway", "network"}, want: []string{"network", "gateway"}},
		{in: []string{"router", "validate", "policies", "aws"}, want: []string{"aws", "policies", "router", "validate"}},
		{in: []string{"aws", "bogus"}, bad: true},
		{in: nil, bad: true},
	} {
		got, err := parsePhases(tc.in)
		if tc.bad {
			if cli.ExitCode(err) != cli.ExitBadUsage {
				t.Errorf("parsePhases(%q): %v, want a usage error", tc.in, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parsePhases(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestUpgradeLeavesPoliciesAndRouterOutByDefault: upgrade without
// --phases runs every phase but the two that only run when asked.
func TestUpgradeLeavesPoliciesAndRouterOutByDefault(t *testing.T) {
	cmd := NewCmdUpgrade(InvocationFrom("kubectl-dualstack"), genericiooptions.NewTestIOStreamsDiscard(), nil)
	def := cmd.Flag("phases").DefValue
	for _, p := range []string{"policies", "router"} {
		if strings.Contains(def, p) {
			t.Errorf("upgrade's default --phases %s includes %s", def, p)
		}
	}
	for _, p := range []string{"aws", "nodes", "network", "mesh", "services", "workloads", "gateway", "validate"} {
		if !strings.Contains(def, p) {
			t.Errorf("upgrade's default --phases %s lacks %s", def, p)
		}
	}
}

func TestUpgradeBadPhasesExit2(t *testing.T) {
	code, _, stderr := run(t, "kubectl-dualstack", "upgrade", "--phases", "aws,nope")
	if code != cli.ExitBadUsage || !strings.Contains(stderr, `unknown phase "nope"`) {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
	code, _, stderr = run(t, "kubectl-dualstack", "upgrade", "--dry-run=server")
	if code != cli.ExitBadUsage || !strings.Contains(stderr, "--dry-run=client") {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
}

// fakePhase is a phase of the engine whose plan the test sets.
type fakePhase struct {
	name string
	plan func() convert.PhasePlan
	ran  *[]string
	fail bool
	// apply, when set, runs as the phase is applied.
	apply func()
}

func (p *fakePhase) Name() string { return p.name }

func (p *fakePhase) Plan(context.Context, *convert.Facts) (convert.PhasePlan, error) {
	return p.plan(), nil
}

func (p *fakePhase) Apply(context.Context, *convert.Facts, convert.PhasePlan, *convert.Run) (convert.Done, error) {
	*p.ran = append(*p.ran, p.name)
	if p.apply != nil {
		p.apply()
	}
	if p.fail {
		return convert.Done{}, errors.New(p.name + " timed out")
	}
	return convert.Done{Message: p.name + " done", Changed: true}, nil
}

func change(what string) func() convert.PhasePlan {
	return func() convert.PhasePlan {
		return convert.PhasePlan{Action: convert.ActionChange, Summary: "change " + what, Details: []string{what}}
	}
}

func newTestUpgrade(yes bool, phases ...*fakePhase) (*UpgradeOptions, *bytes.Buffer, *bytes.Buffer) {
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := &UpgradeOptions{
		Timeout: time.Minute, Mutation: cli.NewMutationFlags(),
		Output: cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON), inv: InvocationFrom("kubectl-dualstack"),
		IOStreams: streams, facts: &convert.Facts{},
	}
	for _, p := range phases {
		o.phases = append(o.phases, p)
		o.Phases = append(o.Phases, p.name)
	}
	o.Mutation.Yes = yes
	_ = o.Target.Journal.Set(journal.DefaultNamespace)
	o.kube = fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: journal.DefaultNamespace}})
	o.facts.Clients = &kube.Clients{Kube: o.kube}
	return o, out, errOut
}

func TestUpgradeFailureSaysWhatWasDoneAndHowToGoOn(t *testing.T) {
	var ran []string
	o, out, errOut := newTestUpgrade(true,
		&fakePhase{name: "aws", plan: change("vpc"), ran: &ran},
		&fakePhase{name: "network", plan: change("network"), ran: &ran, fail: true},
		&fakePhase{name: "gateway", plan: change("gateway"), ran: &ran})
	o.userArgs = []string{"--timeout=1m0s"} // the resume hint keeps the flags given
	if err := o.Run(context.Background()); err == nil {
		t.Fatalf("a failed phase should fail the run\n%s", out)
	}
	for _, want := range []string{"Upgrade plan:", "failed", "not run: phase network failed", "To resume",
		"kubectl dualstack upgrade --timeout=1m0s --yes", "kubectl dualstack rollback --yes", "Done: aws. Not done: network, gateway."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut.String(), "[1/3] aws: done") || !slices.Equal(ran, []string{"aws", "network"}) {
		t.Errorf("ran %q\n%s", ran, errOut)
	}
}

func TestUpgradeBlockersStopBeforeAnyChange(t *testing.T) {
	var ran []string
	o, out, _ := newTestUpgrade(true,
		&fakePhase{name: "aws", plan: change("vpc"), ran: &ran},
		&fakePhase{name: "gateway", ran: &ran, plan: func() convert.PhasePlan {
			return convert.PhasePlan{Blockers: []string{"behind a Classic ELB: pass --recreate-gateway"}}
		}})
	if err := o.Run(context.Background()); err == nil {
		t.Fatal("a blocker should stop the run")
	}
	if !strings.Contains(out.String(), "--recreate-gateway") || !strings.Contains(out.String(), "Blocked: nothing will be changed") || len(ran) > 0 {
		t.Errorf("ran %q, output:\n%s", ran, out)
	}
}

func TestUpgradeWithoutYesOrTerminalStopsAfterThePlan(t *testing.T) {
	var ran []string
	o, out, errOut := newTestUpgrade(false, &fakePhase{name: "aws", plan: change("vpc"), ran: &ran})
	err := o.Run(context.Background())
	if !errors.Is(err, cli.ErrNotConfirmed) || !strings.Contains(errOut.String(), "upgrade --yes") {
		t.Fatalf("err %v\n%s", err, errOut)
	}
	if !strings.Contains(out.String(), "Upgrade plan:") || len(ran) > 0 {
		t.Fatalf("ran %q\n%s", ran, out)
	}
}

// When the cluster changes while the user reads the plan, nothing is
// applied: the new plan is shown and the question asked again.
func TestUpgradeAsksAgainWhenThePlanNoLongerHolds(t *testing.T) {
	var ran []string
	target := "10.0.0.0/16"
	o, out, errOut := newTestUpgrade(false, &fakePhase{name: "aws", ran: &ran, plan: func() convert.PhasePlan { return change(target)() }})
	asked := 0
	o.confirm = func(context.Context) error {
		asked++
		if asked == 1 {
			target = "10.1.0.0/16" // changed while the question was on screen
		}
		return nil
	}
	if err := o.Run(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if asked != 2 || !slices.Equal(ran, []string{"aws"}) {
		t.Fatalf("asked %d times, ran %q", asked, ran)
	}
	if !strings.Contains(errOut.String(), "changed while the plan was shown") || strings.Count(out.String(), "Upgrade plan:") != 2 {
		t.Fatalf("stderr:\n%s\nstdout:\n%s", errOut, out)
	}
}

// A saved plan is applied as it is or not at all: a change while it was
// shown refuses it instead of asking about another plan.
func TestUpgradeSavedPlanThatNoLongerHoldsIsRefused(t *testing.T) {
	var ran []string
	target := "10.0.0.0/16"
	o, out, errOut := newTestUpgrade(false, &fakePhase{name: "aws", ran: &ran, plan: func() convert.PhasePlan { return change(target)() }})
	o.saved = &convert.Result{Plan: convert.Plan{Phases: []convert.PhasePlan{change(target)()}}}
	o.saved.Plan.Phases[0].Name = "aws"
	o.PlanFile = "plan.json"
	o.confirm = func(context.Context) error {
		target = "10.1.0.0/16"
		return nil
	}
	err := o.Run(context.Background())
	if err == nil || len(ran) > 0 {
		t.Fatalf("err %v, ran %q", err, ran)
	}
	if !strings.Contains(out.String(), "changed while the plan in plan.json was shown") || !strings.Contains(out.String(), "make a new plan") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out, errOut)
	}
}
