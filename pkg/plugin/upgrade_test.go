package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

func TestParsePhases(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		bad  bool
	}{
		{in: []string{"validate", "aws"}, want: []string{"aws", "validate"}},
		{in: []string{" Network ", "gateway", "network"}, want: []string{"network", "gateway"}},
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

func TestIndentWriter(t *testing.T) {
	var b bytes.Buffer
	w := &indentWriter{w: &b, prefix: "  "}
	fmt.Fprint(w, "one\ntw")
	fmt.Fprint(w, "o\n\nthree\n")
	if got, want := b.String(), "  one\n  two\n  \n  three\n"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}

// fakePhases answers the phase commands with canned results, as their -o
// json prints them, and records what was run.
type fakePhases struct {
	ran       []string
	awsDone   bool
	netDone   bool
	netFail   bool
	gwDone    bool
	classic   bool
	awsReject bool
	awsDrift  bool
	applied   *awsx.Plan
}

// The aws phase is typed: Plan and Apply, no command line.
func (f *fakePhases) Plan(context.Context) (*awsx.Plan, error) {
	f.ran = append(f.ran, "aws plan")
	p := awsx.Plan{Cluster: awsx.Cluster{VPCID: "vpc-1", Region: "r"}}
	if !f.awsDone {
		p.Changes = []awsx.Change{{Operation: "AssociateVpcCidrBlock", Resource: "vpc-1"}, {Operation: "AssociateSubnetCidrBlock", Resource: "subnet-1"}}
	}
	if f.awsReject {
		return nil, errors.New("no AWS credentials")
	}
	return &p, nil
}

func (f *fakePhases) Apply(_ context.Context, p *awsx.Plan, _ func(int, int, awsx.Result)) ([]awsx.Result, error) {
	f.ran = append(f.ran, "aws apply")
	if f.awsDrift {
		return nil, fmt.Errorf("the AWS network of VPC vpc-1 %w (1 change needed now that was not planned)", ErrPlanDrift)
	}
	f.applied = p
	f.awsDone = true
	out := make([]awsx.Result, len(p.Changes))
	for i := range out {
		out[i].Status = awsx.StatusApplied
	}
	return out, nil
}

// The network phase.
type fakeOverlay struct{ f *fakePhases }

func (o fakeOverlay) Plan(context.Context) (*NetworkResult, error) {
	f := o.f
	f.ran = append(f.ran, "network (plan)")
	r := &NetworkResult{Mode: "openshift", Outcome: OutcomeDryRun, Added: &network.Added{ServiceNetwork: "fd02::/112"}, Patch: []network.PatchOp{{Op: "add"}}}
	if f.netDone {
		r.Outcome, r.Patch = OutcomeAlreadyDualStack, nil
	} else if !f.awsDone {
		r.Outcome = OutcomePreflightFailed
		r.Preflight = []network.Problem{{Check: "node-internal-ips", Message: "6 of 6 nodes have no IPv6 InternalIP"}}
		return r, errors.New("preflight failed")
	}
	return r, nil
}

func (o fakeOverlay) Apply(context.Context, io.Writer) (*NetworkResult, error) {
	f := o.f
	f.ran = append(f.ran, "network")
	if f.netFail {
		return &NetworkResult{Mode: "openshift", Outcome: OutcomeTimedOut, Message: "the network operator did not finish within --timeout"}, errors.New("timed out")
	}
	f.netDone = true
	return &NetworkResult{Mode: "openshift", Outcome: OutcomeConverted, Message: "dual-stack"}, nil
}

// The gateway phase.
type fakeEdge struct {
	f        *fakePhases
	recreate bool
}

func (e fakeEdge) Plan(context.Context) (*gateway.Result, error) {
	f := e.f
	f.ran = append(f.ran, "gateway (plan)")
	if f.classic && !e.recreate {
		return nil, fmt.Errorf("%w: re-run with --recreate", gateway.ErrClassic)
	}
	if f.gwDone {
		return &gateway.Result{Service: "istio-system/gw", Actions: []gateway.Action{{Kind: "service", Status: "unchanged"}}}, nil
	}
	return &gateway.Result{Service: "istio-system/gw", Actions: []gateway.Action{{Kind: "patch-service", Status: "planned"}}}, nil
}

func (e fakeEdge) Apply(context.Context, io.Writer) (*gateway.Result, error) {
	e.f.ran = append(e.f.ran, "gateway")
	e.f.gwDone = true
	return &gateway.Result{Service: "istio-system/gw", Hostname: "h", Changed: true, IPv4: []string{"1.2.3.4"}, IPv6: []string{"::1"}}, nil
}

// The validate phase.
type fakeProof struct{ f *fakePhases }

func (p fakeProof) Run(context.Context, io.Writer) (*ValidateResult, error) {
	p.f.ran = append(p.f.ran, "validate")
	r := &ValidateResult{}
	r.Add(report.Check{Name: "pod-ips", Status: report.Pass})
	return r, nil
}

func newTestUpgrade(f *fakePhases, yes bool, phases ...string) (*UpgradeOptions, *bytes.Buffer, *bytes.Buffer) {
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := &UpgradeOptions{
		Phases: AllPhases, Timeout: time.Minute, Mutation: cli.NewMutationFlags(),
		Output: cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON), inv: InvocationFrom("kubectl-dualstack"),
		IOStreams: streams, underlay: f, overlay: fakeOverlay{f}, proof: fakeProof{f},
	}
	if len(phases) > 0 {
		o.Phases = phases
	}
	o.Mutation.Yes = yes
	o.edge = fakeEdge{f: f, recreate: o.RecreateGateway}
	_ = o.Target.Journal.Set(journal.DefaultNamespace)
	o.Parallel = 4
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeInternalIP, Address: "2600::1"}}}}
	o.kube = fake.NewClientset(node, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: journal.DefaultNamespace}})
	return o, out, errOut
}

