package e2e

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// TestGatewayMigrateWithoutDowntime: a name in the cluster's private zone
// leads (a Route 53 alias) to the Classic ELB gateway; the prober follows
// that name through the sandbox DNS, which answers Route 53's records.
// `gateway --migrate --retire-old` puts a dual-stack NLB Service next to
// the Classic one, moves the name (and its new AAAA twin) to it, and
// retires the old Service: no IPv4 request fails, and IPv6 answers once
// the name moved.
func TestGatewayMigrateWithoutDowntime(t *testing.T) {
	ctx := context.Background()
	s, oldHost, shop := migrationSandbox(t)
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	before := recordLines(t, s.World.AWS)
	time.Sleep(time.Second) // the sandbox DNS reads Route 53 every 200ms
	url := fmt.Sprintf("http://%s:%d/", shop, s.Ingress.Port)
	reportDir := t.TempDir()
	watch := startPlugin(t, kcfg, env, "probe", "watch", url, "--dns-server", s.DNSAddr(), "--interval", "50ms", "-o", "json", "--report-dir", reportDir)
	watch.waitFor(t, "Probing 1 target(s)", 60*time.Second)
	time.Sleep(2 * time.Second) // the name on the Classic ELB, for a while

	start := time.Now()
	r := plugin(t, kcfg, env, "gateway", "--migrate", "--retire-old", "--retire-after", "2s", "--yes", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	took := time.Since(start)
	if r.Code != 0 {
		t.Fatalf("gateway --migrate:\n%s", r)
	}
	t.Logf("gateway --migrate:\n%s", r)
	out := parseGateway(t, r)
	time.Sleep(2 * time.Second) // the name on the NLB, for a while
	wr := watch.interrupt(t)
	w := parseWatch(t, wr)
	v4, v6 := w.lane(t, url, "IPv4"), w.lane(t, url, "IPv6")
	t.Logf("gateway --migrate took %s (new NLB %s); the prober saw IPv4: %d/%d failed (last error %q); IPv6: %d/%d failed (last error %q), first success %s after the migration began",
		took.Round(time.Millisecond), out.Hostname, v4.Failures, v4.Requests, v4.LastError, v6.Failures, v6.Requests, v6.LastError, durationSince(v6.FirstSuccess, start))
	if v4.Requests == 0 || v4.Failures != 0 {
		t.Errorf("IPv4 through %s: %d of %d requests failed during the migration (%q)", shop, v4.Failures, v4.Requests, v4.LastError)
	}
	if v6.FirstSuccess == nil {
		t.Errorf("IPv6 never answered through %s after the names moved", shop)
	}
	// IPv6 from the moment the names moved: every IPv6 request that began
	// once the sandbox DNS could have read the moved records (it reads
	// Route 53 every 200ms; allowed: 1s) succeeded.
	if out.NamesMovedAt == nil || len(out.Moves) != 2 {
		t.Fatalf("gateway -o json should carry the 2 moved records and when: %+v", out)
	}
	const propagation = time.Second
	var after, failedAfter int
	var firstOK time.Time
	for _, row := range readSamples(t, reportDir) {
		if row.family != "IPv6" || row.at.Before(*out.NamesMovedAt) {
			continue
		}
		if row.ok && firstOK.IsZero() {
			firstOK = row.at
		}
		if row.at.After(out.NamesMovedAt.Add(propagation)) {
			after++
			if !row.ok {
				failedAfter++
				t.Errorf("IPv6 request at +%s after the names moved failed: %s", row.at.Sub(*out.NamesMovedAt).Round(time.Millisecond), row.err)
			}
		}
	}
	t.Logf("IPv6 after the names moved: first success %s after; %d requests from +%s on, %d failed",
		firstOK.Sub(*out.NamesMovedAt).Round(time.Millisecond), after, propagation, failedAfter)
	if after == 0 || firstOK.IsZero() {
		t.Errorf("no IPv6 request after the names moved (%d) or none succeeded", after)
	}
	if out.Hostname == "" || out.Hostname == oldHost {
		t.Errorf("new hostname %q (old %q)", out.Hostname, oldHost)
	}

	// The name and its new AAAA twin lead to the NLB; the old Service is gone.
	lines := strings.Join(recordLines(t, s.World.AWS), "\n")
	for _, typ := range []string{"A", "AAAA"} {
		if !strings.Contains(lines, fmt.Sprintf("%s. %s alias %s", shop, typ, out.Hostname)) {
			t.Errorf("no %s alias %s -> %s in:\n%s", typ, shop, out.Hostname, lines)
		}
	}
	if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the old gateway Service was not retired: %v", err)
	}
	if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName+"-dualstack", metav1.GetOptions{}); err != nil {
		t.Errorf("the new gateway Service: %v", err)
	}
	// Once the old Service is retired, --revert creates it again (a new
	// Classic ELB) and moves the records back to that one, then deletes
	// the new Service.
	rv := plugin(t, kcfg, env, "gateway", "--revert", "--yes", "--timeout", "90s")
	if rv.Code != 0 {
		t.Fatalf("--revert after --retire-old:\n%s", rv)
	}
	t.Logf("gateway --revert after --retire-old:\n%s", rv)
	assertBackOnARecreatedGateway(t, s, before, oldHost, out.Hostname)
}

