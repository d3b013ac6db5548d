package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// The scale benchmarks measure each command side by side with its anchor in
// the same run: wall clock, peak RSS from the child's rusage, and requests
// from client-go's -v=6 response lines. test/cmd/benchtable turns their
// metrics into the README's table. -short scales the fixtures down tenfold.

// measured is one measured command.
type measured struct {
	wall     time.Duration
	maxRSS   int64 // bytes
	code     int
	stdout   string
	stderr   string
	outBytes int64
}

// countingWriter keeps the first 32 MiB it is given (enough to check a
// result) and counts the rest, so a 100 MB `kubectl get -o json` is not held.
type countingWriter struct {
	buf bytes.Buffer
	n   int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if room := 32<<20 - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	w.n += int64(len(p))
	return len(p), nil
}

// launcherSource is a tiny program that runs a command and writes its peak
// RSS (KiB) to fd 3. Peak memory must be read this way: a child forked from
// this test process, which holds an apiserver, inherits the test's RSS
// high-water mark when it execs (Linux keeps the old mm's peak in
// ru_maxrss), so measuring directly would report the test's size.
const launcherSource = `package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	fmt.Fprintf(os.NewFile(3, "rusage"), "%d\n", ru.Maxrss)
	os.Exit(cmd.ProcessState.ExitCode())
}
`

var (
	launcherOnce sync.Once
	launcherPath string
	launcherErr  error
)

// launcher builds launcherSource once, into binDir.
func launcher(b *testing.B) string {
	b.Helper()
	launcherOnce.Do(func() {
		dir := filepath.Join(binDir, "launcher-src")
		if launcherErr = os.MkdirAll(dir, 0o755); launcherErr != nil {
			return
		}
		for name, content := range map[string]string{"main.go": launcherSource, "go.mod": "module launcher\n\ngo 1.26\n"} {
			if launcherErr = os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); launcherErr != nil {
				return
			}
		}
		launcherPath = filepath.Join(binDir, "rusage-launcher")
		cmd := exec.Command("go", "build", "-o", launcherPath, ".")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			launcherErr = fmt.Errorf("building the rusage launcher: %v\n%s", err, out)
		}
	})
	if launcherErr != nil {
		b.Fatal(launcherErr)
	}
	return launcherPath
}

// measure runs path with args and the environment, and reports its wall
// time and peak memory (through the launcher). Exit codes in ok are accepted
// (status exits 1 when a check fails, which is not a failure of the benchmark).
func measure(b *testing.B, env []string, ok []int, path string, args ...string) measured {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	rr, rw, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer rr.Close()
	cmd := exec.CommandContext(ctx, launcher(b), append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = []*os.File{rw}
	var stdout, stderr countingWriter
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Start()
	rw.Close()
	if err == nil {
		err = cmd.Wait()
	}
	r := measured{wall: time.Since(start), stdout: stdout.buf.String(), stderr: stderr.buf.String(), outBytes: stdout.n}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		b.Fatalf("%s %s: %v", path, strings.Join(args, " "), err)
	}
	r.code = cmd.ProcessState.ExitCode()
	if r.code != 0 && !slices.Contains(ok, r.code) {
		b.Fatalf("%s %s: exit %d\n%s", path, strings.Join(args, " "), r.code, r.stderr)
	}
	report, _ := io.ReadAll(rr)
	kib, err := strconv.ParseInt(strings.TrimSpace(string(report)), 10, 64)
	if err != nil {
		b.Fatalf("%s %s: no peak memory from the launcher (%q)", path, strings.Join(args, " "), report)
	}
	r.maxRSS = kib * 1024
	return r
}

// wallTime runs a short command directly (no launcher in the way of a
// start-up time) and returns its wall time.
func wallTime(b *testing.B, env []string, path string, args ...string) time.Duration {
	b.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", path, strings.Join(args, " "), err, out)
	}
	return wall
}

// responseLine matches client-go's -v=6 line for one answered request, in the
// structured form ("Response" verb="GET" url=...) and in the older one
// (GET https://... 200 OK in 3 milliseconds).
var responseLine = regexp.MustCompile(`(?m)"Response" verb=|\] (GET|POST|PUT|PATCH|DELETE) https?://\S+ \d{3} `)

