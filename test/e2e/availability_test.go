package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image/png"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// watchJSON mirrors the stable fields of `probe watch -o json` (and of
// upgrade's availability).
type watchJSON struct {
	Start       time.Time   `json:"start"`
	IntervalMs  int64       `json:"intervalMs"`
	Targets     []laneJSON  `json:"targets"`
	Phases      []phaseJSON `json:"phases"`
	Interrupted bool        `json:"interrupted"`
}

type laneJSON struct {
	Target               string     `json:"target"`
	Family               string     `json:"family"`
	Requests             int        `json:"requests"`
	Failures             int        `json:"failures"`
	LongestOutageSeconds float64    `json:"longestOutageSeconds"`
	FirstSuccess         *time.Time `json:"firstSuccess"`
	P50Ms                float64    `json:"p50Ms"`
	P99Ms                float64    `json:"p99Ms"`
	LastError            string     `json:"lastError"`
}

type phaseJSON struct {
	Name       string     `json:"name"`
	Start, End time.Time  `json:"-"`
	Targets    []laneJSON `json:"targets"`
}

func (w watchJSON) lane(t *testing.T, target, family string) laneJSON {
	t.Helper()
	for _, l := range w.Targets {
		if strings.HasPrefix(l.Target, target) && l.Family == family {
			return l
		}
	}
	t.Fatalf("no lane %s %s in %+v", family, target, w.Targets)
	return laneJSON{}
}

// background is a plugin command left running, as in a second shell.
type background struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
	err            error
}

// syncBuffer is a bytes.Buffer the command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPlugin runs `kubectl dualstack ARGS` in the background (kubectl
// execs the plugin in its own process, so a signal reaches the plugin).
func startPlugin(t *testing.T, kubeconfig string, env []string, args ...string) *background {
	t.Helper()
	bg := &background{done: make(chan struct{})}
	bg.cmd = exec.Command("kubectl", append([]string{"dualstack"}, args...)...)
	bg.cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig, "HOME="+t.TempDir(), "NO_COLOR=1")
	bg.cmd.Env = append(bg.cmd.Env, env...)
	bg.cmd.Stdout, bg.cmd.Stderr = &bg.stdout, &bg.stderr
	if err := bg.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { bg.err = bg.cmd.Wait(); close(bg.done) }()
	t.Cleanup(func() {
		select {
		case <-bg.done:
		default:
			_ = bg.cmd.Process.Kill()
			<-bg.done
		}
	})
	return bg
}

