package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

type journalEntryJSON struct {
	ID        string            `json:"id"`
	Layer     string            `json:"layer"`
	Operation string            `json:"operation"`
	State     string            `json:"state"`
	Undo      map[string]string `json:"undo"`
}

// journalEntries reads the journal ConfigMap(s) of a namespace as stored:
// one JSON entry per line.
func journalEntries(t *testing.T, kc kubernetes.Interface, ns string) map[string]journalEntryJSON {
	t.Helper()
	out := map[string]journalEntryJSON{}
	cms, err := kc.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubectl-dualstack"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		for _, line := range strings.Split(cm.Data["entries.json"], "\n") {
			line = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), ","))
			if !strings.HasPrefix(line, "{") {
				continue
			}
			var e journalEntryJSON
			if json.Unmarshal([]byte(line), &e) == nil && e.ID != "" {
				out[e.ID] = e
			}
		}
	}
	return out
}

const recreateEntryID = "gateway/recreate-service/" + harness.IstioNamespace + "/" + harness.IngressGatewayName

// gatewayShape is what rollback must restore of the gateway Service.
func gatewayShape(t *testing.T, kc kubernetes.Interface) string {
	t.Helper()
	svc, err := kc.CoreV1().Services(harness.IstioNamespace).Get(context.Background(), harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s:%d->%s/node%d", p.Name, p.Port, p.TargetPort.String(), p.NodePort))
	}
	return fmt.Sprintf("policy=%s families=%v annotations=%v labels=%v selector=%v ports=%v etp=%s",
		ptr.Deref(svc.Spec.IPFamilyPolicy, ""), svc.Spec.IPFamilies, svc.Annotations, svc.Labels, svc.Spec.Selector, ports, svc.Spec.ExternalTrafficPolicy)
}

// Issue 12 item 1: the load-balancer controller holds the deleted Service
// with its finalizer past --timeout. Nothing is lost: the journal holds
// both manifests, a re-run finishes the re-creation, rollback restores the
// original.
func TestGatewayRecreateNeverLosesTheService(t *testing.T) {
	g := newGatewayWorld(t)
	g.underlay(t)
	ctx := context.Background()
	original := gatewayShape(t, g.api.Kube)
	before, err := g.api.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(before.Finalizers, ","), "service.kubernetes.io/load-balancer-cleanup") {
		t.Fatalf("the controller puts its finalizer on a LoadBalancer Service: %v", before.Finalizers)
	}

	g.lbc.Hold() // the controller is slow: the old ELB and the finalizer stay
	r := plugin(t, g.api.Kubeconfig, g.env, "gateway", "--recreate", "--yes", "--dns-server", g.dns.Addr, "--timeout", "10s", "-o", "json")
	if r.Code != 1 || !strings.Contains(r.Stderr, "timed out") || !strings.Contains(r.Stderr, "service.kubernetes.io/load-balancer-cleanup") ||
		!strings.Contains(r.Stderr, "kubectl dualstack gateway --recreate") || !strings.Contains(r.Stderr, "kubectl dualstack rollback") {
		t.Fatalf("a re-creation held by the finalizer:\n%s", r)
	}
	if out := parseGateway(t, r); !out.Changed {
		t.Errorf("the Service was deleted: changed must be true: %+v", out)
	}
	if !strings.Contains(r.Stderr, "kind: Service") {
		t.Errorf("the Service to create is not printed:\n%s", r.Stderr)
	}
	e, ok := journalEntries(t, g.api.Kube, "kube-system")[recreateEntryID]
	if !ok || e.State != "pending" || !strings.Contains(e.Undo["original"], "name: "+harness.IngressGatewayName) ||
		strings.Contains(e.Undo["original"], "resourceVersion") || !strings.Contains(e.Undo["replacement"], "aws-load-balancer-type: nlb") {
		t.Fatalf("journal entry: %+v (found %t)", e, ok)
	}

	// Once the controller has deleted the old ELB, a re-run finishes the job.
	g.lbc.Resume()
	r = plugin(t, g.api.Kubeconfig, g.env, "gateway", "--recreate", "--yes", "--dns-server", g.dns.Addr, "--timeout", "30s", "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stderr, "half done") {
		t.Fatalf("re-run:\n%s", r)
	}
	out := parseGateway(t, r)
	if out.LoadBalancer.Type != "network" || out.LoadBalancer.IPAddressType != "dualstack" || len(out.IPv6) == 0 {
		t.Fatalf("re-run result: %+v", out)
	}
	after, err := g.api.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil || after.UID == before.UID || len(after.Spec.ClusterIPs) != 2 || after.Spec.Ports[0].NodePort != before.Spec.Ports[0].NodePort {
		t.Fatalf("re-created service: %v %+v", err, after)
	}
	if e := journalEntries(t, g.api.Kube, "kube-system")[recreateEntryID]; e.State != "done" {
		t.Fatalf("journal entry after the re-run: %+v", e)
	}

	// rollback puts the original back, served by a load balancer again.
	r = plugin(t, g.api.Kubeconfig, g.env, "rollback", "--yes", "--timeout", "30s")
	if r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	if got := gatewayShape(t, g.api.Kube); got != original {
		t.Fatalf("rollback did not restore the gateway Service:\nbefore %s\nafter  %s", original, got)
	}
	restored, _ := g.api.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if len(restored.Status.LoadBalancer.Ingress) == 0 || restored.Status.LoadBalancer.Ingress[0].Hostname == out.Hostname {
		t.Fatalf("the original Service has no Classic ELB of its own: %+v", restored.Status)
	}
}