// assertBackOnARecreatedGateway: after a migration that retired the old
// Service was taken back, the old Service serves again behind a new
// Classic ELB, every record that led to the old ELB before the migration
// (before: the records then) leads to the new one, the AAAA twins are
// gone, the new Service is gone.
func assertBackOnARecreatedGateway(t *testing.T, s *harness.ConversionSandbox, before []string, oldHost, nlbHost string) {
	t.Helper()
	ctx := context.Background()
	gw, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil || len(gw.Status.LoadBalancer.Ingress) == 0 {
		t.Fatalf("the old gateway Service is not back with a load balancer: %v", err)
	}
	recreated := gw.Status.LoadBalancer.Ingress[0].Hostname
	if recreated == oldHost || recreated == "" {
		t.Errorf("the re-created gateway's hostname %q (the retired one was %q)", recreated, oldHost)
	}
	if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName+"-dualstack", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the new Service after taking back the migration: %v", err)
	}
	after := recordLines(t, s.World.AWS)
	joined := strings.Join(after, "\n")
	if strings.Contains(joined, nlbHost) || strings.Contains(joined, oldHost) {
		t.Errorf("records still lead to the NLB %s or the deleted ELB %s:\n%s", nlbHost, oldHost, joined)
	}
	// Every record as before the migration, the retired ELB's name replaced
	// by the re-created one's; the AAAA twins gone.
	var want []string
	back := 0
	for _, l := range before {
		if strings.Contains(l, oldHost) {
			back++
		}
		want = append(want, strings.ReplaceAll(l, oldHost, recreated))
	}
	if added, removed := lineChanges(want, after); back == 0 || len(added)+len(removed) > 0 {
		t.Errorf("records after taking back the migration (%d led to the old ELB): added %q, removed %q", back, added, removed)
	}
	t.Logf("back on the re-created Classic ELB %s: %d record(s) lead to it", recreated, back)
}

// migrationSandbox: the conversion sandbox with the installer's zones,
// converted up to the gateway (the proxies serve IPv6 once the mesh is
// dual-stack); shop.<cluster domain> in the private zone aliases the
// Classic ELB gateway, and the ingress routes it.
func migrationSandbox(t *testing.T) (s *harness.ConversionSandbox, oldHost, shop string) {
	return migrationWorld(t, true)
}