// waitFor waits until the command's stderr contains s.
func (bg *background) waitFor(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(bg.stderr.String(), s) {
		select {
		case <-bg.done:
			t.Fatalf("the command ended before saying %q:\n%s", s, bg.result())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s:\n%s", s, timeout, bg.result())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// interrupt is Ctrl-C; it returns how the command ended.
func (bg *background) interrupt(t *testing.T) result {
	t.Helper()
	_ = bg.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-bg.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the command did not stop within 60s of Ctrl-C:\n%s", bg.result())
	}
	return bg.result()
}

func (bg *background) result() result {
	r := result{Stdout: bg.stdout.String(), Stderr: bg.stderr.String(), Code: -1}
	select {
	case <-bg.done:
		r.Code = bg.cmd.ProcessState.ExitCode()
	default:
	}
	return r
}

func parseWatch(t *testing.T, r result) watchJSON {
	t.Helper()
	var w watchJSON
	if err := json.Unmarshal([]byte(r.Stdout), &w); err != nil {
		t.Fatalf("probe watch -o json is not JSON: %v\n%s", err, r)
	}
	return w
}

// checkTimeline checks the files of --report-dir: the PNG decodes, the SVG
// parses and names every lane (and phase), the CSV has every request.
func checkTimeline(t *testing.T, dir string, lanes []string, requests int) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "timeline.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("timeline.png does not decode: %v", err)
	}
	s, err := os.Open(filepath.Join(dir, "timeline.svg"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dec := xml.NewDecoder(s)
	var texts []string
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("timeline.svg does not parse: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			texts = append(texts, strings.TrimSpace(string(tok)))
		}
	}
	all := strings.Join(texts, "\n")
	for _, l := range lanes {
		if !strings.Contains(all, l) {
			t.Errorf("timeline.svg has no lane %q; its texts: %q", l, texts)
		}
	}
	csvBytes, err := os.ReadFile(filepath.Join(dir, "samples.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Count(strings.TrimSpace(string(csvBytes)), "\n") // the header is the line without a newline before it
	if root != "svg" || rows != requests {
		t.Errorf("timeline.svg root %q; samples.csv has %d rows, the report %d requests", root, rows, requests)
	}
	t.Logf("timeline: %s (%dx%d), timeline.svg (%d texts), samples.csv (%d requests)", filepath.Join(dir, "timeline.png"), img.Bounds().Dx(), img.Bounds().Dy(), len(texts), rows)
}

func TestProbeWatchBadInputAndUnreachableURL(t *testing.T) {
	kcfg := filepath.Join(t.TempDir(), "none") // nothing here needs a cluster
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--interval", "0"}, "--interval must be at least"},
		{[]string{"--interval=-1s"}, "--interval must be at least"},
		{[]string{"ftp://example.com/"}, `unsupported scheme "ftp"`},
		{[]string{"--duration=-5s"}, "--duration must not be negative"},
	} {
		r := plugin(t, kcfg, nil, append([]string{"probe", "watch"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || r.Stdout != "" {
			t.Errorf("probe watch %v: want exit 2 and one line %q:\n%s", tc.args, tc.want, r)
		}
	}

	// Nothing listens on this port: every request fails, and says why.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/health", ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	junit := filepath.Join(t.TempDir(), "watch.xml")
	r := plugin(t, kcfg, nil, "probe", "watch", url, "--duration", "1s", "--interval", "100ms", "-o", "json", "--junit-file", junit)
	w := parseWatch(t, r)
	if r.Code != 1 || len(w.Targets) != 1 {
		t.Fatalf("unreachable URL: want exit 1 and one lane (a literal IPv4 address: IPv4 only):\n%s", r)
	}
	l := w.Targets[0]
	if l.Family != "IPv4" || l.Requests < 5 || l.Failures != l.Requests || l.FirstSuccess != nil || !strings.Contains(l.LastError, "connection refused") {
		t.Errorf("unreachable URL: %+v", l)
	}
	b, err := os.ReadFile(junit)
	if err != nil || !strings.Contains(string(b), `failures="1"`) || !strings.Contains(string(b), "connection refused") {
		t.Errorf("JUnit: %v\n%s", err, b)
	}
}

// TestProbeWatchGatewayRecreateOutage runs the prober, as a user would in
// a second shell, while `gateway --recreate` replaces the Classic ELB
// gateway with an NLB that takes a while to provision: the prober must
// report an IPv4 outage at least as long as the provisioning took, and
// IPv6 successes once the new NLB is dualstack.
func TestProbeWatchGatewayRecreateOutage(t *testing.T) {
	const provision = 4 * time.Second
	ctx := context.Background()
	api, world, env := openShiftOnAWSWith(t, harness.APIServerOptions{ServiceCIDRs: "172.30.0.0/16,fd02::/112"}, harness.OpenShiftOnAWSOptions{})
	cfg, err := awsTLS.AWSConfig(ctx, world.AWS.Region)
	if err != nil {
		t.Fatal(err)
	}
	var subnets []string
	seen := map[string]bool{}
	for _, s := range world.AWS.PublicSubnets() {
		if !seen[s.AZ] {
			seen[s.AZ] = true
			subnets = append(subnets, s.ID)
		}
	}
	lbc := harness.StartLBControllerWith(api.Kube, cfg, world.AWS.ClusterTagKey, subnets, harness.LBControllerOptions{ProvisionDelay: provision})
	t.Cleanup(lbc.Stop)
	dns, err := harness.StartLBDNS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dns.SetActive(lbc.Active)
	t.Cleanup(dns.Close)
	// The gateway's data path: the Host-routing ingress on loopback, at
	// the Service's http2 port, as the load balancer forwards it.
	ingress, err := harness.StartIngress(api.Dynamic, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ingress.Close)
	gw, err := api.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldHost := gw.Status.LoadBalancer.Ingress[0].Hostname
	for i := range gw.Spec.Ports {
		if gw.Spec.Ports[i].Name == "http2" {
			gw.Spec.Ports[i].Port = int32(ingress.Port)
		}
	}
	if _, err := api.Kube.CoreV1().Services(harness.IstioNamespace).Update(ctx, gw, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes"); r.Code != 0 {
		t.Fatalf("aws apply:\n%s", r)
	}

	dir := t.TempDir()
	reportDir, junit := filepath.Join(dir, "report"), filepath.Join(dir, "watch.xml")
	// The prober's resolution is one interval: it sees an outage start at
	// most one interval late. At 20ms that is finer than the time from the
	// old Service's deletion to the new load balancer's creation (the
	// finalizer, the Service's create, the NLB's target groups and
	// listeners), so the outage it measures cannot come out shorter than
	// the provisioning alone.
	watch := startPlugin(t, api.Kubeconfig, env, "probe", "watch", "--dns-server", dns.Addr, "--interval", "20ms", "-o", "json", "--report-dir", reportDir, "--junit-file", junit)
	watch.waitFor(t, "Probing 1 target(s)", 30*time.Second)
	time.Sleep(time.Second) // the gateway as it was, for a second

	start := time.Now()
	r := plugin(t, api.Kubeconfig, env, "gateway", "--recreate", "--yes", "--dns-server", dns.Addr, "--timeout", "60s", "-o", "json")
	took := time.Since(start)
	if r.Code != 0 {
		t.Fatalf("gateway --recreate:\n%s", r)
	}
	out := parseGateway(t, r)
	time.Sleep(time.Second) // the new gateway, for a second
	wr := watch.interrupt(t)
	w := parseWatch(t, wr)

	prov, ok := lbc.ProvisioningOf(out.Hostname)
	if !ok || out.Hostname == oldHost {
		t.Fatalf("the controller did not create the new load balancer %s", out.Hostname)
	}
	provisioned := prov.Active.Sub(prov.Created)
	v4 := w.lane(t, "ingress istio-system/istio-ingressgateway", "IPv4")
	v6 := w.lane(t, "ingress istio-system/istio-ingressgateway", "IPv6")
	outage := time.Duration(v4.LongestOutageSeconds * float64(time.Second))
	t.Logf("gateway --recreate took %s; the new NLB %s took %s to provision; the prober (every %dms) saw IPv4: %d/%d failed, longest outage %s (last error %q); IPv6: %d/%d failed, first success %s after the recreate began",
		took.Round(time.Millisecond), out.Hostname, provisioned.Round(time.Millisecond), w.IntervalMs, v4.Failures, v4.Requests, outage, v4.LastError, v6.Failures, v6.Requests, durationSince(v6.FirstSuccess, start))
	if wr.Code != 1 || !w.Interrupted {
		t.Errorf("after Ctrl-C: want exit 1 (requests failed) and interrupted: exit %d, interrupted %v\n%s", wr.Code, w.Interrupted, wr)
	}
	if v4.Failures == 0 || outage < provisioned {
		t.Errorf("IPv4 outage %s, want at least the provisioning time %s", outage, provisioned)
	}
	if v4.FirstSuccess == nil || v4.FirstSuccess.After(start) {
		t.Errorf("IPv4 answered before the re-creation: first success %v", v4.FirstSuccess)
	}
	// IPv6: the Classic ELB has no AAAA; the new NLB, once dualstack and
	// provisioned, does.
	if v6.FirstSuccess == nil || v6.FirstSuccess.Before(prov.Active) {
		t.Errorf("IPv6 first success %v, want one after the NLB was provisioned (%s)", v6.FirstSuccess, prov.Active)
	}
	if !strings.Contains(wr.Stderr, "IPv4 ingress istio-system/istio-ingressgateway: down") || !strings.Contains(wr.Stderr, "up again after") {
		t.Errorf("stderr should log the IPv4 outage as it happened:\n%s", wr.Stderr)
	}
	checkTimeline(t, reportDir, []string{"IPv4 ingress istio-system/istio-ingressgateway", "IPv6 ingress istio-system/istio-ingressgateway"}, v4.Requests+v6.Requests)
	b, err := os.ReadFile(junit)
	if err != nil || !strings.Contains(string(b), fmt.Sprintf("longestOutageSeconds=%.3f", v4.LongestOutageSeconds)) {
		t.Errorf("JUnit should hold the IPv4 outage %.3f: %v\n%s", v4.LongestOutageSeconds, err, b)
	}
}

func durationSince(t *time.Time, from time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Sub(from).Round(time.Millisecond).String()
}

// junitCases reads a JUnit file: test case name -> system-out.
func junitCases(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suites []struct {
			Cases []struct {
				Name      string `xml:"name,attr"`
				SystemOut string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &suites); err != nil || len(suites.Suites) != 1 {
		t.Fatalf("JUnit %s: %v\n%s", path, err, b)
	}
	out := map[string]string{}
	for _, c := range suites.Suites[0].Cases {
		out[c.Name] = c.SystemOut
	}
	return out
}

var junitNumbers = regexp.MustCompile(`requests=(\d+) failures=(\d+) longestOutageSeconds=([0-9.]+) p50Ms=([0-9.]+) p99Ms=([0-9.]+)`)

// sameNumbers says whether a JUnit test case's output holds a lane's numbers.
func sameNumbers(out string, l laneJSON) bool {
	m := junitNumbers.FindStringSubmatch(out)
	if m == nil {
		return false
	}
	n := func(i int) float64 { f, _ := strconv.ParseFloat(m[i], 64); return f }
	return int(n(1)) == l.Requests && int(n(2)) == l.Failures && n(3) == l.LongestOutageSeconds && n(4) == l.P50Ms && n(5) == l.P99Ms
}

// tableRow finds the availability table's row for a phase and family and
// returns its requests, failures and longest outage.
func tableRow(t *testing.T, table, phase, family string) (requests, failures int, outage string) {
	t.Helper()
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == phase && f[1] == family {
			requests, _ = strconv.Atoi(f[2])
			failures, _ = strconv.Atoi(f[3])
			return requests, failures, f[4]
		}
	}
	t.Fatalf("no availability row for %s %s in:\n%s", phase, family, table)
	return 0, 0, ""
}

// TestUpgradeMeasuresAvailabilityPerPhase runs the whole upgrade on the
// conversion sandbox (its new load balancers take a few seconds to answer)
// with the prober on, as it is by default: the summary prints what each
// family saw per phase, and the JUnit file and the report's JSON hold the
// same numbers. Before it, `probe watch svc/...` probes a Service from a
// prober pod, which goes again after Ctrl-C.
func TestUpgradeMeasuresAvailabilityPerPhase(t *testing.T) {
	const provision = 3 * time.Second
	s := conversionSandbox(t, harness.ConversionSandboxOptions{LBProvisionDelay: provision})
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	ctx := context.Background()

	// A Service by name, from a pod, before the conversion: IPv4 answers,
	// IPv6 cannot (the name has no IPv6 address yet: curl cannot resolve
	// it for IPv6, or finds nothing to connect to).
	if _, err := s.API.Kube.CoreV1().Services(harness.ApplicationNamespace).Create(ctx, httpbinService(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	watch := startPlugin(t, kcfg, env, "probe", "watch", "svc/httpbin", "-n", harness.ApplicationNamespace, "-o", "json")
	watch.waitFor(t, "Probing 1 target(s)", 60*time.Second)
	time.Sleep(2 * time.Second)
	wr := watch.interrupt(t)
	w := parseWatch(t, wr)
	v4, v6 := w.lane(t, "svc/httpbin:8000", "IPv4"), w.lane(t, "svc/httpbin:8000", "IPv6")
	t.Logf("svc/httpbin from a prober pod for 2s: IPv4 %d/%d failed (p50 %.1fms), IPv6 %d/%d failed (%s)", v4.Failures, v4.Requests, v4.P50Ms, v6.Failures, v6.Requests, v6.LastError)
	if v4.Requests < 3 || v4.Failures != 0 || v6.Failures != v6.Requests || !strings.Contains(v6.LastError, "curl exit") {
		t.Errorf("svc/httpbin before the conversion: IPv4 %+v, IPv6 %+v\n%s", v4, v6, wr)
	}
	if !strings.Contains(wr.Stderr, "Deleted the prober pod") {
		t.Errorf("the prober pod should be deleted after Ctrl-C:\n%s", wr)
	}
	pods, err := s.API.Kube.CoreV1().Pods(harness.ApplicationNamespace).List(ctx, metav1.ListOptions{LabelSelector: "dualstack.kubectl.io/probe-run"})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("prober pods left: %v %v", len(pods.Items), err)
	}

	dir := t.TempDir()
	reportDir, junit := filepath.Join(dir, "report"), filepath.Join(dir, "upgrade.xml")
	start := time.Now()
	r := plugin(t, kcfg, env, "upgrade", "--yes", "--recreate-gateway", "--dns-server", s.DNSAddr(), "--timeout", "90s", "--junit-file", junit, "--report-dir", reportDir)
	t.Logf("upgrade --measure took %s", time.Since(start).Round(time.Millisecond))
	if r.Code != 0 || !strings.Contains(r.Stderr, "Measuring availability") {
		t.Fatalf("upgrade:\n%s", r)
	}
	b, err := os.ReadFile(filepath.Join(reportDir, "availability.json"))
	if err != nil {
		t.Fatal(err)
	}
	var a watchJSON
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	table := r.Stdout[strings.Index(r.Stdout, "Availability of"):]
	t.Logf("the summary's availability:\n%s", strings.ReplaceAll(table, "\n", "\n\t"))
	cases := junitCases(t, junit)
	var phases []string
	for _, p := range a.Phases {
		phases = append(phases, p.Name)
		for _, l := range p.Targets {
			name := p.Name + ": " + l.Target + "/" + l.Family
			if !sameNumbers(cases[name], l) {
				t.Errorf("JUnit %q = %q; the JSON has %+v", name, cases[name], l)
			}
			req, fail, outage := tableRow(t, table, p.Name, l.Family)
			if req != l.Requests || fail != l.Failures || outage != fmt.Sprintf("%.1fs", l.LongestOutageSeconds) {
				t.Errorf("table row %s %s: %d %d %s; the JSON has %+v", p.Name, l.Family, req, fail, outage, l)
			}
		}
	}
	if strings.Join(phases, ",") != "aws,nodes,network,mesh,services,workloads,gateway,validate" {
		t.Errorf("phases measured: %v", phases)
	}
	for _, p := range []string{"aws", "gateway", "validate"} {
		if _, ok := cases[p]; !ok {
			t.Errorf("no JUnit test case for phase %s", p)
		}
	}
	// The gateway phase re-created the Service: IPv4 was down at least
	// as long as the new NLB took to provision; IPv6 first answered then.
	var gateway phaseJSON
	for _, p := range a.Phases {
		if p.Name == "gateway" {
			gateway = p
		}
	}
	svc, err := s.API.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prov, ok := s.LBs.ProvisioningOf(svc.Status.LoadBalancer.Ingress[0].Hostname)
	if !ok {
		t.Fatal("the controller did not create the gateway's new load balancer")
	}
	gw4 := gateway.Targets[0]
	whole6 := a.lane(t, "ingress", "IPv6")
	t.Logf("gateway phase: IPv4 %d/%d failed, longest outage %.3fs (the NLB took %s to provision); IPv6 over the run: first success %s after the upgrade began",
		gw4.Failures, gw4.Requests, gw4.LongestOutageSeconds, prov.Active.Sub(prov.Created).Round(time.Millisecond), durationSince(whole6.FirstSuccess, start))
	// upgrade probes every 200ms: the outage it measures is the real one
	// (at least the provisioning) to within that.
	if gw4.Family != "IPv4" || time.Duration(gw4.LongestOutageSeconds*float64(time.Second)) < prov.Active.Sub(prov.Created)-200*time.Millisecond {
		t.Errorf("gateway phase IPv4: %+v", gw4)
	}
	if whole6.FirstSuccess == nil || whole6.FirstSuccess.Before(prov.Active) {
		t.Errorf("IPv6 first success %v, want after the new NLB was provisioned (%s)", whole6.FirstSuccess, prov.Active)
	}
	lanes := []string{"IPv4 ingress istio-system/istio-ingressgateway", "IPv6 ingress istio-system/istio-ingressgateway", "gateway", "validate"}
	total := 0
	for _, l := range a.Targets {
		total += l.Requests
	}
	checkTimeline(t, reportDir, lanes, total)
}

// httpbinService is a Service named httpbin on port 8000: in the sandbox
// the name resolves, inside pods, to the local httpbin.
func httpbinService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "httpbin"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "httpbin"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8000, TargetPort: intstr.FromInt32(8080)}}},
	}
}
