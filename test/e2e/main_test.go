// Package e2e runs the built plugin binary, as a user would, against a real
// kube-apiserver (in process) and moto. It is the one package that links the
// apiserver, so the heavy link happens once.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// binDir holds the built kubectl-dualstack, its oc-dualstack copy and the
// completion shim; it goes first on PATH of every command a test runs.
var binDir string

// awsTLS is the package's moto, served over TLS so the Infrastructure's
// https serviceEndpoints can point at it; reset before each test that uses it.
var awsTLS *moto.Server

// e2eVersion is stamped into the test build, so tests can tell it is theirs.
const e2eVersion = "v0.0.0-e2e"

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "dualstack-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if err := buildPlugin(dir); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	awsTLS, err = moto.Start(ctx, moto.Options{TLS: true})
	if err != nil {
		return 0, err
	}
	defer awsTLS.Stop()
	return m.Run(), nil
}

// repoRoot is the main module's directory (test/ is inside it).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// buildPlugin builds the binary from the main module as `make build` does
// and installs it under both names plus the completion shim.
func buildPlugin(dir string) error {
	root := repoRoot()
	out := filepath.Join(dir, "kubectl-dualstack")
	cmd := exec.Command("go", "build", "-o", out,
		"-ldflags", "-X github.com/kubectl-dualstack/kubectl-dualstack/pkg/plugin.version="+e2eVersion,
		"./cmd/kubectl-dualstack")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build and the releases
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, b)
	}
	if err := os.Symlink(out, filepath.Join(dir, "oc-dualstack")); err != nil {
		return err
	}
	shim, err := os.ReadFile(filepath.Join(root, "hack", "kubectl_complete-dualstack"))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "kubectl_complete-dualstack"), shim, 0o755)
}

// result of one command run.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.Code, r.Stdout, r.Stderr)
}

// runCmd runs a program from binDir or PATH with binDir first on PATH, the
// given kubeconfig and extra environment, and no terminal on stdin.
func runCmd(t *testing.T, kubeconfig string, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := name
	if _, err := os.Stat(filepath.Join(binDir, name)); err == nil {
		path = filepath.Join(binDir, name) // exec looks names up in this process's PATH
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(),
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KUBECONFIG="+kubeconfig,
		"HOME="+t.TempDir(), // no user kubeconfig, cache or AWS profile leaks in
		"NO_COLOR=1",
	)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running %s %s: %v", name, strings.Join(args, " "), err)
	}
	return r
}

// plugin runs `kubectl dualstack ARGS` through the real kubectl, so plugin
// discovery is part of every test.
func plugin(t *testing.T, kubeconfig string, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, kubeconfig, env, "kubectl", append([]string{"dualstack"}, args...)...)
}

// startAPIServer starts a kube-apiserver with the project's CRDs for one test.
func startAPIServer(t *testing.T, opts harness.APIServerOptions) *harness.APIServer {
	t.Helper()
	api, err := harness.StartAPIServer(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := harness.InstallCRDs(context.Background(), api.Config); err != nil {
		t.Fatal(err)
	}
	return api
}

// openShiftOnAWS resets moto and builds the OpenShift-IPI-on-AWS world in it
// and in a fresh apiserver. The returned env reaches moto from the plugin.
func openShiftOnAWS(t *testing.T, opts harness.OpenShiftOnAWSOptions) (*harness.APIServer, *harness.OpenShiftOnAWS, []string) {
	t.Helper()
	return openShiftOnAWSWith(t, harness.APIServerOptions{}, opts)
}

// openShiftOnAWSWith is openShiftOnAWS on an apiserver started with apiOpts
// (e.g. dual-stack service ranges, as after the overlay conversion).
func openShiftOnAWSWith(t *testing.T, apiOpts harness.APIServerOptions, opts harness.OpenShiftOnAWSOptions) (*harness.APIServer, *harness.OpenShiftOnAWS, []string) {
	t.Helper()
	ctx := context.Background()
	if err := awsTLS.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	api := startAPIServer(t, apiOpts)
	world, err := harness.BuildOpenShiftOnAWS(ctx, api, awsTLS, opts)
	if err != nil {
		t.Fatal(err)
	}
	return api, world, awsTLS.Env()
}

// resolverFor asks one DNS server (host:port) only.
func resolverFor(server string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}
