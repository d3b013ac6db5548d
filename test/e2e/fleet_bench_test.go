package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// fleetSize is N, the contexts of the fleet benchmark.
const fleetSize = 5

// fleetRTT is the round trip to a remote cluster in the fleet benchmark's
// second measurement (clusters in another region, or behind a VPN).
const fleetRTT = 20 * time.Millisecond

// BenchmarkFleetStatus: `status --contexts` over N = 5 clusters (each a real
// apiserver with 100 nodes, 200 Services and 400 pods) against the slowest
// single `status --context` of them, measured alternately in the same run,
// twice: on loopback, and with each cluster behind a delay line of
// fleetRTT. The fleet reads its clusters concurrently, so it should take
// about as long as its slowest cluster, not the sum (also reported). On
// loopback the five apiservers share this machine's 2 cores with the plugin,
// so the work of five clusters queues for the same CPU, which remote
// clusters do not: that ratio is the pessimistic one.
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
	loopback := newFleetBench(b, writeFleetKubeconfig(b, clusters), names)
	remote := map[string]*rest.Config{}
	for name, cfg := range clusters {
		remote[name] = delayed(b, cfg, fleetRTT/2)
	}
	far := newFleetBench(b, writeFleetKubeconfig(b, remote), names)
	n := 0
	for b.Loop() {
		loopback.round(b)
		far.round(b)
		n++
	}

	b.ReportMetric(fleetSize, "contexts")
	b.ReportMetric(float64(spec.Nodes), "nodes-each")
	for prefix, fb := range map[string]*fleetBench{"": loopback, "rtt20ms-": far} {
		fleet, slowest, sum := fb.means(n)
		b.ReportMetric(fleet, prefix+"fleet-s")
		b.ReportMetric(slowest, prefix+"slowest-single-s")
		b.ReportMetric(sum, prefix+"sum-singles-s")
	}
	b.ReportMetric(mib(loopback.fleetRSS), "fleet-MiB")
	b.ReportMetric(mib(loopback.singleRSS), "single-MiB")
}

// fleetBench measures the fleet of one kubeconfig against each single
// status, alternately, a round at a time.
type fleetBench struct {
	env, names, fleetArgs []string
	single                map[string]time.Duration
	fleet                 time.Duration
	fleetRSS, singleRSS   int64
}

func newFleetBench(b *testing.B, kubeconfig string, names []string) *fleetBench {
	b.Helper()
	fb := &fleetBench{env: kubeEnv(b, kubeconfig), names: names, single: map[string]time.Duration{},
		// By name: the kubeconfig's "dead" context is not part of this fleet.
		fleetArgs: []string{"status", "--contexts", strings.Join(names, ","), "-o", "json"}}
	// Warm-up, and a check that the fleet read every cluster in full.
	var res fleetJSON
	if err := json.Unmarshal([]byte(measure(b, fb.env, fleetOK, fleetPlugin(), fb.fleetArgs...).stdout), &res); err != nil {
		b.Fatal(err)
	}
	if len(res.Contexts) != len(names) || res.Summary.Unreachable != 0 {
		b.Fatalf("fleet: %+v", res.Contexts)
	}
	for _, n := range names {
		measure(b, fb.env, fleetOK, fleetPlugin(), "status", "--context", n, "-o", "json")
	}
	return fb
}

// fleetOK: with no Istio in these clusters the mesh checks fail (exit 1).
var fleetOK = []int{1}

func fleetPlugin() string { return filepath.Join(binDir, "kubectl-dualstack") }

func (fb *fleetBench) round(b *testing.B) {
	for _, name := range fb.names {
		s := measure(b, fb.env, fleetOK, fleetPlugin(), "status", "--context", name, "-o", "json")
		fb.single[name] += s.wall
		fb.singleRSS = max(fb.singleRSS, s.maxRSS)
	}
	f := measure(b, fb.env, fleetOK, fleetPlugin(), fb.fleetArgs...)
	fb.fleet += f.wall
	fb.fleetRSS = max(fb.fleetRSS, f.maxRSS)
}

// means are the mean wall times over n rounds, in seconds: the fleet, the
// slowest single status and the singles one after another.
func (fb *fleetBench) means(n int) (fleet, slowest, sum float64) {
	var worst, total time.Duration
	for _, d := range fb.single {
		worst = max(worst, d)
		total += d
	}
	per := func(d time.Duration) float64 { return d.Seconds() / float64(n) }
	return per(fb.fleet), per(worst), per(total)
}

// delayed puts a delay line in front of an apiserver: every byte reaches
// the other side one-way later, in both directions, as over a network with
// a round trip of twice one-way; bandwidth is not limited. TLS passes
// through untouched (the certificate names 127.0.0.1, whatever the port).
func delayed(b *testing.B, cfg *rest.Config, oneWay time.Duration) *rest.Config {
	b.Helper()
	target := strings.TrimPrefix(cfg.Host, "https://")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			go delayLine(server, client, oneWay)
			go delayLine(client, server, oneWay)
		}
	}()
	out := rest.CopyConfig(cfg)
	out.Host = "https://" + l.Addr().String()
	return out
}

// delayLine copies from src to dst, each chunk oneWay after it was read.
func delayLine(dst, src net.Conn, oneWay time.Duration) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	queue := make(chan chunk, 1024)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{time.Now().Add(oneWay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}