func TestUpgradeRunsThePhasesInOrderAndResumes(t *testing.T) {
	f := &fakePhases{netFail: true}
	o, out, errOut := newTestUpgrade(f, true)
	o.userArgs = []string{"--timeout=1m0s"} // the resume hint keeps the flags given
	err := o.Run(context.Background())
	if err == nil {
		t.Fatalf("a failed network phase should fail the run\n%s", out)
	}
	for _, want := range []string{"[after-underlay]", "after the underlay", "failed", "not run: phase network failed", "To resume", "kubectl dualstack upgrade --timeout=1m0s --yes", "kubectl dualstack rollback --yes", "Done: aws."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut.String(), "[1/4] aws: done") {
		t.Errorf("no progress line:\n%s", errOut)
	}
	if want := []string{"aws plan", "network (plan)", "gateway (plan)", "aws apply", "network"}; !slices.Equal(f.ran, want) {
		t.Fatalf("ran %q, want %q", f.ran, want)
	}

	// Resume: the journal knows aws was done; the rest runs.
	f.netFail, f.ran = false, nil
	o2, out, _ := newTestUpgrade(f, true)
	o2.kube = o.kube
	if err := o2.Run(context.Background()); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if want := []string{"aws plan", "network (plan)", "gateway (plan)", "network", "gateway", "validate"}; !slices.Equal(f.ran, want) {
		t.Fatalf("ran %q, want %q", f.ran, want)
	}
	if !strings.Contains(out.String(), "completed by an earlier upgrade") || !strings.Contains(out.String(), "already-done") {
		t.Errorf("resume does not report the phase done earlier:\n%s", out)
	}

	// Nothing left: no question, nothing run but the plans.
	f.ran = nil
	o3, out, _ := newTestUpgrade(f, false)
	o3.kube = o.kube
	if err := o3.Run(context.Background()); err != nil {
		t.Fatalf("third run: %v\n%s", err, out)
	}
	if want := []string{"aws plan", "network (plan)", "gateway (plan)"}; !slices.Equal(f.ran, want) {
		t.Fatalf("ran %q, want %q", f.ran, want)
	}
	if !strings.Contains(out.String(), "nothing to do") {
		t.Errorf("third run:\n%s", out)
	}
}

func TestUpgradeBlockersStopBeforeAnyChange(t *testing.T) {
	f := &fakePhases{classic: true}
	o, out, _ := newTestUpgrade(f, true)
	if err := o.Run(context.Background()); err == nil {
		t.Fatal("a Classic gateway without --recreate-gateway should block")
	}
	if !strings.Contains(out.String(), "--recreate-gateway") || !strings.Contains(out.String(), "Blocked: nothing will be changed") {
		t.Errorf("output:\n%s", out)
	}
	if slices.Contains(f.ran, "aws apply") {
		t.Fatalf("changed something: %q", f.ran)
	}
}

func TestUpgradeWithoutYesOrTerminalStopsAfterThePlan(t *testing.T) {
	f := &fakePhases{}
	o, out, errOut := newTestUpgrade(f, false)
	err := o.Run(context.Background())
	if !errors.Is(err, cli.ErrNotConfirmed) || !strings.Contains(errOut.String(), "upgrade --yes") {
		t.Fatalf("err %v\n%s", err, errOut)
	}
	if !strings.Contains(out.String(), "Upgrade plan:") || slices.Contains(f.ran, "aws apply") {
		t.Fatalf("ran %q\n%s", f.ran, out)
	}
}

