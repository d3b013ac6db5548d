package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// No cluster is needed for these: discovery, help, version, completion, usage.

func TestPluginDiscoveryAndNames(t *testing.T) {
	kubeconfig := t.TempDir() + "/none"

	list := runCmd(t, kubeconfig, nil, "kubectl", "plugin", "list")
	if !strings.Contains(list.Stdout, binDir+"/kubectl-dualstack") {
		t.Fatalf("kubectl plugin list does not find the plugin:\n%s", list)
	}

	help := plugin(t, kubeconfig, nil, "--help")
	if help.Code != 0 || !strings.Contains(help.Stdout, "kubectl dualstack status") || strings.Contains(help.Stdout, "oc dualstack") {
		t.Fatalf("kubectl dualstack --help:\n%s", help)
	}
	oc := runCmd(t, kubeconfig, nil, "oc-dualstack", "status", "--help")
	if oc.Code != 0 || !strings.Contains(oc.Stdout, "oc dualstack status") || strings.Contains(oc.Stdout, "kubectl dualstack") {
		t.Fatalf("oc-dualstack status --help:\n%s", oc)
	}
}

func TestVersion(t *testing.T) {
	r := plugin(t, t.TempDir()+"/none", nil, "version", "-o", "json")
	var v struct {
		Version   string `json:"version"`
		GitCommit string `json:"gitCommit"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &v) != nil || v.Version != e2eVersion {
		t.Fatalf("version -o json:\n%s", r)
	}
}

func TestKubectlCompletesThePlugin(t *testing.T) {
	// kubectl's own completion asks the kubectl_complete-dualstack shim.
	r := runCmd(t, t.TempDir()+"/none", nil, "kubectl", "__complete", "dualstack", "st")
	if r.Code != 0 || !strings.Contains(r.Stdout, "status") {
		t.Fatalf("kubectl __complete dualstack st:\n%s", r)
	}
	r = runCmd(t, t.TempDir()+"/none", nil, "kubectl", "__complete", "dualstack", "status", "-o", "")
	if !strings.Contains(r.Stdout, "json") || !strings.Contains(r.Stdout, "yaml") {
		t.Fatalf("completion of -o:\n%s", r)
	}
}

func TestBadUsageExits2WithOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--no-such-flag"},
		{"status", "-o", "xml"},
		{"status", "unexpected"},
		{"frobnicate"},
		{"completion", "tcsh"},
	} {
		r := plugin(t, t.TempDir()+"/none", nil, args...)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "--help") {
			t.Errorf("%v:\n%s", args, r)
		}
	}
}

func TestNoClusterFailsWithAHint(t *testing.T) {
	r := plugin(t, t.TempDir()+"/none", nil, "status")
	if r.Code != 1 || !strings.Contains(r.Stderr, "--kubeconfig") {
		t.Fatalf("status without a kubeconfig:\n%s", r)
	}
}
