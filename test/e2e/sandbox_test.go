package e2e

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// TestSandboxByHand: the sandbox as `make sandbox` starts it (IPv4-only,
// the env file written by the same harness code), then the README's
// commands typed through the real kubectl with only the env file sourced:
// status fails with fixes, upgrade converts, validate passes every check
// without --dns-server (the env file's KUBECTL_DUALSTACK_DNS_SERVER) and
// says once that the answers came from a simulated cluster on loopback,
// and rollback returns the cluster to where it started.
func TestSandboxByHand(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	dir := t.TempDir()
	envFile, _, err := harness.WriteSandboxEnv(dir, binDir, s, awsTLS.Env())
	if err != nil {
		t.Fatal(err)
	}
	env, err := harness.ReadSandboxEnv(envFile)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	sh := func(args ...string) result { return plugin(t, kubeconfig, env, args...) }

	r := sh("status")
	if r.Code != 1 || !strings.Contains(r.Stdout, "FAIL") || !strings.Contains(r.Stdout, "kubectl dualstack") {
		t.Fatalf("status on the IPv4-only sandbox:\n%s", r)
	}
	before := parseStatus(t, sh("status", "-o", "json")).verdicts()

	if r := sh("upgrade", "--yes", "--recreate-gateway"); r.Code != 0 {
		t.Fatalf("upgrade --yes --recreate-gateway with only the env file:\n%s", r)
	}
	if r := sh("policies", "apply", "--yes"); r.Code != 0 || !strings.Contains(r.Stdout, "added 1 IPv6 ipBlocks to 1 NetworkPolicies") {
		t.Fatalf("policies apply --yes:\n%s", r)
	}
	r = sh("validate")
	if r.Code != 0 || !strings.Contains(r.Stdout, "12 checks: 12 passed") || strings.Count(r.Stdout, "loopback addresses") != 1 {
		t.Fatalf("validate without --dns-server:\n%s", r)
	}
	if r := sh("rollback", "--yes"); r.Code != 0 {
		t.Fatalf("rollback --yes:\n%s", r)
	}
	if after := parseStatus(t, sh("status", "-o", "json")).verdicts(); !maps.Equal(after, before) {
		t.Errorf("status after rollback differs from the start:\nbefore %v\nafter  %v", before, after)
	}
}