// migrationWorld: as migrationSandbox, converted up to the gateway only
// when convert.
func migrationWorld(t *testing.T, convert bool) (s *harness.ConversionSandbox, oldHost, shop string) {
	t.Helper()
	const provision = 3 * time.Second
	ctx := context.Background()
	s = conversionSandbox(t, harness.ConversionSandboxOptions{LBProvisionDelay: provision,
		IPI: moto.IPIOptions{HostedZones: &moto.HostedZoneOptions{}}})
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	// Everything before the gateway: the proxies serve IPv6 once the mesh is dual-stack.
	if convert {
		if r := plugin(t, kcfg, env, "upgrade", "--yes", "--phases", "aws,nodes,network,mesh,services,workloads", "--timeout", "90s"); r.Code != 0 {
			t.Fatalf("upgrade up to the gateway:\n%s", r)
		}
	}
	gw, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil || len(gw.Status.LoadBalancer.Ingress) == 0 {
		t.Fatalf("gateway: %v %+v", err, gw)
	}
	oldHost = gw.Status.LoadBalancer.Ingress[0].Hostname

	// shop.<cluster domain>: an alias to the gateway's ELB, routed by the ingress.
	zone := s.World.AWS.PrivateZone
	shop = "shop." + strings.TrimSuffix(zone.Name, ".")
	r53 := route53.NewFromConfig(s.AWSConfig)
	if _, err := r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone.ID),
		ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String(shop + "."), Type: r53types.RRTypeA,
			AliasTarget: &r53types.AliasTarget{DNSName: aws.String(oldHost + "."), HostedZoneId: aws.String("Z35SXDOTRQ7X7K")}}}}}}); err != nil {
		t.Fatal(err)
	}
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "shop", "namespace": harness.ApplicationNamespace},
		"spec": map[string]any{"hosts": []any{shop}, "gateways": []any{"istio-system/shop"},
			"http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "httpbin"}}}}}},
	}}
	if _, err := s.API.Dynamic.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).
		Namespace(harness.ApplicationNamespace).Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	return s, oldHost, shop
}

// TestGatewayMigrateRevert: a migration without --retire-old leaves both
// Services serving; `gateway --revert` puts the records back exactly,
// deletes the new Service and leaves the old one as it was.
func TestGatewayMigrateRevert(t *testing.T) {
	ctx := context.Background()
	s, _, shop := migrationSandbox(t)
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	before := recordLines(t, s.World.AWS)

	// Route 53 refuses: the new Service is created and serves, the records
	// to change are printed, none is changed, and the old Service is not
	// retired though --retire-old asked.
	proxy := awsProxy(t)
	proxy.Fail("ListResourceRecordSets", -1, harness.AWSFault{Status: 403, Code: "AccessDenied", Message: "not authorized to perform route53:ListResourceRecordSets"})
	denied := plugin(t, kcfg, proxy.Env(env), "gateway", "--migrate", "--retire-old", "--retire-after", "0s", "--yes", "--dns-server", s.DNSAddr(), "--timeout", "90s")
	t.Logf("gateway --migrate with Route 53 refusing:\n%s", denied)
	if all := denied.Stdout + denied.Stderr; denied.Code != 0 || !strings.Contains(all, "Route 53 refused") || !strings.Contains(all, "Point every DNS record") || !strings.Contains(all, "Not retiring") {
		t.Errorf("with Route 53 refusing: want exit 0, the records to change printed and the old Service kept:\n%s", denied)
	}
	if after := recordLines(t, s.World.AWS); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("records changed though Route 53 refused")
	}
	for _, name := range []string{harness.IngressGatewayName, harness.IngressGatewayName + "-dualstack"} {
		if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("service %s after the refused move: %v", name, err)
		}
	}

	// Again with Route 53: the Service from the first run, the names moved.
	r := plugin(t, kcfg, env, "gateway", "--migrate", "--yes", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("gateway --migrate:\n%s", r)
	}
	if !strings.Contains(r.Stdout+r.Stderr, "created by an earlier run") {
		t.Errorf("the second run should take the first run's Service:\n%s", r)
	}
	if !strings.Contains(r.Stdout, "Both keep serving") && !strings.Contains(r.Stderr, "Both keep serving") {
		t.Errorf("the plan should say both keep serving:\n%s", r)
	}
	moved := recordLines(t, s.World.AWS)
	if added, removed := lineChanges(before, moved); len(added) != 2 || len(removed) != 1 || !strings.Contains(removed[0], shop) {
		t.Errorf("records changed by the migration: added %q, removed %q", added, removed)
	}
	for _, name := range []string{harness.IngressGatewayName, harness.IngressGatewayName + "-dualstack"} {
		if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("service %s after the migration: %v", name, err)
		}
	}
	if r := plugin(t, kcfg, env, "gateway", "--revert", "--yes"); r.Code != 0 {
		t.Fatalf("gateway --revert:\n%s", r)
	}
	if after := recordLines(t, s.World.AWS); strings.Join(after, "\n") != strings.Join(before, "\n") {
		added, removed := lineChanges(before, after)
		t.Errorf("records after --revert differ: added %q, removed %q", added, removed)
	}
	if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName+"-dualstack", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the new Service after --revert: %v", err)
	}
	if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{}); err != nil {
		t.Errorf("the old Service after --revert: %v", err)
	}
	if r := plugin(t, kcfg, env, "gateway", "--revert", "--yes"); r.Code != 2 || !strings.Contains(r.Stderr, "no gateway migration to revert") {
		t.Errorf("a second --revert: want exit 2, nothing to revert:\n%s", r)
	}
}