// Issue 12 item 1, Ctrl-C: after the delete, an interrupted re-creation
// still creates the replacement (the controller is quick here), says
// "interrupted", and leaves nothing half done.
func TestGatewayRecreateInterruptedStillCreates(t *testing.T) {
	g := newGatewayWorld(t)
	g.underlay(t)
	ctx := context.Background()
	before, err := g.api.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g.lbc.Hold()
	cmd := exec.Command(filepath.Join(binDir, "kubectl-dualstack"), "gateway", "--recreate", "--yes", "--dns-server", g.dns.Addr, "--timeout", "2m")
	cmd.Env = append(os.Environ(), append(g.env, "KUBECONFIG="+g.api.Kubeconfig, "HOME="+t.TempDir(), "NO_COLOR=1")...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = harness.WaitFor(ctx, 60*time.Second, "the gateway Service to be deleting", func(ctx context.Context) (bool, error) {
		svc, err := g.api.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
		return err == nil && svc.DeletionTimestamp != nil, nil
	})
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // Ctrl-C lands while the old Service is still held
	g.lbc.Resume()
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errorsAs(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "interrupted") || strings.Contains(stderr.String(), "timed out") {
		t.Fatalf("after Ctrl-C: %v\n%s", err, stderr.String())
	}
	after, err := g.api.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil || after.UID == before.UID || after.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"] != "nlb" {
		t.Fatalf("the replacement must exist after Ctrl-C: %v %+v\n%s", err, after, stderr.String())
	}
	if e := journalEntries(t, g.api.Kube, "kube-system")[recreateEntryID]; e.State != "done" {
		t.Fatalf("journal entry: %+v", e)
	}
}

// Issue 12 item 2: the gateway Service patch is journalled with its
// inverse; rollback restores the Service and the NLB together.
func TestRollbackRestoresThePatchedGateway(t *testing.T) {
	g := newGatewayWorld(t)
	g.underlay(t)
	host := g.nlbGateway(t)
	g.waitA(t, host)
	ctx := context.Background()
	shape := func() string {
		svc, err := g.api.Kube.CoreV1().Services("edge").Get(ctx, "edge-gateway", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("policy=%s families=%v clusterIPs=%d annotations=%v", ptr.Deref(svc.Spec.IPFamilyPolicy, ""), svc.Spec.IPFamilies, len(svc.Spec.ClusterIPs), svc.Annotations)
	}
	original := shape()
	r := plugin(t, g.api.Kubeconfig, g.env, "gateway", "--ingress-service", "edge/edge-gateway", "--yes", "--dns-server", g.dns.Addr, "--timeout", "20s")
	if r.Code != 0 {
		t.Fatalf("gateway:\n%s", r)
	}
	if shape() == original {
		t.Fatal("gateway changed nothing")
	}
	r = plugin(t, g.api.Kubeconfig, g.env, "rollback", "--dry-run=client")
	if r.Code != 0 || !strings.Contains(r.Stdout, "patch-service") || !strings.Contains(r.Stdout, "SetIpAddressType") {
		t.Fatalf("rollback plan:\n%s", r)
	}
	r = plugin(t, g.api.Kubeconfig, g.env, "rollback", "--yes", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	if got := shape(); got != original {
		t.Fatalf("the Service was not restored:\nbefore %s\nafter  %s", original, got)
	}
	if a, aaaa := g.lookup(t, host); a != 1 || aaaa != 0 {
		t.Fatalf("after rollback the NLB answers %d A, %d AAAA; want ipv4 only", a, aaaa)
	}
	// Nothing left: a second rollback has nothing to do.
	if r := plugin(t, g.api.Kubeconfig, g.env, "rollback", "--yes"); r.Code != 0 || !strings.Contains(r.Stdout, "nothing to roll back") {
		t.Fatalf("second rollback:\n%s", r)
	}
}

// Issue 12 item 4: one mutating run at a time per cluster.
func TestMutatingRunsAreSerialised(t *testing.T) {
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	ctx := context.Background()
	start := awsSnapshot(t, world.AWS.VPC.ID)

	// A run elsewhere holds the lock.
	now := metav1.NewMicroTime(time.Now())
	_, err := api.Kube.CoordinationV1().Leases("kube-system").Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "dualstack-lock", Namespace: "kube-system"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("upgrade: alice@bastion pid 4242 [0a0b0c]"), LeaseDurationSeconds: ptr.To(int32(60)),
			AcquireTime: &now, RenewTime: &now},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes")
	if r.Code != 1 || !strings.Contains(r.Stderr, "another dualstack change is running (upgrade: alice@bastion pid 4242, since") {
		t.Fatalf("apply while another run holds the lock:\n%s", r)
	}
	if d := diffLines(start, awsSnapshot(t, world.AWS.VPC.ID)); d != "" {
		t.Fatalf("a refused apply changed AWS:\n%s", d)
	}
	// That run was killed: once its lease expires, the next run takes over.
	stale := metav1.NewMicroTime(time.Now().Add(-2 * time.Minute))
	l, err := api.Kube.CoordinationV1().Leases("kube-system").Get(ctx, "dualstack-lock", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Spec.RenewTime = &stale
	if _, err := api.Kube.CoordinationV1().Leases("kube-system").Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Two applies at once: one does the work, the other is refused or
	// finds nothing to do; never a second gateway or address.
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes")
		}()
	}
	wg.Wait()
	ok := 0
	for _, r := range results {
		switch {
		case r.Code == 0:
			ok++
		case r.Code == 1 && strings.Contains(r.Stderr, "another dualstack change is running (aws apply:"):
		default:
			t.Fatalf("concurrent apply:\n%s", r)
		}
	}
	if ok == 0 {
		t.Fatalf("neither apply ran:\n%s\n%s", results[0], results[1])
	}
	cfg, err := awsTLS.AWSConfig(ctx, world.AWS.Region)
	if err != nil {
		t.Fatal(err)
	}
	e := ec2.NewFromConfig(cfg)
	gws, err := e.DescribeEgressOnlyInternetGateways(ctx, &ec2.DescribeEgressOnlyInternetGatewaysInput{})
	if err != nil || len(gws.EgressOnlyInternetGateways) != 1 {
		t.Fatalf("egress-only gateways: %d %v", len(gws.EgressOnlyInternetGateways), err)
	}
	enis, err := e.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range enis.NetworkInterfaces {
		if len(n.Ipv6Addresses) > 1 {
			t.Errorf("ENI %s has %d IPv6 addresses", *n.NetworkInterfaceId, len(n.Ipv6Addresses))
		}
	}
	if l, _ := api.Kube.CoordinationV1().Leases("kube-system").Get(ctx, "dualstack-lock", metav1.GetOptions{}); l.Spec.HolderIdentity != nil {
		t.Errorf("the lock is still held after both runs: %s", *l.Spec.HolderIdentity)
	}
	if r := plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes"); r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	if d := diffLines(start, awsSnapshot(t, world.AWS.VPC.ID)); d != "" {
		t.Fatalf("rollback did not restore the start:\n%s", d)
	}
}

