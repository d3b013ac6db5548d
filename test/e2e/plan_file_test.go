package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// Issue 11: a saved plan is applied exactly, after a check that the
// cluster and its AWS network still match it; refused otherwise.
func TestUpgradeAppliesASavedPlan(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	ctx := context.Background()
	dir := t.TempDir()
	start := awsSnapshot(t, s.World.AWS.VPC.ID)

	r := plugin(t, kcfg, env, "upgrade", "--dry-run=client", "--recreate-gateway", "--dns-server", s.DNSAddr(), "-o", "json")
	if r.Code != 0 {
		t.Fatalf("plan:\n%s", r)
	}
	planFile := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(planFile, []byte(r.Stdout), 0o600); err != nil {
		t.Fatal(err)
	}

	// A file that is not a plan: bad input.
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"outcome": "dry-run", "plan": {"phases": "nope"}}`), 0o600)
	if r := plugin(t, kcfg, env, "upgrade", "--plan", bad, "--yes"); r.Code != 2 || !strings.Contains(r.Stderr, "is not a plan saved by") {
		t.Fatalf("malformed plan:\n%s", r)
	}

	// A plan for another cluster.
	var other map[string]any
	_ = json.Unmarshal([]byte(r.Stdout), &other)
	other["plan"].(map[string]any)["cluster"].(map[string]any)["id"] = "0b1c0d2e-0000-4000-8000-000000000000"
	b, _ := json.Marshal(other)
	otherFile := filepath.Join(dir, "other.json")
	_ = os.WriteFile(otherFile, b, 0o600)
	if r := plugin(t, kcfg, env, "upgrade", "--plan", otherFile, "--yes"); r.Code != 1 || !strings.Contains(r.Stdout, "for another cluster") {
		t.Fatalf("plan of another cluster:\n%s", r)
	}

	// The Network config changes after planning (someone edits its
	// service network, which the network operator reports as Degraded):
	// refused, naming the network phase, nothing changed; once it is back,
	// the plan holds again.
	netBefore, err := s.API.Dynamic.Resource(networksGVR).Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	origSN, _, _ := unstructured.NestedStringSlice(netBefore.Object, "spec", "serviceNetwork")
	setSN := func(sn []string) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"spec": map[string]any{"serviceNetwork": sn}})
		if _, err := s.API.Dynamic.Resource(networksGVR).Patch(ctx, "cluster", types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setSN([]string{"172.31.0.0/16"})
	r = plugin(t, kcfg, env, "upgrade", "--plan", planFile, "--yes")
	if r.Code != 1 || !strings.Contains(r.Stdout, "no longer matches the cluster") || !strings.Contains(r.Stdout, "network: was after-underlay") {
		t.Fatalf("plan after the Network changed:\n%s", r)
	}
	if d := diffLines(start, awsSnapshot(t, s.World.AWS.VPC.ID)); d != "" {
		t.Fatalf("a refused plan changed AWS:\n%s", d)
	}
	setSN(origSN)

	// The VPC changes after planning (someone opens a port): refused,
	// nothing changed; once it is as planned again, the plan applies.
	cfg, err := awsTLS.AWSConfig(ctx, s.World.AWS.Region)
	if err != nil {
		t.Fatal(err)
	}
	e := ec2.NewFromConfig(cfg)
	sg := s.World.AWS.SecurityGroups[0].ID
	perm := []ec2types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(8443), ToPort: aws.Int32(8443), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}
	if _, err := e.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(sg), IpPermissions: perm}); err != nil {
		t.Fatal(err)
	}
	withRule := awsSnapshot(t, s.World.AWS.VPC.ID)
	r = plugin(t, kcfg, env, "upgrade", "--plan", planFile, "--yes")
	if r.Code != 1 || !strings.Contains(r.Stdout, "no longer matches the cluster") || !strings.Contains(r.Stdout, "8443") {
		t.Fatalf("plan after the VPC changed:\n%s", r)
	}
	if d := diffLines(withRule, awsSnapshot(t, s.World.AWS.VPC.ID)); d != "" {
		t.Fatalf("a refused plan changed AWS:\n%s", d)
	}
	if _, err := e.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(sg), IpPermissions: perm}); err != nil {
		t.Fatal(err)
	}
	if d := diffLines(start, awsSnapshot(t, s.World.AWS.VPC.ID)); d != "" {
		t.Fatalf("the VPC is not as planned again:\n%s", d)
	}

	r = plugin(t, kcfg, env, "upgrade", "--plan", planFile, "--yes", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	u := parseUpgrade(t, r)
	if r.Code != 0 || u.Outcome != "converted" || !strings.Contains(r.Stderr, "still matches the cluster") {
		t.Fatalf("upgrade --plan: %q\n%s", u.Outcome, r)
	}
	expectPhases(t, r, u, map[string]string{"aws": "done", "network": "done", "gateway": "done", "validate": "done"})
	if n := awsPlanChanges(t, kcfg); n != 0 {
		t.Errorf("aws plan after the saved plan was applied: %d changes", n)
	}
}

// Issue 11: upgrade's aws phase takes every option of aws apply, because no
// command line is built to forget one in: the instance type change (with
// the control plane), and the journal's namespace.
func TestUpgradeForwardsThePhaseOptions(t *testing.T) {
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{IPI: moto.IPIOptions{ControlPlane: 1, Workers: 2,
		ControlPlaneInstanceType: "m1.large", WorkerInstanceType: "m1.large"}})
	ctx := context.Background()
	if err := harness.EnsureNamespace(ctx, api.Kube, "dualstack-ops", nil); err != nil {
		t.Fatal(err)
	}
	r := plugin(t, api.Kubeconfig, env, "upgrade", "--phases", "aws", "--yes", "--allow-instance-type-change=m6i.large",
		"--allow-control-plane-restart", "--parallel", "2", "--journal-namespace", "dualstack-ops", "--timeout", "2m", "-o", "json")
	u := parseUpgrade(t, r)
	if r.Code != 0 || u.Outcome != "converted" {
		t.Fatalf("upgrade: %q\n%s", u.Outcome, r)
	}
	e := safetyEC2(t)
	for _, in := range world.AWS.Instances {
		if typ, state := instanceState(t, e, in.ID); typ != "m6i.large" || state != "running" {
			t.Errorf("%s (%s) is a %s, %s; want m6i.large, running", in.Name, in.Role, typ, state)
		}
	}
	j := journalEntries(t, api.Kube, "dualstack-ops")
	changed := 0
	for _, e := range j {
		if e.Operation == "ModifyInstanceAttribute" && e.State == "done" {
			changed++
		}
	}
	if changed != len(world.AWS.Instances) {
		t.Errorf("the journal in dualstack-ops records %d instance type changes, want %d", changed, len(world.AWS.Instances))
	}
	if n := len(journalEntries(t, api.Kube, "kube-system")); n != 0 {
		t.Errorf("%d journal entries in kube-system: --journal-namespace was not followed", n)
	}
	if _, err := api.Kube.CoordinationV1().Leases("dualstack-ops").Get(ctx, "dualstack-lock", metav1.GetOptions{}); err != nil {
		t.Errorf("the lock was not taken next to the journal: %v", err)
	}
}