var nodeListPage = regexp.MustCompile(`/api/v1/nodes\?[^" ]*limit=`)

// serviceList matches a page of a list of Services in every namespace.
var serviceList = regexp.MustCompile(`/api/v1/services\?[^" ]*`)

// servicePages counts the pages of the services check's list of every
// Service: not the label-selected lists of the gateway's checks.
func servicePages(stderr string) int {
	n := 0
	for _, m := range serviceList.FindAllString(stderr, -1) {
		if strings.Contains(m, "limit=") && !strings.Contains(m, "labelSelector=") {
			n++
		}
	}
	return n
}

// podList matches a page of a list of pods in every namespace.
var podList = regexp.MustCompile(`/api/v1/pods\?[^" ]*`)

// allPodPages counts the pages of the pods check's list of every pod.
func allPodPages(stderr string) int {
	n := 0
	for _, m := range podList.FindAllString(stderr, -1) {
		if strings.Contains(m, "limit=") && !strings.Contains(m, "labelSelector=") && !strings.Contains(m, "fieldSelector=") {
			n++
		}
	}
	return n
}

func requests(stderr string) int { return len(responseLine.FindAllString(stderr, -1)) }

// kubeEnv points a command at kubeconfig, with a HOME of its own (kubectl
// keeps its discovery cache there, as on a user's machine).
func kubeEnv(b *testing.B, kubeconfig string) []string {
	return []string{
		"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"KUBECONFIG=" + kubeconfig, "HOME=" + b.TempDir(), "NO_COLOR=1",
	}
}

