package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// benchWorld builds the OpenShift-on-AWS fixture for a benchmark and returns
// the kubeconfig and an environment that reaches moto through a recording proxy.
func benchWorld(b *testing.B, ipi moto.IPIOptions) (string, *harness.AWSProxy, []string) {
	b.Helper()
	ctx := context.Background()
	if err := awsTLS.Reset(ctx); err != nil {
		b.Fatal(err)
	}
	api, err := harness.StartAPIServer(b, harness.APIServerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := harness.InstallCRDs(ctx, api.Config); err != nil {
		b.Fatal(err)
	}
	if _, err := harness.BuildOpenShiftOnAWS(ctx, api, awsTLS, harness.OpenShiftOnAWSOptions{IPI: ipi}); err != nil {
		b.Fatal(err)
	}
	proxy, err := harness.StartAWSProxy(b, awsTLS.Endpoint(), awsTLS.CAPEM())
	if err != nil {
		b.Fatal(err)
	}
	return api.Kubeconfig, proxy, proxy.Env(awsTLS.Env())
}

// benchPlugin runs `kubectl dualstack ARGS` like plugin() does, for a benchmark.
func benchPlugin(b *testing.B, kubeconfig string, env []string, args ...string) {
	b.Helper()
	cmd := exec.Command("kubectl", append([]string{"dualstack"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KUBECONFIG="+kubeconfig, "HOME="+b.TempDir(), "NO_COLOR=1")
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}

func describeCalls(p *harness.AWSProxy) int {
	n := 0
	for _, op := range p.Ops() {
		if strings.HasPrefix(op.Action, "Describe") {
			n++
		}
	}
	return n
}

// BenchmarkAWSPlanDescribeCalls reports the Describe calls of one `aws plan`
// (metric describe-calls/op) as the VPC grows: it must stay constant, since
// every kind of resource is read in (1000-item) pages.
func BenchmarkAWSPlanDescribeCalls(b *testing.B) {
	for _, size := range []struct {
		name string
		ipi  moto.IPIOptions
	}{
		{"subnets=6", moto.IPIOptions{}},
		{"subnets=60", moto.IPIOptions{Subnets: 60}},
		{"instances=6", moto.IPIOptions{}},
		{"instances=60", moto.IPIOptions{Workers: 57}},
	} {
		b.Run(size.name, func(b *testing.B) {
			kubeconfig, proxy, env := benchWorld(b, size.ipi)
			proxy.Reset()
			b.ResetTimer()
			for b.Loop() {
				benchPlugin(b, kubeconfig, env, "aws", "plan", "-o", "json")
			}
			b.StopTimer()
			b.ReportMetric(float64(describeCalls(proxy))/float64(b.N), "describe-calls/op")
			b.ReportMetric(float64(len(proxy.Ops()))/float64(b.N), "aws-calls/op")
		})
	}
}

// BenchmarkAWSApply times `aws apply --yes` on the 6-subnet fixture and on a
// 60-subnet one (each iteration rolls back, untimed, before the next).
func BenchmarkAWSApply(b *testing.B) {
	for _, subnets := range []int{6, 60} {
		b.Run(fmt.Sprintf("subnets=%d", subnets), func(b *testing.B) {
			kubeconfig, proxy, env := benchWorld(b, moto.IPIOptions{Subnets: subnets})
			var total time.Duration
			n := 0
			for b.Loop() {
				start := time.Now()
				benchPlugin(b, kubeconfig, env, "aws", "apply", "--yes")
				total += time.Since(start)
				n++
				b.StopTimer()
				benchPlugin(b, kubeconfig, env, "aws", "rollback", "--yes")
				b.StartTimer()
			}
			b.ReportMetric(total.Seconds()/float64(n), "apply-s/op")
			b.ReportMetric(float64(len(proxy.Ops()))/float64(n), "aws-calls/op(apply+rollback)")
		})
	}
}