// TestGatewayMigrateRollback: `rollback` after a migration moves the
// records back before the gateway layer deletes the new Service, with the
// rest of the conversion.
func TestGatewayMigrateRollback(t *testing.T) {
	ctx := context.Background()
	s, _, _ := migrationSandbox(t)
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	before := recordLines(t, s.World.AWS)
	if r := plugin(t, kcfg, env, "gateway", "--migrate", "--yes", "--dns-server", s.DNSAddr(), "--timeout", "90s"); r.Code != 0 {
		t.Fatalf("gateway --migrate:\n%s", r)
	}
	r := plugin(t, kcfg, env, "rollback", "--yes", "--timeout", "90s")
	if r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	if !strings.Contains(r.Stdout+r.Stderr, "dns-move") {
		t.Errorf("rollback should list the moved records (layer dns-move):\n%s", r)
	}
	if after := recordLines(t, s.World.AWS); strings.Join(after, "\n") != strings.Join(before, "\n") {
		added, removed := lineChanges(before, after)
		t.Errorf("records after rollback differ: added %q, removed %q", added, removed)
	}
	if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName+"-dualstack", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the new Service after rollback: %v", err)
	}
	if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{}); err != nil {
		t.Errorf("the old Service after rollback: %v", err)
	}
}

// TestGatewayMigrateRetiredRollback: `rollback` after a migration that
// retired the old Service creates it again first (behind a new Classic
// ELB), moves the records back to that one (not to the deleted ELB), then
// deletes the new Service.
func TestGatewayMigrateRetiredRollback(t *testing.T) {
	s, oldHost, _ := migrationSandbox(t)
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	before := recordLines(t, s.World.AWS)
	r := plugin(t, kcfg, env, "gateway", "--migrate", "--retire-old", "--retire-after", "0s", "--yes", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("gateway --migrate --retire-old:\n%s", r)
	}
	out := parseGateway(t, r)
	rb := plugin(t, kcfg, env, "rollback", "--yes", "--timeout", "90s")
	if rb.Code != 0 {
		t.Fatalf("rollback:\n%s", rb)
	}
	t.Logf("rollback:\n%s", rb)
	if !strings.Contains(rb.Stdout+rb.Stderr, "created again") {
		t.Errorf("the rollback should say the retired Service was created again:\n%s", rb)
	}
	assertBackOnARecreatedGateway(t, s, before, oldHost, out.Hostname)
}

