package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// validateJSON mirrors the stable fields of `validate -o json`.
type validateJSON struct {
	Namespace string `json:"namespace"`
	Checks    []struct {
		Name       string `json:"name"`
		Family     string `json:"family"`
		Status     string `json:"status"`
		Message    string `json:"message"`
		DurationMs int64  `json:"durationMs"`
	} `json:"checks"`
	Summary struct {
		Total, Pass, Fail, Inconclusive int
	} `json:"summary"`
}

func (v validateJSON) verdicts() map[string]string {
	m := map[string]string{}
	for _, c := range v.Checks {
		m[c.Name+"/"+c.Family] = c.Status
	}
	return m
}

func (v validateJSON) message(key string) string {
	for _, c := range v.Checks {
		if c.Name+"/"+c.Family == key {
			return c.Message
		}
	}
	return ""
}

func dualStackCluster(t *testing.T, o harness.DualStackClusterOptions) *harness.DualStackCluster {
	t.Helper()
	c, err := harness.BuildDualStackCluster(context.Background(), t, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func runValidate(t *testing.T, c *harness.DualStackCluster, args ...string) (result, validateJSON) {
	t.Helper()
	args = append([]string{"validate", "-o", "json", "--dns-server", c.DNS.Addr, "--timeout", "90s"}, args...)
	r := plugin(t, c.API.Kubeconfig, nil, args...)
	var v validateJSON
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("validate -o json is not JSON: %v\n%s", err, r)
	}
	return r, v
}

var allValidateChecks = []string{"pod-ips", "service-ips", "curl-service", "dns-service", "dns-ingress", "curl-ingress"}

// expectOnly asserts that exactly the keys in notPass have that status and
// every other check passed.
func expectOnly(t *testing.T, v validateJSON, notPass map[string]string) {
	t.Helper()
	got := v.verdicts()
	if len(got) != 2*len(allValidateChecks) {
		t.Fatalf("want %d checks, got %v", 2*len(allValidateChecks), got)
	}
	for _, name := range allValidateChecks {
		for _, f := range []string{"IPv4", "IPv6"} {
			key := name + "/" + f
			want := "PASS"
			if s, ok := notPass[key]; ok {
				want = s
			}
			if got[key] != want {
				t.Errorf("%s: %s (%s), want %s", key, got[key], v.message(key), want)
			}
		}
	}
}

func expectNamespaceGone(t *testing.T, c *harness.DualStackCluster, ns string) {
	t.Helper()
	err := harness.WaitFor(context.Background(), 20*time.Second, "namespace "+ns+" to be deleted", func(ctx context.Context) (bool, error) {
		_, err := c.API.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func execs(c *harness.DualStackCluster) int64 {
	var n int64
	for _, k := range c.Kubelets {
		n += k.Execs.Load()
	}
	return n
}

func TestValidateDualStack(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	junit := filepath.Join(t.TempDir(), "validate.xml")
	r, v := runValidate(t, c, "--junit-file", junit)
	if r.Code != 0 {
		t.Errorf("exit %d, want 0\n%s", r.Code, r)
	}
	expectOnly(t, v, nil)
	if v.Summary.Total != 12 || v.Summary.Pass != 12 {
		t.Errorf("summary %+v", v.Summary)
	}
	for key, want := range map[string]string{
		"curl-service/IPv4": "200 from 127.0.0.1 (server: envoy)",
		"curl-service/IPv6": "200 from ::1 (server: envoy)",
		"dns-ingress/IPv6":  harness.IngressHostname + " ::1",
		"curl-ingress/IPv4": "server: istio-envoy",
		"service-ips/IPv6":  "httpbin fd02::",
	} {
		if !strings.Contains(v.message(key), want) {
			t.Errorf("%s: %q, want it to contain %q", key, v.message(key), want)
		}
	}
	// One exec per in-pod probe: curl and lookup, once per family.
	if n := execs(c); n != 4 {
		t.Errorf("%d execs, want 4 (one per probe; a fallback would run commands twice)", n)
	}
	if !strings.Contains(r.Stderr, "Deleted namespace dualstack-validate") {
		t.Errorf("no cleanup message:\n%s", r.Stderr)
	}
	expectNamespaceGone(t, c, "dualstack-validate")

	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Name string `xml:"name,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &suites); err != nil {
		t.Fatalf("JUnit file does not parse: %v\n%s", err, b)
	}
	if len(suites.Suites) != 1 || suites.Suites[0].Tests != 12 || suites.Suites[0].Failures != 0 || suites.Suites[0].Cases[0].Name != "pod-ips/IPv4" {
		t.Fatalf("JUnit: %+v", suites)
	}

	// The table, as a user sees it.
	r = plugin(t, c.API.Kubeconfig, nil, "validate", "--dns-server", c.DNS.Addr, "--timeout", "90s")
	if r.Code != 0 || !strings.Contains(r.Stdout, "CHECK") || !strings.Contains(r.Stdout, "12 checks: 12 passed") {
		t.Fatalf("table run:\n%s", r)
	}
	t.Logf("validate table:\n%s", r.Stdout)
	expectNamespaceGone(t, c, "dualstack-validate")
}

func TestValidateIPv4OnlyCluster(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{IPv4Only: true})
	r, v := runValidate(t, c)
	if r.Code != 1 {
		t.Errorf("exit %d, want 1\n%s", r.Code, r)
	}
	want := map[string]string{}
	for _, name := range allValidateChecks {
		want[name+"/IPv6"] = "FAIL"
	}
	expectOnly(t, v, want)
	for key, reason := range map[string]string{
		"pod-ips/IPv6":      "no IPv6 pod IP",
		"service-ips/IPv6":  "refused RequireDualStack",
		"curl-service/IPv6": "curl exit",
		"dns-service/IPv6":  "found no IPv6 address",
		"dns-ingress/IPv6":  "AAAA " + harness.IngressHostname,
	} {
		if !strings.Contains(v.message(key), reason) {
			t.Errorf("%s: %q, want the reason %q", key, v.message(key), reason)
		}
	}
	expectNamespaceGone(t, c, "dualstack-validate")
}

func TestValidateIPv6ListenerDown(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	c.HTTPBin.StopIPv6()
	r, v := runValidate(t, c)
	if r.Code != 1 {
		t.Errorf("exit %d, want 1\n%s", r.Code, r)
	}
	expectOnly(t, v, map[string]string{"curl-service/IPv6": "FAIL"})
	if msg := v.message("curl-service/IPv6"); !strings.Contains(msg, "curl exit 7") {
		t.Errorf("reason: %q", msg)
	}
}

func TestValidateAAAAMissing(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	c.DNS.DropAAAA.Store(true)
	r, v := runValidate(t, c)
	if r.Code != 1 {
		t.Errorf("exit %d, want 1\n%s", r.Code, r)
	}
	expectOnly(t, v, map[string]string{"dns-ingress/IPv6": "FAIL", "curl-ingress/IPv6": "FAIL"})
	// The fix names the cause observed (A but no AAAA) and the whole command.
	if !strings.Contains(r.Stdout, "has A but no AAAA records: the load balancer is not dualstack yet (`kubectl dualstack gateway`") {
		t.Errorf("the dns-ingress fix does not name the cause and the command:\n%s", r.Stdout)
	}
	// A name that resolves in neither family is a wrong name or resolver.
	r, _ = runValidate(t, c, "--checks", "dns-ingress", "--dns-server", "127.0.0.1:9")
	if r.Code != 1 || !strings.Contains(r.Stdout, "has neither A nor AAAA records here: the name does not exist, or this resolver is not the one that knows it") {
		t.Errorf("validate with a resolver that knows nothing:\n%s", r)
	}
}

func TestValidateExecTransportBroken(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	for _, k := range c.Kubelets {
		k.Broken.Store(true)
	}
	r, v := runValidate(t, c)
	if r.Code != 1 {
		t.Errorf("exit %d, want 1\n%s", r.Code, r)
	}
	expectOnly(t, v, map[string]string{
		"curl-service/IPv4": "INCONCLUSIVE", "curl-service/IPv6": "INCONCLUSIVE",
		"dns-service/IPv4": "INCONCLUSIVE", "dns-service/IPv6": "INCONCLUSIVE",
	})
	if v.Summary.Inconclusive != 4 {
		t.Errorf("summary %+v", v.Summary)
	}
}

func TestValidateInterruptCleansUp(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	// No pod ever gets Ready: the run is certainly mid-way when interrupted.
	c.Pods.Stop()
	cmd := exec.Command(filepath.Join(binDir, "kubectl-dualstack"), "validate", "--timeout", "2m")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.API.Kubeconfig, "HOME="+t.TempDir(), "NO_COLOR=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := harness.WaitFor(context.Background(), 30*time.Second, "the validate namespace", func(ctx context.Context) (bool, error) {
		_, err := c.API.Kube.CoreV1().Pods("dualstack-validate").Get(ctx, "sleep", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errorsAs(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("after Ctrl-C: %v, want exit 1\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Deleted namespace dualstack-validate") || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	// The namespace controller needs the kubelet to confirm pod deletion.
	c.Pods.Start(context.Background())
	expectNamespaceGone(t, c, "dualstack-validate")
}

func TestValidateRefusesForeignNamespace(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	if err := harness.EnsureNamespace(context.Background(), c.API.Kube, "team-a", nil); err != nil {
		t.Fatal(err)
	}
	r := plugin(t, c.API.Kubeconfig, nil, "validate", "-n", "team-a", "--dns-server", c.DNS.Addr)
	if r.Code != 1 || !strings.Contains(r.Stderr, "was not created by validate") {
		t.Fatalf("want a refusal:\n%s", r)
	}
	if _, err := c.API.Kube.CoreV1().Namespaces().Get(context.Background(), "team-a", metav1.GetOptions{}); err != nil {
		t.Fatalf("the foreign namespace must stay: %v", err)
	}
	// With --namespace-reuse, validate's objects come and go; the namespace stays.
	r, v := runValidate(t, c, "-n", "team-a", "--namespace-reuse")
	if r.Code != 0 {
		t.Fatalf("reuse run:\n%s", r)
	}
	expectOnly(t, v, nil)
	ns, err := c.API.Kube.CoreV1().Namespaces().Get(context.Background(), "team-a", metav1.GetOptions{})
	if err != nil || ns.DeletionTimestamp != nil {
		t.Fatalf("the reused namespace must stay: %v", err)
	}
	if sas, _ := c.API.Kube.CoreV1().ServiceAccounts("team-a").List(context.Background(), metav1.ListOptions{}); len(sas.Items) != 1 {
		t.Errorf("service accounts left: %v (only default may remain)", sas.Items)
	}
}

// BenchmarkValidate runs the whole validate on a ready sandbox (the pods
// are Ready as soon as the simulator sees them) and reports the API calls
// the plugin made (client-go's -v=6 response lines) and the execs per run.
func BenchmarkValidate(b *testing.B) {
	c, err := harness.BuildDualStackCluster(context.Background(), b, harness.DualStackClusterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var calls, execsBefore int64
	b.ResetTimer()
	for range b.N {
		execsBefore = execs(c)
		cmd := exec.Command(filepath.Join(binDir, "kubectl-dualstack"), "validate", "--dns-server", c.DNS.Addr, "-o", "json", "-v=6")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+c.API.Kubeconfig, "HOME="+b.TempDir(), "NO_COLOR=1")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("validate: %v\n%s", err, stderr.String())
		}
		calls += int64(strings.Count(stderr.String(), `"Response" verb=`))
		if n := execs(c) - execsBefore; n != 4 {
			b.Fatalf("%d execs, want 4", n)
		}
		b.StopTimer()
		_ = harness.WaitFor(context.Background(), 20*time.Second, "namespace deletion", func(ctx context.Context) (bool, error) {
			_, err := c.API.Kube.CoreV1().Namespaces().Get(ctx, "dualstack-validate", metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		b.StartTimer()
	}
	b.ReportMetric(float64(calls)/float64(b.N), "api-calls/op")
	b.ReportMetric(4, "execs/op")
}

// TestValidateDNSNames: --name adds the dns-names check: a name that
// answers A only fails IPv6 with the fix that gives it AAAA; a name that
// does not exist fails both; a URL is not a name (exit 2).
func TestValidateDNSNames(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{IPv4Only: true})
	r, v := runValidate(t, c, "--checks", "dns-names", "--name", harness.IngressHostname)
	if r.Code != 1 {
		t.Errorf("exit %d, want 1\n%s", r.Code, r)
	}
	got := v.verdicts()
	if len(got) != 2 || got["dns-names/IPv4"] != "PASS" || got["dns-names/IPv6"] != "FAIL" {
		t.Errorf("verdicts %v, want dns-names PASS for IPv4 and FAIL for IPv6", got)
	}
	if m := v.message("dns-names/IPv6"); !strings.Contains(m, "no AAAA for "+harness.IngressHostname) {
		t.Errorf("dns-names/IPv6: %q", m)
	}
	if !strings.Contains(r.Stdout, "dns apply") {
		t.Errorf("the IPv6 failure does not name dns apply:\n%s", r)
	}
	r, v = runValidate(t, c, "--checks", "dns-names", "--name", "nosuch.example.invalid")
	if got := v.verdicts(); got["dns-names/IPv4"] != "FAIL" || got["dns-names/IPv6"] != "FAIL" {
		t.Errorf("a name that does not exist: %v\n%s", got, r)
	}
	r = plugin(t, c.API.Kubeconfig, nil, "validate", "--name", "https://api.example.com:6443")
	if r.Code != 2 || !strings.Contains(r.Stderr, "is not a DNS name") {
		t.Errorf("--name with a URL: exit %d, want 2\n%s", r.Code, r)
	}
}
