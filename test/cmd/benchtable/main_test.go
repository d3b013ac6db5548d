package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
cpu: Test CPU @ 2.00GHz
BenchmarkScaleStatus
    scale_bench_test.go:216: created 500 nodes
BenchmarkScaleStatus-2   	       2	 3243541499 ns/op	 193.2 kubectl-nodes-MiB	 12.00 kubectl-nodes-requests	 3.069 kubectl-nodes-s	 500.0 nodes	 2000 pods	 1000 services	 81.60 status-MiB	 1.000 status-node-pages	 6.000 status-requests	 0.1742 status-s	 10.00 small-nodes	 1.000 small-status-node-pages	 6.000 small-status-requests
BenchmarkScaleAWS/small-2 	 2	 1 ns/op	 6 subnets	 6 instances	 0.4 plan-s	 15 plan-describe-calls	 44 planned-changes	 2 apply-s	 15 apply-describe-calls	 44 apply-mutating-calls	 0.9 plan-rtt100ms-s	 1.9 plan-rtt100ms-serial-s	 15 plan-rtt100ms-calls
BenchmarkScaleAWS/large-2 	 2	 1 ns/op	 20 subnets	 200 instances	 1.5 plan-s	 15 plan-describe-calls	 221 planned-changes	 12.3 apply-s	 17 apply-describe-calls	 230 apply-mutating-calls	 14 apply-journal-writes	 1.2 moto-describe-s
BenchmarkStartup-2 	 1	 1 ns/op	 144.8 binary-MiB	 22.25 help-ms	 54.69 kubectl-binary-MiB	 81.67 kubectl-version-ms	 22.54 version-ms
BenchmarkValidate-2 	I1125 09:30:59.725277    6718 serving.go:405] Generated self-signed cert
I1125 09:30:59.725277    6718 serving.go:405] more log
       2	 505677508 ns/op	        16.00 api-calls/op	         4.000 execs/op
PASS
`

func TestTable(t *testing.T) {
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(sample), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| **status (500 nodes, 1,000 services, 2,000 pods)** |",
		"| wall time | 174 ms | `kubectl get nodes -o json`: 3.07 s | 0.06x | <= 1.5x | yes |",
		"| peak memory (maxrss) | 82 MiB | `kubectl get nodes -o json`: 193 MiB | 0.42x | <= 1.5x | yes |",
		"| API requests | 6 (1 list page of 500 + 5) | status at 10 nodes: 6 (1 list page + 5); `kubectl get nodes -o json`: 12 | +0 beyond the list pages | constant beyond pagination | yes |",
		"| **aws (20 subnets, 200 instances)** |",
		"| `aws plan` wall time | 1.50 s | moto answering the big Describe lists directly: 1.20 s; at 6 subnets, 6 instances: 400 ms | 1.25x |",
		"| `aws plan` with 100 ms per AWS call (a region's round trip), at 6 subnets, 6 instances | 900 ms | the same plan, its calls let through one at a time: 1.90 s (15 calls each) | 0.47x | independent calls concurrent | yes |",
		"| `aws plan` Describe calls | 15 | at 6 subnets, 6 instances: 15 | +0 calls | constant beyond pagination | yes |",
		"| `aws apply --yes` wall time | 12.30 s | at 6 subnets, 6 instances: 2.00 s |",
		"| `aws apply` mutating calls | 230 | planned changes: 221 | 1.04 per change | at most one per change (rules: one call per group and direction) | **no** |",
		"| `aws apply` journal writes | 14 | planned changes: 221 | 15.8 changes per write | batched: about one per 64 changes, plus one per phase | yes |",
		"| `kubectl-dualstack version` wall time | 22.5 ms | `kubectl version --client`: 81.7 ms | 0.28x | no slower | yes |",
		"| wall time | 506 ms | — |",
		"| API requests | 16 | — |",
		"Measured on Test CPU @ 2.00GHz.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

func TestNoResults(t *testing.T) {
	if err := run(nil, strings.NewReader("FAIL\n"), &bytes.Buffer{}); err == nil {
		t.Fatal("no error for an input without results")
	}
}

// A log from before the anchors changed: the old status anchor (kubectl
// get nodes,services,pods) is not taken for the new one, and the modelled
// round-trip anchor is labelled as modelled and decides nothing.
func TestOldLogFillsNoHolds(t *testing.T) {
	const old = `BenchmarkScaleStatus-2 	 2	 1 ns/op	 193.2 kubectl-MiB	 73 kubectl-requests	 3.069 kubectl-s	 5000 nodes	 20000 pods	 10000 services	 55 status-MiB	 10 status-node-pages	 15 status-requests	 0.2 status-s