// Issue 12 item 9: the journal is found where it is, a namespace that does
// not exist is bad input, and several journals make the user choose.
func TestJournalNamespaceIsFoundAndChecked(t *testing.T) {
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	ctx := context.Background()
	start := awsSnapshot(t, world.AWS.VPC.ID)

	for _, args := range [][]string{
		{"aws", "apply", "--yes", "--journal-namespace", "nope"},
		{"network", "--yes", "--journal-namespace", "nope"},
		{"rollback", "--yes", "--journal-namespace", "nope"},
	} {
		r := plugin(t, api.Kubeconfig, env, args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "--journal-namespace nope: no such namespace") || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 0 {
			t.Fatalf("%v:\n%s", args, r)
		}
	}
	if d := diffLines(start, awsSnapshot(t, world.AWS.VPC.ID)); d != "" {
		t.Fatalf("bad input changed AWS:\n%s", d)
	}

	if err := harness.EnsureNamespace(ctx, api.Kube, "dualstack-ops", nil); err != nil {
		t.Fatal(err)
	}
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes", "--journal-namespace", "dualstack-ops"); r.Code != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	if n := len(journalEntries(t, api.Kube, "dualstack-ops")); n == 0 {
		t.Fatal("no journal in dualstack-ops")
	}
	// Without the flag, rollback finds the journal where apply kept it.
	r := plugin(t, api.Kubeconfig, env, "aws", "rollback", "--yes")
	if r.Code != 0 || strings.Contains(r.Stdout, "Nothing to roll back") {
		t.Fatalf("rollback without --journal-namespace:\n%s", r)
	}
	if d := diffLines(start, awsSnapshot(t, world.AWS.VPC.ID)); d != "" {
		t.Fatalf("rollback did not restore the start:\n%s", d)
	}

	// A second journal elsewhere: the user must choose.
	if _, err := api.Kube.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "dualstack-journal", Namespace: "kube-system", Labels: map[string]string{"app.kubernetes.io/managed-by": "kubectl-dualstack"}},
		Data:       map[string]string{"entries.json": `{"entries": []}`},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r = plugin(t, api.Kubeconfig, env, "rollback", "--yes")
	if r.Code != 2 || !strings.Contains(r.Stderr, "dualstack-ops, kube-system") || !strings.Contains(r.Stderr, "--journal-namespace") {
		t.Fatalf("two journals:\n%s", r)
	}
}
