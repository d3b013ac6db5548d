package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	t.Setenv("KUBECONFIG", t.TempDir()+"/absent") // never a developer's real cluster
	code = Main(context.Background(), args, streams)
	return code, out.String(), errOut.String()
}

func TestInvocationFrom(t *testing.T) {
	for argv0, want := range map[string]string{
		"/usr/local/bin/kubectl-dualstack":   "kubectl dualstack",
		"kubectl-dualstack.exe":              "kubectl dualstack",
		"/home/u/.krew/bin/oc-dualstack":     "oc dualstack",
		`C:\bin\oc-dualstack.exe`:            "oc dualstack",
		"/tmp/go-build123/b001/exe/whatever": "kubectl dualstack",
	} {
		if got := InvocationFrom(argv0).DisplayName; got != want {
			t.Errorf("InvocationFrom(%q) = %q, want %q", argv0, got, want)
		}
	}
}

func TestHelpNamesItselfAfterTheInvocation(t *testing.T) {
	for argv0, name := range map[string]string{"kubectl-dualstack": "kubectl dualstack", "oc-dualstack": "oc dualstack"} {
		code, out, _ := run(t, argv0, "status", "--help")
		if code != 0 || !strings.Contains(out, name+" status") {
			t.Fatalf("%s status --help: code %d\n%s", argv0, code, out)
		}
		other := "oc dualstack"
		if name == other {
			other = "kubectl dualstack"
		}
		if strings.Contains(out, other) {
			t.Fatalf("%s help mentions %q", argv0, other)
		}
	}
}

func TestUsageErrorsExit2WithOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"oc-dualstack", "status", "--bogus"},
		{"oc-dualstack", "status", "-o", "xml"},
		{"oc-dualstack", "status", "extra-arg"},
		{"oc-dualstack", "nonsense"},
		{"oc-dualstack", "completion"},
		{"oc-dualstack", "completion", "tcsh"},
		{"oc-dualstack", "version", "-o", "wide"},
	} {
		code, out, errOut := run(t, args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != cli.ExitBadUsage || len(lines) != 1 || !strings.HasPrefix(lines[0], "error: ") ||
			!strings.Contains(lines[0], "see 'oc dualstack") || out != "" {
			t.Errorf("%v: code %d, stdout %q, stderr %q", args[1:], code, out, errOut)
		}
	}
}

func TestStatusWithoutClusterFailsClearly(t *testing.T) {
	code, _, errOut := run(t, "kubectl-dualstack", "status")
	if code != cli.ExitFailed || !strings.Contains(errOut, "--kubeconfig") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := run(t, "kubectl-dualstack", "version", "-o", "json")
	var v VersionInfo
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Version != version || v.GitCommit != commit || v.GoVersion == "" {
		t.Fatalf("code %d, output %q", code, out)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, marker := range map[string]string{"bash": "__start_kubectl-dualstack", "zsh": "#compdef kubectl-dualstack", "fish": "complete -c kubectl-dualstack", "powershell": "Register-ArgumentCompleter"} {
		code, out, _ := run(t, "kubectl-dualstack", "completion", shell)
		if code != 0 || !strings.Contains(out, marker) {
			t.Errorf("completion %s: code %d, no %q", shell, code, marker)
		}
	}
	// What kubectl's completion asks the kubectl_complete-dualstack shim.
	code, out, _ := run(t, "kubectl-dualstack", "__complete", "st")
	if code != 0 || !strings.Contains(out, "status") {
		t.Fatalf("__complete st: code %d, %q", code, out)
	}
	code, out, _ = run(t, "kubectl-dualstack", "__complete", "status", "-o", "")
	if code != 0 || !strings.Contains(out, "json") {
		t.Fatalf("__complete -o: code %d, %q", code, out)
	}
}

// Guard against a subcommand writing to os.Stdout directly: Main's output
// must all land in the injected streams.
func TestOutputGoesToInjectedStreams(t *testing.T) {
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	if code := Main(context.Background(), []string{"kubectl-dualstack", "--help"}, streams); code != 0 || out.Len() == 0 {
		t.Fatalf("code %d, %d bytes", code, out.Len())
	}
}

// TestVersionFromBuildInfo: without -ldflags the version and commit come
// from what the go command recorded; -ldflags win.
func TestVersionFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Version: "v0.3.1"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-30T10:00:00Z"}}}
	v := VersionInfo{Version: devVersion, GitCommit: unknown, BuildDate: unknown}
	fromBuildInfo(&v, bi)
	if v.Version != "v0.3.1" || v.GitCommit != "0123456789ab" || v.BuildDate != "2026-11-30T10:00:00Z" {
		t.Errorf("from build info: %+v", v)
	}
	v = VersionInfo{Version: "v1.0.0", GitCommit: "abc", BuildDate: "today"}
	fromBuildInfo(&v, bi)
	if v.Version != "v1.0.0" || v.GitCommit != "abc" || v.BuildDate != "today" {
		t.Errorf("ldflags must win: %+v", v)
	}
	v = VersionInfo{Version: devVersion, GitCommit: unknown, BuildDate: unknown}
	fromBuildInfo(&v, &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}})
	if v.Version != devVersion || v.GitCommit != unknown {
		t.Errorf("a build with nothing recorded: %+v", v)
	}
}

// TestUpgradeRefusesANegativeMaxAWSRPS: bad input, exit 2, before any
// cluster is read (as the aws subcommands do).
func TestUpgradeRefusesANegativeMaxAWSRPS(t *testing.T) {
	code, _, errOut := run(t, "kubectl-dualstack", "upgrade", "--max-aws-rps", "-1")
	if code != 2 || !strings.Contains(errOut, "--max-aws-rps must be positive") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
}