BenchmarkScaleAWS/small-2 	 2	 1 ns/op	 6 subnets	 6 instances	 0.9 plan-rtt100ms-s	 1.9 plan-rtt100ms-sequential-s
`
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(old), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| wall time | 200 ms | `kubectl get nodes -o json`: — | — | <= 1.5x | not measured |",
		"| peak memory (maxrss) | 55 MiB | `kubectl get nodes -o json`: — | — | <= 1.5x | not measured |",
		"| API requests | 15 (10 list pages of 500 + 5) | status at a small cluster: — | — | constant beyond pagination | not measured |",
		"| 900 ms | modelled, not measured (the plan without latency + 100 ms per call): 1.90 s | 0.47x | independent calls concurrent | — (modelled anchor) |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

// More requests beyond the list pages on the large cluster than on the
// small one: the row says it does not hold.
func TestStatusRequestsGrow(t *testing.T) {
	const log = `BenchmarkScaleStatus-2 	 2	 1 ns/op	 5000 nodes	 10 status-node-pages	 25 status-requests	 10 small-nodes	 1 small-status-node-pages	 6 small-status-requests
`
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(log), &out); err != nil {
		t.Fatal(err)
	}
	if want := "| API requests | 25 (10 list pages of 500 + 15) | status at 10 nodes: 6 (1 list page + 5) | +10 beyond the list pages | constant beyond pagination | **no** |"; !strings.Contains(out.String(), want) {
		t.Errorf("missing %q in\n%s", want, out.String())
	}
}

// A log with the Services check: the anchor reads the nodes and the
// Services, and the Service list pages count as list pages.
func TestStatusWithServicePages(t *testing.T) {
	const log = `BenchmarkScaleStatus-2 	 2	 1 ns/op	 5000 nodes	 10000 services	 0.3 status-s	 6.0 kubectl-bulk-s	 60 status-MiB	 300 kubectl-bulk-MiB	 10 status-node-pages	 20 status-service-pages	 36 status-requests	 40 kubectl-bulk-requests	 10 small-nodes	 1 small-status-node-pages	 1 small-status-service-pages	 7 small-status-requests
`
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(log), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| wall time | 300 ms | `kubectl get nodes,services -A -o json`: 6.00 s | 0.05x | <= 1.5x | yes |",
		"| API requests | 36 (30 list pages of 500 + 6) | status at 10 nodes: 7 (2 list pages + 5); `kubectl get nodes,services -A -o json`: 40 | +1 beyond the list pages | constant beyond pagination | **no** |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}

// A log with the pods check: the anchor reads nodes, Services and pods,
// and the pod list pages count as list pages.
func TestStatusWithPodPages(t *testing.T) {
	const log = `BenchmarkScaleStatus-2 	 2	 1 ns/op	 5000 nodes	 10000 services	 20000 pods	 1.0 status-s	 9.0 kubectl-withpods-s	 70 status-MiB	 900 kubectl-withpods-MiB	 10 status-node-pages	 21 status-service-pages	 40 status-pod-pages	 76 status-requests	 73 kubectl-withpods-requests	 10 small-nodes	 1 small-status-node-pages	 1 small-status-service-pages	 1 small-status-pod-pages	 8 small-status-requests
`
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(log), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| wall time | 1.00 s | `kubectl get nodes,services,pods -A -o json`: 9.00 s | 0.11x | <= 1.5x | yes |",
		"| API requests | 76 (71 list pages of 500 + 5) | status at 10 nodes: 8 (3 list pages + 5); `kubectl get nodes,services,pods -A -o json`: 73 | +0 beyond the list pages | constant beyond pagination | yes |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}
