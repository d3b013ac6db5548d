package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
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

// TestVersionWithoutLdflags: a plain `go build` (as `go install` does,
// with no -ldflags) reports the module version and VCS revision the go
// command recorded, not v0.0.0-dev and "unknown".
func TestVersionWithoutLdflags(t *testing.T) {
	head, err := exec.Command("git", "-C", "../..", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "kubectl-dualstack")
	// -buildvcs=true: the go command's default in a git checkout, which
	// this machine's GOFLAGS turn off.
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/kubectl-dualstack")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	var v struct {
		Version   string `json:"version"`
		GitCommit string `json:"gitCommit"`
	}
	if err != nil || json.Unmarshal(out, &v) != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	if v.Version == "v0.0.0-dev" || !strings.HasPrefix(v.Version, "v") || !strings.HasPrefix(strings.TrimSpace(string(head)), v.GitCommit) || len(v.GitCommit) != 12 {
		t.Errorf("version from the build info: %+v (HEAD %s)", v, head)
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
