package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// fleetJSON mirrors the stable fields of `status --all-contexts -o json`.
type fleetJSON struct {
	Contexts []struct {
		Context string `json:"context"`
		Cluster string `json:"cluster"`
		Server  string `json:"server"`
		Layers  struct {
			Underlay, Overlay, Mesh, Edge string
		} `json:"layers"`
		Failed int         `json:"failed"`
		Error  string      `json:"error"`
		Report *statusJSON `json:"report"`
	} `json:"contexts"`
	Summary struct {
		Contexts, Passed, Failed, Unreachable int
	} `json:"summary"`
}

// closedLoopbackPort is an https URL on loopback where nothing listens.
func closedLoopbackPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr
}

// writeFleetKubeconfig writes one kubeconfig with a context per apiserver
// (named as in clusters) and a context "dead" at a closed loopback port.
func writeFleetKubeconfig(t testing.TB, clusters map[string]*rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	add := func(name string, cfg *rest.Config) {
		kc.Clusters[name] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData, TLSServerName: cfg.ServerName}
		kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken, ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
		kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	for name, cfg := range clusters {
		add(name, cfg)
		kc.CurrentContext = name
	}
	add("dead", &rest.Config{Host: closedLoopbackPort(t)})
	path := filepath.Join(t.TempDir(), "fleet-kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// The fleet: a dual-stack kind cluster that passes, an IPv4-only one that
// fails, and a context whose apiserver is gone. One run reports all three
// within the per-cluster timeout, and each cluster's report is the one
// `status --context` gives.
func TestFleetStatusAllContexts(t *testing.T) {
	ctx := context.Background()
	ready := dualStackKindCluster(ctx, t)

	v4 := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16"})
	kubeadmConfigMap(ctx, t, v4)
	if err := harness.CreateNodes(ctx, v4.Kube, kindNodes(2, false)); err != nil {
		t.Fatal(err)
	}
	kubeconfig := writeFleetKubeconfig(t, map[string]*rest.Config{"kind-ready": ready.Config, "kind-v4": v4.Config})

	const timeout = 5 * time.Second
	start := time.Now()
	r := plugin(t, kubeconfig, nil, "status", "--all-contexts", "--request-timeout", timeout.String())
	took := time.Since(start)
	t.Logf("status --all-contexts took %s:\n%s", took.Round(time.Millisecond), r.Stdout)
	if r.Code != 1 {
		t.Fatalf("a failing and a dead cluster must exit 1:\n%s", r)
	}
	if took > timeout+time.Second {
		t.Fatalf("took %s, more than the per-cluster timeout %s plus a second", took, timeout)
	}
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "CONTEXT") {
		t.Fatalf("want a header, three rows, a blank line and the summary:\n%s", r.Stdout)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:4] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	// CONTEXT CLUSTER PLATFORM VERSION UNDERLAY OVERLAY MESH EDGE FAILED [ERROR...]
	if f := rows["kind-ready"]; len(f) != 9 || f[2] != "kind" || f[3] != "v1.37.2" || f[5] != "PASS" || f[6] != "PASS" || f[7] != "PASS" || f[8] != "0" {
		t.Errorf("kind-ready row: %q", f)
	}
	if f := rows["kind-v4"]; len(f) != 9 || f[5] != "FAIL" || f[8] == "0" {
		t.Errorf("kind-v4 row: %q", f)
	}
	if f := rows["dead"]; len(f) < 10 || f[2] != "-" || !strings.Contains(strings.Join(f[9:], " "), "connection refused") {
		t.Errorf("dead row: %q", f)
	}
	if lines[5] != "3 contexts: 1 without failed checks, 1 with failed checks, 1 unreachable" {
		t.Errorf("summary %q", lines[5])
	}

	// -o json holds each cluster's full report, the one status gives alone.
	r = plugin(t, kubeconfig, nil, "status", "--all-contexts", "--request-timeout", timeout.String(), "-o", "json")
	var fleet fleetJSON
	if err := json.Unmarshal([]byte(r.Stdout), &fleet); err != nil || r.Code != 1 {
		t.Fatalf("-o json (%v):\n%s", err, r)
	}
	if s := fleet.Summary; s.Contexts != 3 || s.Passed != 1 || s.Failed != 1 || s.Unreachable != 1 {
		t.Fatalf("summary %+v", s)
	}
	for _, e := range fleet.Contexts {
		if e.Context == "dead" {
			if e.Report != nil || !strings.Contains(e.Error, "connection refused") {
				t.Errorf("dead: report %v, error %q", e.Report, e.Error)
			}
			continue
		}
		if e.Report == nil || e.Error != "" {
			t.Fatalf("%s: no report (%s)", e.Context, e.Error)
		}
		alone := parseStatus(t, plugin(t, kubeconfig, nil, "status", "--context", e.Context, "-o", "json"))
		if got, want := e.Report.verdicts(), alone.verdicts(); !maps.Equal(got, want) || e.Report.Summary != alone.Summary {
			t.Errorf("%s: fleet report %v %+v, status --context %v %+v", e.Context, got, e.Report.Summary, want, alone.Summary)
		}
		if e.Failed != alone.Summary.Fail || e.Report.Cluster.Kind != "kind" {
			t.Errorf("%s: failed %d, alone %d; kind %q", e.Context, e.Failed, alone.Summary.Fail, e.Report.Cluster.Kind)
		}
	}

	// Two of them by name, in the order given; all reachable and one fails.
	r = plugin(t, kubeconfig, nil, "status", "--contexts", "kind-v4,kind-ready", "-o", "yaml")
	if r.Code != 1 || strings.Index(r.Stdout, "context: kind-v4") > strings.Index(r.Stdout, "context: kind-ready") || strings.Contains(r.Stdout, "dead") {
		t.Fatalf("--contexts kind-v4,kind-ready:\n%s", r)
	}
	r = plugin(t, kubeconfig, nil, "status", "--contexts", "kind-ready")
	if r.Code != 0 {
		t.Fatalf("the dual-stack cluster alone passes:\n%s", r)
	}
	r = plugin(t, kubeconfig, nil, "status", "--contexts", "kind-ready,gone")
	if r.Code != 2 || !strings.Contains(r.Stderr, `context "gone" is not in the kubeconfig`) || r.Stdout != "" {
		t.Fatalf("unknown context:\n%s", r)
	}
}