func TestUpgradeNetworkAloneBlocksOnMissingNodeIPv6(t *testing.T) {
	f := &fakePhases{}
	o, out, _ := newTestUpgrade(f, true, PhaseNetwork, PhaseValidate)
	if err := o.Run(context.Background()); err == nil {
		t.Fatalf("without the aws phase, nodes without IPv6 block the network phase\n%s", out)
	}
	if !strings.Contains(out.String(), "network: 6 of 6 nodes have no IPv6 InternalIP") {
		t.Errorf("output:\n%s", out)
	}
}

// The plan applied is the plan confirmed; when AWS changed in between,
// nothing is applied and the run stops saying so.
func TestUpgradeAppliesTheConfirmedAWSPlanOrStopsOnDrift(t *testing.T) {
	f := &fakePhases{}
	o, _, _ := newTestUpgrade(f, true, "aws")
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.applied == nil || len(f.applied.Changes) != 2 || f.applied.Changes[0].Operation != "AssociateVpcCidrBlock" {
		t.Fatalf("applied %+v", f.applied)
	}

	f = &fakePhases{awsDrift: true}
	o, out, _ := newTestUpgrade(f, true, "aws")
	if err := o.Run(context.Background()); err == nil || !strings.Contains(out.String(), "changed since the plan was made") {
		t.Fatalf("drift: %v\n%s", err, out)
	}
}

func TestPlanDiff(t *testing.T) {
	a := &awsx.Plan{Cluster: awsx.Cluster{VPCID: "vpc-1"}, Changes: []awsx.Change{
		{Operation: "AssociateSubnetCidrBlock", Resource: "subnet-1", Parameters: map[string]string{"subnetId": "subnet-1", "ipv6CidrBlock": "2600::/64"}},
		{Operation: "CreateRoute", Resource: "rtb-1", Parameters: map[string]string{"routeTableId": "rtb-1"}},
	}}
	same := &awsx.Plan{Cluster: awsx.Cluster{VPCID: "vpc-1"}, Changes: []awsx.Change{a.Changes[1], a.Changes[0]}}
	if d := planDiff(a, same); d != "" {
		t.Fatalf("same changes in another order: %q", d)
	}
	other := &awsx.Plan{Cluster: awsx.Cluster{VPCID: "vpc-1"}, Changes: []awsx.Change{
		{Operation: "AssociateSubnetCidrBlock", Resource: "subnet-1", Parameters: map[string]string{"subnetId": "subnet-1", "ipv6CidrBlock": "2600:0:0:1::/64"}},
	}}
	d := planDiff(a, other)
	if !strings.Contains(d, "2 planned change(s) no longer needed or different") || !strings.Contains(d, "1 change(s) needed now") {
		t.Fatalf("diff %q", d)
	}
	if d := planDiff(a, &awsx.Plan{Cluster: awsx.Cluster{VPCID: "vpc-2"}}); !strings.Contains(d, "vpc-2") {
		t.Fatalf("another VPC: %q", d)
	}
}

func TestComparePlans(t *testing.T) {
	net := func(value string) *NetworkResult {
		return &NetworkResult{Patch: []network.PatchOp{{Op: "test", Path: "/spec/serviceNetwork", Value: []string{value}}}}
	}
	saved := UpgradePlan{Cluster: PlanCluster{ID: "c1"}, Phases: []PhasePlan{
		{Name: "network", Action: PlanChange, Network: net("172.30.0.0/16")},
		{Name: "gateway", Action: PlanChange, Gateway: &gateway.Result{}, Details: []string{"patch-service istio-system/gw"}},
	}}
	if d := comparePlans(saved, saved); len(d) != 0 {
		t.Fatalf("a plan differs from itself: %v", d)
	}
	now := UpgradePlan{Cluster: PlanCluster{ID: "c1"}, Phases: []PhasePlan{
		{Name: "network", Action: PlanChange, Network: net("172.31.0.0/16")},
		{Name: "gateway", Action: PlanNothing, Summary: "already dual-stack"},
	}}
	d := comparePlans(saved, now)
	if len(d) != 2 || !strings.Contains(d[0], "the Network config changed") || !strings.Contains(d[1], "was change, is now nothing-to-do") {
		t.Fatalf("diffs %q", d)
	}
	if d := comparePlans(saved, UpgradePlan{Cluster: PlanCluster{ID: "c2"}}); len(d) != 1 || !strings.Contains(d[0], "another cluster") {
		t.Fatalf("another cluster: %q", d)
	}
}
