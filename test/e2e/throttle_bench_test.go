package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// BenchmarkThrottledApply: `aws apply --yes` on the 200-subnet,
// 2,000-instance VPC (-short: 20 and 200) with AWS's request throttling
// modelled in the proxy, with the buckets to itself and with 30% of every
// bucket taken by other tools of the account. Against its anchor, the
// bucket-implied minimum: for each bucket the calls that went through,
// (calls - what the bucket holds at the start) / what it refills for us,
// the largest, computed by the same model (harness.BucketMinimum) from the
// same run's calls. Also: throttled answers, failed changes (goal 0), and
// the calls that reached AWS against one per planned change (the count
// before rules were batched per group and direction). The loop's first
// iteration is the apply; any further one applies again and must find
// nothing to do (reported as rerun-mutating-calls).
func BenchmarkThrottledApply(b *testing.B) {
	for _, share := range []float64{0, 0.3} {
		b.Run(fmt.Sprintf("others=%.0f%%", share*100), func(b *testing.B) {
			benchThrottledApply(b, scaled(200), scaled(2000), share)
		})
	}
}

func benchThrottledApply(b *testing.B, subnets, instances int, share float64) {
	kubeconfig, proxy, env := benchWorld(b, moto.IPIOptions{Subnets: subnets, Workers: instances - 3})
	env = append(kubeEnv(b, kubeconfig), env...)
	plugin := filepath.Join(binDir, "kubectl-dualstack")
	p := measure(b, env, nil, plugin, "aws", "plan", "-o", "json")
	var plan struct {
		Changes []json.RawMessage `json:"changes"`
	}
	if err := json.Unmarshal([]byte(p.stdout), &plan); err != nil {
		b.Fatalf("aws plan -o json: %v\n%s", err, p.stdout)
	}

	proxy.Throttle(&harness.ThrottleOptions{Background: share})
	var apply measured
	var ops []harness.AWSOp
	rerunMutating, n := 0, 0
	for b.Loop() {
		proxy.Reset()
		a := measure(b, env, []int{1}, plugin, "aws", "apply", "--yes", "-o", "json")
		if n == 0 {
			apply, ops = a, proxy.Ops()
		} else {
			for _, op := range proxy.Ops() {
				if isMutating(op) && !op.Throttled {
					rerunMutating++
				}
			}
		}
		n++
	}
	var res struct {
		Changes []struct{ Status string } `json:"changes"`
	}
	if err := json.Unmarshal([]byte(apply.stdout), &res); err != nil {
		b.Fatalf("aws apply -o json: %v\nstderr:\n%s", err, apply.stderr)
	}
	failed := 0
	for _, c := range res.Changes {
		if c.Status != "applied" {
			failed++
		}
	}
	mutating, throttled := 0, 0
	for _, op := range ops {
		switch {
		case op.Throttled:
			throttled++
		case isMutating(op):
			mutating++
		}
	}
	least, which := harness.BucketMinimum(ops, share)
	b.Logf("others %.0f%%: apply %s (exit %d), bucket-implied minimum %s (%s); %d throttled answers, %d of %d changes not applied",
		share*100, apply.wall.Round(1e6), apply.code, least.Round(1e6), which, throttled, failed, len(res.Changes))
	b.ReportMetric(float64(subnets), "subnets")
	b.ReportMetric(float64(instances), "instances")
	b.ReportMetric(share*100, "others-%")
	b.ReportMetric(apply.wall.Seconds(), "apply-s")
	b.ReportMetric(least.Seconds(), "bucket-min-s")
	b.ReportMetric(float64(throttled), "throttled")
	b.ReportMetric(float64(failed), "failed-changes")
	b.ReportMetric(float64(mutating), "mutating-calls")
	b.ReportMetric(float64(len(plan.Changes)), "planned-changes")
	if n > 1 {
		b.ReportMetric(float64(rerunMutating)/float64(n-1), "rerun-mutating-calls")
	}
}
