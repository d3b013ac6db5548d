package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// fleetSize is N, the contexts of the fleet benchmark.
const fleetSize = 5

// BenchmarkFleetStatus: `status --all-contexts` over N = 5 clusters (each a
// real apiserver with 100 nodes, 200 Services and 400 pods) against the
// slowest single `status --context` of them, measured alternately in the
// same run. The fleet reads its clusters concurrently, so it should take
// about as long as its slowest cluster, not the sum; the sum of the singles
// is reported too. All five apiservers share this machine's cores with the
// plugin, which a real fleet (remote clusters) does not: the ratio here is
// the pessimistic one.
func BenchmarkFleetStatus(b *testing.B) {
	ctx := context.Background()
	spec := harness.ScaleClusterSpec{Nodes: scaled(100), Services: scaled(200), Pods: scaled(400)}
	clusters := map[string]*rest.Config{}
	var names []string
	for i := range fleetSize {
		api, err := harness.StartAPIServer(b, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16,fd00:10:96::/112"})
		if err != nil {
			b.Fatal(err)
		}
		if err := harness.InstallCRDs(ctx, api.Config); err != nil {
			b.Fatal(err)
		}
		if err := harness.BuildScaleCluster(ctx, api, spec); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("cluster-%d", i+1)
		clusters[name] = api.Config
		names = append(names, name)
	}
	kubeconfig := writeFleetKubeconfig(b, clusters)
	env := kubeEnv(b, kubeconfig)
	plugin := filepath.Join(binDir, "kubectl-dualstack")
	ok := []int{1} // no Istio here: the mesh checks fail
	// By name: the kubeconfig's "dead" context is not part of this fleet.
	fleetArgs := []string{"status", "--contexts", strings.Join(names, ","), "-o", "json"}

	// Warm-up, and a check that the fleet read every cluster in full.
	var res fleetJSON
	if err := json.Unmarshal([]byte(measure(b, env, ok, plugin, fleetArgs...).stdout), &res); err != nil {
		b.Fatal(err)
	}
	if len(res.Contexts) != fleetSize || res.Summary.Unreachable != 0 {
		b.Fatalf("fleet: %+v", res.Summary)
	}
	for _, n := range names {
		measure(b, env, ok, plugin, "status", "--context", n, "-o", "json")
	}

	single := make(map[string]time.Duration, fleetSize)
	var fleet time.Duration
	var fleetRSS, singleRSS int64
	n := 0
	for b.Loop() {
		for _, name := range names {
			s := measure(b, env, ok, plugin, "status", "--context", name, "-o", "json")
			single[name] += s.wall
			singleRSS = max(singleRSS, s.maxRSS)
		}
		f := measure(b, env, ok, plugin, fleetArgs...)
		fleet += f.wall
		fleetRSS = max(fleetRSS, f.maxRSS)
		n++
	}
	var slowest, sum time.Duration
	for _, d := range single {
		slowest = max(slowest, d)
		sum += d
	}
	per := func(d time.Duration) float64 { return d.Seconds() / float64(n) }
	b.ReportMetric(fleetSize, "contexts")
	b.ReportMetric(float64(spec.Nodes), "nodes-each")
	b.ReportMetric(per(fleet), "fleet-s")
	b.ReportMetric(per(slowest), "slowest-single-s")
	b.ReportMetric(per(sum), "sum-singles-s")
	b.ReportMetric(mib(fleetRSS), "fleet-MiB")
	b.ReportMetric(mib(singleRSS), "single-MiB")
}

// BenchmarkReleaseBinary: the size of the binary as releases build it
// (.goreleaser.yaml: CGO_ENABLED=0, -trimpath, -ldflags "-s -w") next to
// kubectl's on this machine.
func BenchmarkReleaseBinary(b *testing.B) {
	out := filepath.Join(b.TempDir(), "kubectl-dualstack")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/kubectl-dualstack")
	build.Dir = repoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, msg)
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		b.Fatal(err)
	}
	kubectl, err = filepath.EvalSymlinks(kubectl)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
	}
	for metric, path := range map[string]string{"release-binary-MiB": out, "kubectl-binary-MiB": kubectl} {
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(mib(fi.Size()), metric)
	}
}