// TestUpgradeMigratesTheGateway: without --recreate-gateway, the whole
// upgrade of a cluster whose gateway sits behind a Classic ELB migrates it
// without downtime: the plan says so, the names move to the new NLB with
// their AAAA twins, validate proves the new gateway over both families,
// and the old Service keeps serving until `gateway --retire`.
func TestUpgradeMigratesTheGateway(t *testing.T) {
	ctx := context.Background()
	s, oldHost, shop := migrationWorld(t, false)
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	time.Sleep(time.Second) // the sandbox DNS reads Route 53 every 200ms
	url := fmt.Sprintf("http://%s:%d/", shop, s.Ingress.Port)
	watch := startPlugin(t, kcfg, env, "probe", "watch", url, "--dns-server", s.DNSAddr(), "--interval", "100ms", "-o", "json")
	watch.waitFor(t, "Probing 1 target(s)", 60*time.Second)

	r := plugin(t, kcfg, env, "upgrade", "--yes", "--dns-server", s.DNSAddr(), "--timeout", "90s", "--measure=false", "-o", "json")
	u := parseUpgrade(t, r)
	if r.Code != 0 || u.Outcome != "converted" {
		t.Fatalf("upgrade: outcome %q\n%s", u.Outcome, r)
	}
	expectPhases(t, r, u, map[string]string{"gateway": "done", "dns": "done", "validate": "done"})
	w := parseWatch(t, watch.interrupt(t))
	v4, v6 := w.lane(t, url, "IPv4"), w.lane(t, url, "IPv6")
	t.Logf("through %s during the upgrade: IPv4 %d/%d failed (longest outage %.3fs); IPv6 %d/%d failed, first success %v",
		shop, v4.Failures, v4.Requests, v4.LongestOutageSeconds, v6.Failures, v6.Requests, v6.FirstSuccess)
	if v4.Requests == 0 || v4.Failures != 0 {
		t.Errorf("IPv4 through %s: %d of %d requests failed during the upgrade (%q)", shop, v4.Failures, v4.Requests, v4.LastError)
	}
	if v6.FirstSuccess == nil {
		t.Errorf("IPv6 never answered through %s", shop)
	}
	for _, p := range u.Plan.Phases {
		if p.Name == "gateway" && !strings.Contains(p.Summary, "without downtime") {
			t.Errorf("the gateway phase's plan: %+v", p)
		}
	}
	if !strings.Contains(r.Stderr+r.Stdout, "gateway --retire") {
		t.Errorf("the upgrade should say how to retire the old gateway:\n%s", r)
	}
	nlb, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName+"-dualstack", metav1.GetOptions{})
	if err != nil || len(nlb.Status.LoadBalancer.Ingress) == 0 {
		t.Fatalf("the migrated gateway: %v", err)
	}
	newHost := nlb.Status.LoadBalancer.Ingress[0].Hostname
	lines := strings.Join(recordLines(t, s.World.AWS), "\n")
	for _, typ := range []string{"A", "AAAA"} {
		if !strings.Contains(lines, fmt.Sprintf("%s. %s alias %s", shop, typ, newHost)) {
			t.Errorf("no %s alias %s -> %s in:\n%s", typ, shop, newHost, lines)
		}
	}
	if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{}); err != nil {
		t.Errorf("the old gateway Service should still serve (no --retire-old-gateway): %v", err)
	}
	// A second upgrade has nothing to do; then the old Service is retired.
	if r := plugin(t, kcfg, env, "upgrade", "--dns-server", s.DNSAddr(), "--measure=false", "-o", "json"); parseUpgrade(t, r).Outcome != "nothing-to-do" {
		t.Errorf("a second upgrade:\n%s", r)
	}
	rt := plugin(t, kcfg, env, "gateway", "--retire", "--yes")
	if rt.Code != 0 {
		t.Fatalf("gateway --retire:\n%s", rt)
	}
	t.Logf("gateway --retire:\n%s", rt)
	if _, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the old gateway Service after --retire: %v", err)
	}
	if strings.Contains(strings.Join(recordLines(t, s.World.AWS), "\n"), oldHost) {
		t.Errorf("a record still leads to the retired ELB %s", oldHost)
	}
}

type sample struct {
	at     time.Time
	family string
	ok     bool
	err    string
}

// readSamples reads a probe watch's samples.csv.
func readSamples(t *testing.T, dir string) []sample {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "samples.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("samples.csv: %v (%d rows)", err, len(rows))
	}
	var out []sample
	for _, r := range rows[1:] { // time, offsetSeconds, family, target, result, latencyMs, httpCode, remoteIP, error
		at, err := time.Parse(time.RFC3339Nano, r[0])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sample{at: at, family: r[2], ok: r[4] == "ok", err: r[8]})
	}
	return out
}
