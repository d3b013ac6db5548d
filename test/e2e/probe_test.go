package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

type probeJSON struct {
	Target  string `json:"target"`
	Results []struct {
		Family   string   `json:"family"`
		OK       bool     `json:"ok"`
		RemoteIP string   `json:"remoteIP"`
		HTTPCode int      `json:"httpCode"`
		Addrs    []string `json:"addresses"`
		Source   string   `json:"source"`
		Error    string   `json:"error"`
	} `json:"results"`
}

func TestProbe(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	// A sleep pod to probe from: validate's, kept.
	r := plugin(t, c.API.Kubeconfig, nil, "validate", "--keep", "--checks", "pod-ips", "--dns-server", c.DNS.Addr)
	if r.Code != 0 || !strings.Contains(r.Stderr, "kubectl delete namespace dualstack-validate") {
		t.Fatalf("validate --keep:\n%s", r)
	}

	r = plugin(t, c.API.Kubeconfig, nil, "probe", "curl", "sleep", "http://httpbin:8000/get", "-n", "dualstack-validate", "-c", "sleep", "-o", "json")
	var p probeJSON
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil || r.Code != 0 {
		t.Fatalf("probe curl: %v\n%s", err, r)
	}
	if len(p.Results) != 2 || p.Results[0].RemoteIP != "127.0.0.1" || p.Results[1].RemoteIP != "::1" || p.Results[1].HTTPCode != 200 {
		t.Fatalf("probe curl results: %+v", p.Results)
	}

	c.HTTPBin.StopIPv6()
	r = plugin(t, c.API.Kubeconfig, nil, "probe", "curl", "sleep", "http://httpbin:8000/get", "-n", "dualstack-validate")
	if r.Code != 1 || !strings.Contains(r.Stdout, "curl exit 7") {
		t.Fatalf("probe curl with IPv6 down must fail on IPv6 only:\n%s", r)
	}
	t.Logf("probe curl table:\n%s", r.Stdout)

	r = plugin(t, c.API.Kubeconfig, nil, "probe", "dns", harness.IngressHostname, "--dns-server", c.DNS.Addr, "-o", "json")
	p = probeJSON{}
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil || r.Code != 0 {
		t.Fatalf("probe dns: %v\n%s", err, r)
	}
	if len(p.Results) != 2 || p.Results[0].Addrs[0] != "127.0.0.1" || p.Results[1].Addrs[0] != "::1" {
		t.Fatalf("probe dns results: %+v", p.Results)
	}

	r = plugin(t, c.API.Kubeconfig, nil, "probe", "dns", "httpbin", "--from", "sleep", "-n", "dualstack-validate", "--dns-server", c.DNS.Addr)
	if r.Code != 1 || !strings.Contains(r.Stdout, "dualstack-validate/sleep") || !strings.Contains(r.Stdout, "::1") {
		t.Fatalf("probe dns --from (the workstation cannot resolve httpbin; the pod can):\n%s", r)
	}
	t.Logf("probe dns table:\n%s", r.Stdout)
}
