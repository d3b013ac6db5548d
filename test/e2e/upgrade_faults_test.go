package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// The fault-injection run of the whole upgrade. One undisturbed reference
// run records every AWS action and every Kubernetes write of the flow;
// each injection point then gets a fresh conversion sandbox, fails that
// call once, and must converge: the upgrade (or, if it stopped, a re-run)
// reaches the reference's end state, and network --revert + aws rollback
// restore the start state. By default a representative subset runs (one
// point per layer); DUALSTACK_FAULTS=full runs every point (about 40
// points, ~15-30 s each: run it with -timeout 60m).

// faultRig is a conversion sandbox reached through the AWS and Kubernetes
// fault proxies.
type faultRig struct {
	s    *harness.ConversionSandbox
	aws  *harness.AWSProxy
	kube *harness.KubeFaultProxy
	kcfg string
	env  []string
}

func newFaultRig(t *testing.T) *faultRig {
	t.Helper()
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	kp, err := harness.StartKubeFaultProxy(t, s.API.Config, harness.KubeFaultProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kcfg, err := kp.Kubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ap := awsProxy(t)
	return &faultRig{s: s, aws: ap, kube: kp, kcfg: kcfg, env: ap.Env(awsTLS.Env())}
}

func (g *faultRig) upgrade(t *testing.T) (result, upgradeJSON) {
	t.Helper()
	r := plugin(t, g.kcfg, g.env, "upgrade", "--yes", "--recreate-gateway", "--dns-server", g.s.DNSAddr(), "--timeout", "60s", "-o", "json")
	var u upgradeJSON
	if r.Stdout != "" {
		u = parseUpgrade(t, r)
	}
	return r, u
}

// rollback runs the top-level rollback (every layer), undisturbed.
func (g *faultRig) rollback(t *testing.T) error {
	t.Helper()
	g.aws.Heal()
	g.kube.Heal()
	if r := plugin(t, g.kcfg, g.env, "rollback", "--yes", "--timeout", "60s"); r.Code != 0 {
		return fmt.Errorf("rollback:\n%s", r)
	}
	return nil
}

var awsIDs = regexp.MustCompile(`\b(vpc|subnet|rtb|sg|eni|i|igw|nat|eigw|pl|vpce)-[0-9a-z]+\b`)
var ipv6CIDR = regexp.MustCompile(`\b[0-9a-f]{1,4}:[0-9a-f:]*::/(\d+)`)

// endState is the describe-everything AWS snapshot plus the relevant
// cluster objects. normalize replaces IDs and IPv6 prefixes (different in
// every sandbox) by their kind, to compare sandboxes with each other.
func (g *faultRig) endState(t *testing.T, normalize bool) []string {
	t.Helper()
	ctx := context.Background()
	lines := awsSnapshot(t, g.s.World.AWS.VPC.ID)
	spec, status := getNetwork(t, g.s.API)
	lines = append(lines, "network spec "+strings.Join(spec, ","), "network status "+strings.Join(status, ","))
	svc, err := g.s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	if svc.Spec.IPFamilyPolicy != nil {
		policy = string(*svc.Spec.IPFamilyPolicy)
	}
	lines = append(lines, fmt.Sprintf("gateway %s families=%v lb-type=%s ip-address-type=%s", policy, svc.Spec.IPFamilies,
		svc.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"], svc.Annotations["service.beta.kubernetes.io/aws-load-balancer-ip-address-type"]))
	// The application's Services: their families, and how many cluster IPs
	// (the IPv6 one is new in every sandbox).
	apps, err := g.s.API.Kube.CoreV1().Services(harness.ApplicationNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps.Items {
		p := ""
		if a.Spec.IPFamilyPolicy != nil {
			p = string(*a.Spec.IPFamilyPolicy)
		}
		lines = append(lines, fmt.Sprintf("service %s/%s %s families=%v cluster-ips=%d", a.Namespace, a.Name, p, a.Spec.IPFamilies, len(a.Spec.ClusterIPs)))
	}
	// The cloud provider's config, byte for byte, and the nodes' families.
	cc, err := g.s.API.Kube.CoreV1().ConfigMaps(harness.CloudConfigNamespace).Get(ctx, harness.CloudConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lines = append(lines, fmt.Sprintf("cloud config %q", cc.Data[harness.CloudConfigKey]))
	// Istio's settings: istiod's env, the mesh config byte for byte, its
	// Service's families.
	istiod, err := g.s.API.Kube.AppsV1().Deployments(harness.IstioNamespace).Get(ctx, "istiod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range istiod.Spec.Template.Spec.Containers {
		lines = append(lines, fmt.Sprintf("istiod container %s env %v", c.Name, c.Env))
	}
	meshCM, err := g.s.API.Kube.CoreV1().ConfigMaps(harness.IstioNamespace).Get(ctx, "istio", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lines = append(lines, fmt.Sprintf("mesh config %q", meshCM.Data["mesh"]))
	istiodSvc, err := g.s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, "istiod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lines = append(lines, fmt.Sprintf("istiod service %v families=%v cluster-ips=%d", ptrString(istiodSvc.Spec.IPFamilyPolicy), istiodSvc.Spec.IPFamilies, len(istiodSvc.Spec.ClusterIPs)))
	nss, err := g.s.API.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss.Items {
		if ns.DeletionTimestamp == nil { // terminating: on its way out
			lines = append(lines, "namespace "+ns.Name)
		}
	}
	if normalize {
		for i, l := range lines {
			l = awsIDs.ReplaceAllString(l, "$1-*")
			l = ipv6CIDR.ReplaceAllString(l, "v6/$1")
			if strings.HasPrefix(l, "lb ") {
				f := strings.Fields(l)
				l = "lb * " + f[len(f)-1]
			}
			lines[i] = l
		}
	}
	sort.Strings(lines)
	return lines
}

// lbNamesOut replaces load balancer names by "*": rollback re-creates the
// original gateway Service, whose new UID names its new Classic ELB; its
// kind and address type, and everything else, must be as before (the
// default ::/0 egress AWS gives the new ELB's group while the VPC still has
// IPv6 is taken out by rollback once the block is gone).
func lbNamesOut(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "lb" {
			l = "lb * " + f[2]
		}
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// noNewIPv6Openings: whatever is open to ::/0 is open to 0.0.0.0/0 in the
// same group, direction, protocol and ports (ICMPv6 mirrors ICMP).
func noNewIPv6Openings(t *testing.T, snapshot []string) {
	t.Helper()
	open4 := map[string]bool{}
	for _, l := range snapshot {
		if strings.HasPrefix(l, "sg ") && strings.HasSuffix(l, " 0.0.0.0/0") {
			f := strings.Fields(l)
			open4[f[1]+" "+f[2]+" "+f[3]+" "+f[4]] = true
			if f[3] == "icmp" || f[3] == "1" {
				open4[f[1]+" "+f[2]+" icmpv6"] = true
			}
		}
	}
	for _, l := range snapshot {
		if !strings.HasPrefix(l, "sg ") || !strings.HasSuffix(l, " ::/0") {
			continue
		}
		f := strings.Fields(l)
		if !open4[f[1]+" "+f[2]+" "+f[3]+" "+f[4]] && !((f[3] == "icmpv6" || f[3] == "58") && open4[f[1]+" "+f[2]+" icmpv6"]) {
			t.Errorf("open to ::/0 but not to 0.0.0.0/0: %s", l)
		}
	}
}

type injection struct {
	layer  string // aws or kube
	target string // AWS action, or "verb resource"
	kind   string
	nth    int
}

func (i injection) String() string {
	if i.layer == "kube" {
		return fmt.Sprintf("kube %s (#%d) %s", i.target, i.nth, i.kind)
	}
	return fmt.Sprintf("aws %s %s", i.target, i.kind)
}

func (i injection) arm(g *faultRig) {
	switch i.layer {
	case "aws":
		switch i.kind {
		case "throttle": // retried by the SDK
			g.aws.Fail(i.target, 1, harness.AWSFault{Status: 503, Code: "RequestLimitExceeded", Message: "Request limit exceeded."})
		case "timeout":
			g.aws.Fail(i.target, 1, harness.AWSFault{Status: 500, Code: "RequestTimeout", Message: "injected timeout"})
		default: // error: a 4xx the SDK does not retry (EC2's eventual consistency): the command fails
			g.aws.Fail(i.target, 1, harness.AWSFault{Status: 400, Code: "IncorrectState", Message: "injected: the resource is in an incorrect state"})
		}
	case "kube":
		verb, res, _ := strings.Cut(i.target, " ")
		g.kube.Fail(verb, res, i.nth, harness.KubeFaultKind(i.kind))
	}
}

func TestUpgradeFaultsConverge(t *testing.T) {
	full := os.Getenv("DUALSTACK_FAULTS") == "full"
	start := time.Now()

	// The undisturbed reference, in a subtest of its own: its sandbox is
	// gone (ports freed) before the disturbed ones start.
	var want []string
	var awsActions, kubeWrites []string
	var counts map[string]int
	if !t.Run("reference", func(t *testing.T) {
		ref := newFaultRig(t)
		refStart := ref.endState(t, false)
		r, u := ref.upgrade(t)
		if r.Code != 0 || u.Outcome != "converted" {
			t.Fatalf("reference upgrade: %q\n%s", u.Outcome, r)
		}
		want = ref.endState(t, true)
		noNewIPv6Openings(t, ref.endState(t, false))
		seen := map[string]bool{}
		for _, op := range ref.aws.Ops() {
			if !seen[op.Action] && !op.DryRun {
				seen[op.Action] = true
				awsActions = append(awsActions, op.Action)
			}
		}
		kubeWrites, counts = ref.kube.Writes()
		t.Logf("reference upgrade: %s; AWS actions %v; Kubernetes writes %v", time.Since(start).Round(time.Millisecond), awsActions, counts)
		if err := ref.rollback(t); err != nil {
			t.Fatal(err)
		}
		if d := diffLines(lbNamesOut(refStart), lbNamesOut(ref.endState(t, false))); d != "" {
			t.Errorf("rollback after the reference upgrade did not restore the start:\n%s", d)
		}
	}) {
		t.FailNow()
	}

	// The injection points: every AWS action and every Kubernetes write of
	// the reference, each fault kind in turn.
	var points []injection
	kinds := []string{"error", "throttle", "timeout"}
	for i, a := range awsActions {
		points = append(points, injection{layer: "aws", target: a, kind: kinds[i%3]})
	}
	for i, w := range kubeWrites {
		points = append(points, injection{layer: "kube", target: w, kind: kinds[i%3], nth: 1})
		if counts[w] > 1 { // the last one too: later in the flow
			points = append(points, injection{layer: "kube", target: w, kind: kinds[(i+1)%3], nth: counts[w]})
		}
	}
	if !full {
		points = representative(points)
	}

	converged, known := 0, 0
	var failed []string
	for _, p := range points {
		passed := false
		ok := t.Run(strings.NewReplacer(" ", "_", "/", "_").Replace(p.String()), func(t *testing.T) {
			g := newFaultRig(t)
			before := g.endState(t, false)
			p.arm(g)
			r, u := g.upgrade(t)
			fired := len(g.kube.Fired()) > 0 || p.layer == "aws"
			g.aws.Heal()
			g.kube.Heal()
			runs := 1
			if r.Code != 0 || u.Outcome != "converted" {
				t.Logf("%s: first run %q (exit %d): %s; re-running", p, u.Outcome, r.Code, u.Message)
				r, u = g.upgrade(t)
				runs++
				if r.Code != 0 || u.Outcome != "converted" && u.Outcome != "nothing-to-do" {
					fail(t, p, "the re-run did not converge: %q\n%s", u.Outcome, r)
				}
			}
			got := g.endState(t, true)
			if d := diffLines(want, got); d != "" {
				fail(t, p, "end state differs from the undisturbed run:\n%s", d)
			}
			noNewIPv6Openings(t, g.endState(t, false))
			if err := g.rollback(t); err != nil {
				fail(t, p, "%v", err)
			}
			if d := diffLines(lbNamesOut(before), lbNamesOut(g.endState(t, false))); d != "" {
				fail(t, p, "rollback did not restore the start:\n%s", d)
			}
			t.Logf("%s: converged after %d run(s) (fault fired: %t)", p, runs, fired)
			passed = true
		})
		switch {
		case knownBugs[p.String()] != "" && ok && !passed:
			known++ // skipped with the reason
		case knownBugs[p.String()] != "" && passed:
			failed = append(failed, p.String()+" converges now: drop it from knownBugs")
		case ok:
			converged++
		default:
			failed = append(failed, p.String())
		}
	}
	t.Logf("fault injection: %d points, %d converged, %d known product bugs (%s; %s in all)", len(points), converged, known,
		map[bool]string{true: "full matrix", false: "representative subset; DUALSTACK_FAULTS=full for all"}[full], time.Since(start).Round(time.Second))
	if len(failed) > 0 {
		t.Errorf("did not converge: %s", strings.Join(failed, "; "))
	}
}

// knownBugs are injection points that do not converge because of a product
// bug in a file this test's owner may not change; the subtest reports it as
// skipped with the reason. Remove an entry once the bug is fixed.
var knownBugs = map[string]string{}

func fail(t *testing.T, p injection, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf("%s: ", p) + fmt.Sprintf(format, args...)
	if why := knownBugs[p.String()]; why != "" {
		t.Skipf("does not converge, known product bug: %s\n%s", why, msg)
	}
	t.Fatal(msg)
}

// representative keeps the points that fail a command half-way, one per
// layer: an AWS mutation rejected (not retried by the SDK), the network
// patch landing but answered with a timeout, the gateway re-creation's
// delete failing. (Throttling and 5xx are retried by the SDK / client-go
// and converge in the first run: DUALSTACK_FAULTS=full.)
func representative(points []injection) []injection {
	var out []injection
	awsDone := false
	for _, p := range points {
		switch {
		case p.layer == "aws" && !strings.HasPrefix(p.target, "Describe") && !awsDone:
			awsDone = true
			p.kind = "error"
			out = append(out, p)
		case p.layer == "kube" && p.nth == 1 && (p.target == "patch networks.config.openshift.io" || p.target == "delete services"):
			if p.target == "patch networks.config.openshift.io" {
				p.kind = "timeout"
			} else {
				p.kind = "error"
			}
			out = append(out, p)
		}
	}
	return out
}

func ptrString[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}
