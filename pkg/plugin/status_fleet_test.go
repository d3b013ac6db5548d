package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/status"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// fleetKubeconfig writes a kubeconfig with one context per server.
func fleetKubeconfig(t *testing.T, servers map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\nclusters:\n")
	for name, server := range servers {
		b.WriteString("- name: " + name + "-cluster\n  cluster: {server: \"" + server + "\"}\n")
	}
	b.WriteString("users:\n- name: u\n  user: {token: t}\n")
	b.WriteString("- name: eks\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token]\n      env: [{name: AWS_PROFILE, value: prod}]\n")
	b.WriteString("contexts:\n")
	for name := range servers {
		user := "u"
		if name == "eks" {
			user = "eks"
		}
		b.WriteString("- name: " + name + "\n  context: {cluster: " + name + "-cluster, user: " + user + "}\n")
	}
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runWith(t *testing.T, kubeconfig string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	t.Setenv("KUBECONFIG", kubeconfig)
	code = Main(context.Background(), append([]string{"kubectl-dualstack"}, args...), streams)
	return code, out.String(), errOut.String()
}

// A cluster that is down and one that never answers are rows with their
// errors, each within the per-cluster timeout, and the run exits 1.
func TestFleetUnreachableClustersAreRows(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // accepts the connection, never answers
	}))
	defer hang.Close()
	kubeconfig := fleetKubeconfig(t, map[string]string{"down": "https://" + closedPort(t), "hung": hang.URL})

	start := time.Now()
	code, out, errOut := runWith(t, kubeconfig, "status", "--all-contexts", "--request-timeout", "1s", "-o", "json")
	took := time.Since(start)
	if code != cli.ExitFailed {
		t.Fatalf("code %d, want 1\n%s\n%s", code, out, errOut)
	}
	if took > 3*time.Second {
		t.Fatalf("took %s with --request-timeout 1s: the hung cluster held the run up", took)
	}
	var res FleetResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(res.Contexts) != 2 || res.Contexts[0].Context != "down" || res.Contexts[1].Context != "hung" {
		t.Fatalf("want rows down, hung (sorted): %+v", res.Contexts)
	}
	if want := (FleetSummary{Contexts: 2, Unreachable: 2}); res.Summary != want {
		t.Fatalf("summary %+v, want %+v", res.Summary, want)
	}
	if e := res.Contexts[0]; !strings.Contains(e.Error, "connection refused") || e.Report != nil || e.Cluster != "down-cluster" {
		t.Fatalf("down: %+v", e)
	}
	if e := res.Contexts[1]; !strings.Contains(e.Error, "within 1s") {
		t.Fatalf("hung: %+v", e)
	}

	// The table: a row each, the error in its column.
	code, out, _ = runWith(t, kubeconfig, "status", "--contexts", "hung,down", "--request-timeout", "1s")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != cli.ExitFailed || len(lines) != 5 || !strings.HasPrefix(lines[1], "hung ") || !strings.HasPrefix(lines[2], "down ") ||
		!strings.Contains(lines[2], "connection refused") || lines[4] != "2 contexts: 0 without failed checks, 0 with failed checks, 2 unreachable" {
		t.Fatalf("table (code %d):\n%s", code, out)
	}
}

func TestFleetBadUsageExits2(t *testing.T) {
	kubeconfig := fleetKubeconfig(t, map[string]string{"a": "https://" + closedPort(t)})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--contexts", "a,nope"}, `context "nope" is not in the kubeconfig`},
		{[]string{"--all-contexts", "--contexts", "a"}, "use one"},
		{[]string{"--all-contexts", "--context", "a"}, "drop --context"},
		{[]string{"--all-contexts", "--server", "https://x"}, "drop --server"},
		{[]string{"--all-contexts", "--parallel", "0"}, "--parallel must be at least 1"},
		{[]string{"--all-contexts", "--print-istio-values"}, "--print-istio-values reads one cluster"},
		{[]string{"--all-contexts", "-o", "xml"}, "unsupported output format"},
		{[]string{"--all-contexts", "--request-timeout", "soon"}, "--request-timeout"},
		{[]string{"--contexts", ","}, "empty name"},
	} {
		code, out, errOut := runWith(t, kubeconfig, append([]string{"status"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != cli.ExitBadUsage || len(lines) != 1 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%v: code %d, stdout %q, stderr %q (want %q)", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestFleetTableGolden(t *testing.T) {
	var failing report.Report
	failing.Add(report.Check{Layer: report.LayerCluster, Name: "kubernetes-version", Status: report.Pass, Message: "v1.29.5"})
	failing.Add(report.Check{Layer: report.LayerUnderlay, Name: "vpc-ipv6", Status: report.Fail, Message: "the VPC has no IPv6 /56", Remediation: "kubectl dualstack aws plan"})
	failing.Add(report.Check{Layer: report.LayerOverlay, Name: "node-internal-ips", Status: report.Warn, Message: "no nodes"})
	failing.Add(report.Check{Layer: report.LayerMesh, Name: "istiod", Status: report.Pass, Message: "istiod 1.24.2"})
	failing.Add(report.Check{Layer: report.LayerMesh, Name: "ingress-gateway", Status: report.Fail, Message: "SingleStack"})
	var passing report.Report
	passing.Add(report.Check{Layer: report.LayerOverlay, Name: "pod-cidrs", Status: report.Pass, Message: "2 nodes"})
	res := FleetResult{
		Contexts: []FleetEntry{
			{Context: "prod", Cluster: "prod-cluster", Server: "https://api.prod:6443", AWSProfile: "prod", Failed: 2, DurationMs: 1200,
				Layers: status.Verdicts(failing),
				Report: &StatusResult{Cluster: platform.Info{Kind: platform.OpenShift, Cloud: "aws", OpenShiftVersion: "4.16.3", KubernetesVersion: "v1.29.5"}, Report: failing}},
			{Context: "lab", Cluster: "kind-lab", Server: "https://127.0.0.1:6443", DurationMs: 80, Layers: status.Verdicts(passing),
				Report: &StatusResult{Cluster: platform.Info{Kind: platform.KindKind, KubernetesVersion: "v1.37.2"}, Report: passing}},
			{Context: "gone", Cluster: "old", Error: "reading the cluster: listing nodes: dial tcp 127.0.0.1:1:\nconnection refused", DurationMs: 3},
		},
		Summary: FleetSummary{Contexts: 3, Passed: 1, Failed: 1, Unreachable: 1},
	}
	for _, wide := range []bool{false, true} {
		name := "fleet.golden"
		if wide {
			name = "fleet-wide.golden"
		}
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := res.printTable(&buf, wide, cli.Painter{}); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if buf.String() != string(want) {
				t.Fatalf("table differs from %s:\n%s", path, buf.String())
			}
		})
	}
}