// scaled divides a fixture size by ten under -short.
func scaled(n int) int {
	if testing.Short() {
		return n / 10
	}
	return n
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// BenchmarkScaleStatus: `status` against `kubectl get nodes,services,pods
// -A -o json` on the same apiserver (5,000 nodes, 10,000 Services, 20,000
// pods), alternating, after one untimed warm-up of each. The anchor reads
// what status reads in bulk: every node, every Service (the services check
// counts single-stack Services page by page) and every pod (the pods check
// counts those without IPv6); Deployments are read only through a label
// selector. The API requests are also
// measured on a small cluster in the same run (statusSmallRequests), to
// show that only the list pages grow with the cluster.
func BenchmarkScaleStatus(b *testing.B) {
	ctx := context.Background()
	small := harness.ScaleClusterSpec{Nodes: 10, Services: 20, Pods: 40}
	smallReqs, smallPages, smallServicePages, smallPodPages := statusSmallRequests(b, small)

	spec := harness.ScaleClusterSpec{Nodes: scaled(5000), Services: scaled(10000), Pods: scaled(20000)}
	api, err := harness.StartAPIServer(b, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16,fd00:10:96::/112"})
	if err != nil {
		b.Fatal(err)
	}
	if err := harness.InstallCRDs(ctx, api.Config); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := harness.BuildScaleCluster(ctx, api, spec); err != nil {
		b.Fatal(err)
	}
	b.Logf("created %d nodes, %d services, %d pods in %s", spec.Nodes, spec.Services, spec.Pods, time.Since(start).Round(time.Millisecond))

	env := kubeEnv(b, api.Kubeconfig)
	plugin := filepath.Join(binDir, "kubectl-dualstack")
	statusArgs := []string{"status", "-o", "json"}
	kubectlArgs := []string{"get", "nodes,services,pods", "-A", "-o", "json"}
	statusOK := []int{1} // no Istio here: the mesh checks fail

	// Warm-up, and the request counts (with -v=6, untimed).
	st := measure(b, env, statusOK, plugin, append(statusArgs, "-v=6")...)
	if !strings.Contains(st.stdout, fmt.Sprintf("all %d nodes have IPv4 and IPv6", spec.Nodes)) {
		b.Fatalf("status did not judge every node:\n%s", st.stdout)
	}
	kc := measure(b, env, nil, "kubectl", append(kubectlArgs, "-v=6")...)
	if n := strings.Count(kc.stdout, `"kind": "Node"`); kc.outBytes == int64(len(kc.stdout)) && n != spec.Nodes {
		b.Fatalf("kubectl get nodes,services,pods printed %d nodes, want %d", n, spec.Nodes)
	}
	statusReqs, kubectlReqs := requests(st.stderr), requests(kc.stderr)
	nodePages := len(nodeListPage.FindAllString(st.stderr, -1))
	svcPages := servicePages(st.stderr)
	podPages := allPodPages(st.stderr)
	if statusReqs == 0 || kubectlReqs == 0 {
		b.Fatalf("no -v=6 response lines: status\n%s\nkubectl\n%s", st.stderr, kc.stderr)
	}

	var statusWall, kubectlWall time.Duration
	var statusRSS, kubectlRSS int64
	n := 0
	for b.Loop() {
		s := measure(b, env, statusOK, plugin, statusArgs...)
		k := measure(b, env, nil, "kubectl", kubectlArgs...)
		if k.outBytes < int64(spec.Nodes)*500 {
			b.Fatalf("kubectl get nodes,services,pods printed only %d bytes for %d nodes", k.outBytes, spec.Nodes)
		}
		statusWall += s.wall
		kubectlWall += k.wall
		statusRSS = max(statusRSS, s.maxRSS)
		kubectlRSS = max(kubectlRSS, k.maxRSS)
		n++
	}
	b.ReportMetric(float64(spec.Nodes), "nodes")
	b.ReportMetric(float64(spec.Services), "services")
	b.ReportMetric(float64(spec.Pods), "pods")
	b.ReportMetric(statusWall.Seconds()/float64(n), "status-s")
	b.ReportMetric(kubectlWall.Seconds()/float64(n), "kubectl-withpods-s")
	b.ReportMetric(mib(statusRSS), "status-MiB")
	b.ReportMetric(mib(kubectlRSS), "kubectl-withpods-MiB")
	b.ReportMetric(float64(statusReqs), "status-requests")
	b.ReportMetric(float64(nodePages), "status-node-pages")
	b.ReportMetric(float64(svcPages), "status-service-pages")
	b.ReportMetric(float64(kubectlReqs), "kubectl-withpods-requests")
	b.ReportMetric(float64(podPages), "status-pod-pages")
	b.ReportMetric(float64(smallPodPages), "small-status-pod-pages")
	b.ReportMetric(float64(small.Nodes), "small-nodes")
	b.ReportMetric(float64(smallReqs), "small-status-requests")
	b.ReportMetric(float64(smallPages), "small-status-node-pages")
	b.ReportMetric(float64(smallServicePages), "small-status-service-pages")
}

// statusSmallRequests runs `status -v=6` once on a small cluster of its own
// apiserver, stopped before the large one starts, and returns its API
// requests and node and Service list pages: the anchor of the request count.
func statusSmallRequests(b *testing.B, spec harness.ScaleClusterSpec) (reqs, nodePages, svcPages, podPages int) {
	b.Helper()
	ctx := context.Background()
	tb := harness.NewProcessTB("status-small", b.Logf)
	defer tb.Close()
	var err error
	var api *harness.APIServer
	func() {
		defer harness.RecoverFatal(&err)
		if api, err = harness.StartAPIServer(tb, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16,fd00:10:96::/112"}); err != nil {
			return
		}
		if err = harness.InstallCRDs(ctx, api.Config); err != nil {
			return
		}
		err = harness.BuildScaleCluster(ctx, api, spec)
	}()
	if err != nil {
		b.Fatal(err)
	}
	st := measure(b, kubeEnv(b, api.Kubeconfig), []int{1}, filepath.Join(binDir, "kubectl-dualstack"), "status", "-o", "json", "-v=6")
	if !strings.Contains(st.stdout, fmt.Sprintf("all %d nodes have IPv4 and IPv6", spec.Nodes)) {
		b.Fatalf("status on the small cluster did not judge every node:\n%s", st.stdout)
	}
	return requests(st.stderr), len(nodeListPage.FindAllString(st.stderr, -1)), servicePages(st.stderr), allPodPages(st.stderr)
}

// isMutating tells whether an AWS call changes something: everything that
// does not only read.
func isMutating(op harness.AWSOp) bool {
	for _, p := range []string{"Describe", "Get", "List"} {
		if strings.HasPrefix(op.Action, p) {
			return false
		}
	}
	return true
}

// BenchmarkScaleAWS: `aws plan` and `aws apply --yes` on the default
// 6-subnet, 6-instance VPC (the anchor for the call counts) and on one with
// 200 subnets and 2,000 instances (each iteration rolls back, untimed):
// Describe calls, mutating calls against the planned changes, wall time.
func BenchmarkScaleAWS(b *testing.B) {
	for _, size := range []struct {
		name               string
		subnets, instances int
	}{
		{"small", 6, 6},
		{"large", scaled(200), scaled(2000)},
	} {
		b.Run(size.name, func(b *testing.B) {
			benchAWSAt(b, size.subnets, size.instances)
		})
	}
}

func benchAWSAt(b *testing.B, subnets, instances int) {
	start := time.Now()
	kubeconfig, proxy, env := benchWorld(b, moto.IPIOptions{Subnets: subnets, Workers: instances - 3})
	b.Logf("built a VPC with %d subnets and %d instances in %s", subnets, instances, time.Since(start).Round(time.Millisecond))
	env = append(kubeEnv(b, kubeconfig), env...)
	plugin := filepath.Join(binDir, "kubectl-dualstack")

	floor := motoDescribeTime(b)
	var planWall, applyWall time.Duration
	var planDescribes, applyDescribes, applyMutating, changes, journalWrites int
	n := 0
	for b.Loop() {
		proxy.Reset()
		p := measure(b, env, nil, plugin, "aws", "plan", "-o", "json")
		planWall += p.wall
		planDescribes += describeCalls(proxy)
		var plan struct {
			Changes []json.RawMessage `json:"changes"`
		}
		if err := json.Unmarshal([]byte(p.stdout), &plan); err != nil {
			b.Fatalf("aws plan -o json: %v\n%s", err, p.stdout)
		}
		changes += len(plan.Changes)

		proxy.Reset()
		// moto has no request limits: this apply runs unpaced, at moto's
		// speed (BenchmarkThrottledApply measures the paced one).
		a := measure(b, env, nil, plugin, "aws", "apply", "--yes", "--max-aws-rps", unpaced, "-v=6")
		applyWall += a.wall
		journalWrites += len(journalWrite.FindAllString(a.stderr, -1))
		applyDescribes += describeCalls(proxy)
		for _, op := range proxy.Ops() {
			if isMutating(op) {
				applyMutating++
			}
		}
		n++
		b.StopTimer()
		measure(b, env, nil, plugin, "aws", "rollback", "--yes", "--max-aws-rps", unpaced)
		b.StartTimer()
	}
	per := func(v int) float64 { return float64(v) / float64(n) }
	b.ReportMetric(float64(subnets), "subnets")
	b.ReportMetric(float64(instances), "instances")
	b.ReportMetric(planWall.Seconds()/float64(n), "plan-s")
	b.ReportMetric(per(planDescribes), "plan-describe-calls")
	b.ReportMetric(per(changes), "planned-changes")
	b.ReportMetric(applyWall.Seconds()/float64(n), "apply-s")
	b.ReportMetric(per(applyDescribes), "apply-describe-calls")
	b.ReportMetric(per(applyMutating), "apply-mutating-calls")
	b.ReportMetric(per(journalWrites), "apply-journal-writes")
	b.ReportMetric(floor.Seconds(), "moto-describe-s")

	// With a real region's round trip on every call, independent Describe
	// calls overlap: the plan takes fewer round trips than it makes calls.
	// The anchor is measured: the same plan, the same calls and the same
	// round trip, through a proxy that lets one call through at a time.
	const rtt = 100 * time.Millisecond
	proxy.SetLatency(rtt)
	defer proxy.SetLatency(0)
	proxy.Reset()
	p := measure(b, env, nil, plugin, "aws", "plan", "-o", "json")
	concurrentCalls := len(proxy.Ops())
	proxy.Reset()
	serialEnv := append(slices.Clone(env), "AWS_ENDPOINT_URL="+oneAtATime(b, proxy.URL))
	q := measure(b, serialEnv, nil, plugin, "aws", "plan", "-o", "json")
	if serialCalls := len(proxy.Ops()); serialCalls != concurrentCalls || p.stdout != q.stdout {
		b.Fatalf("the plan through the one-at-a-time proxy differs: %d calls, %d without it; same plan: %v", serialCalls, concurrentCalls, p.stdout == q.stdout)
	}
	b.ReportMetric(p.wall.Seconds(), "plan-rtt100ms-s")
	b.ReportMetric(q.wall.Seconds(), "plan-rtt100ms-serial-s")
	b.ReportMetric(float64(concurrentCalls), "plan-rtt100ms-calls")
}

// oneAtATime is a reverse proxy to target (the recording proxy) that
// forwards one request at a time: behind it, a command's AWS calls are
// made one after another, whatever the command does. It stops when b ends.
func oneAtATime(b *testing.B, target string) string {
	b.Helper()
	u, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

// motoDescribeTime is how long moto itself takes to answer the big lists
// aws plan reads (instances, ENIs, subnets, security groups, route tables,
// load balancers), asked one after another with the SDK: the floor under
// the plan's wall time on this fixture.
func motoDescribeTime(b *testing.B) time.Duration {
	b.Helper()
	ctx := context.Background()
	cfg, err := awsTLS.AWSConfig(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	e, lb := ec2.NewFromConfig(cfg), elbv2.NewFromConfig(cfg)
	start := time.Now()
	for p := ec2.NewDescribeInstancesPaginator(e, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000)}); p.HasMorePages(); {
		if _, err := p.NextPage(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for p := ec2.NewDescribeNetworkInterfacesPaginator(e, &ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(1000)}); p.HasMorePages(); {
		if _, err := p.NextPage(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for _, call := range []func() error{
		func() error { _, err := e.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{}); return err },
		func() error { _, err := e.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{}); return err },
		func() error { _, err := e.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{}); return err },
		func() error { _, err := lb.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{}); return err },
	} {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// journalWrite matches client-go's -v=6 line for a create or update of a
// ConfigMap (the journal's shards), in both of its forms.
var journalWrite = regexp.MustCompile(`"Response" verb="(POST|PUT)" url="[^"]*/configmaps|\] (POST|PUT) https?://\S+/configmaps\S* \d{3} `)

// BenchmarkStartup: `kubectl-dualstack version` and `--help` against
// `kubectl version --client`, alternating, 20 of each per iteration, with no
// kubeconfig at all (neither may need one); and the binaries' sizes. The
// plugin is built as `make build` and the release build it (CGO_ENABLED=0:
// a cgo build is three times the size); the release binary's size is also
// reported, built as .goreleaser.yaml builds it (-trimpath -s -w).
func BenchmarkStartup(b *testing.B) {
	env := []string{"KUBECONFIG=" + filepath.Join(b.TempDir(), "none"), "HOME=" + b.TempDir(), "NO_COLOR=1"}
	plugin := filepath.Join(b.TempDir(), "kubectl-dualstack")
	goBuild(b, plugin)
	release := filepath.Join(b.TempDir(), "kubectl-dualstack")
	goBuild(b, release, "-trimpath", "-ldflags", "-s -w")
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		b.Fatal(err)
	}
	cmds := []struct {
		metric string
		path   string
		args   []string
	}{
		{"version-ms", plugin, []string{"version"}},
		{"help-ms", plugin, []string{"--help"}},
		{"kubectl-version-ms", kubectl, []string{"version", "--client"}},
	}
	for _, c := range cmds { // warm the page cache
		wallTime(b, env, c.path, c.args...)
	}
	const reps = 20
	total := make([]time.Duration, len(cmds))
	n := 0
	for b.Loop() {
		for range reps {
			for i, c := range cmds {
				total[i] += wallTime(b, env, c.path, c.args...)
			}
		}
		n += reps
	}
	for i, c := range cmds {
		b.ReportMetric(float64(total[i])/float64(time.Millisecond)/float64(n), c.metric)
	}
	for metric, path := range map[string]string{"binary-MiB": plugin, "release-binary-MiB": release, "kubectl-binary-MiB": kubectl} {
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(mib(fi.Size()), metric)
	}
}

// goBuild builds the plugin binary to out, static (CGO_ENABLED=0) as make
// build and the releases do, with extra go build flags.
func goBuild(b *testing.B, out string, flags ...string) {
	b.Helper()
	build := exec.Command("go", append(append([]string{"build"}, flags...), "-o", out, "./cmd/kubectl-dualstack")...)
	build.Dir = repoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, msg)
	}
}
