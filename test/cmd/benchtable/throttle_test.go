package main

import (
	"strings"
	"testing"
)

func TestThrottledRows(t *testing.T) {
	log := `BenchmarkThrottledApply/others=0%-2 	       1	400000000000 ns/op	 380.0 bucket-min-s	 412.5 apply-s	 0 failed-changes	 2000 instances	 2401 mutating-calls	 0 others-%	 2426 planned-changes	 200.0 subnets	 3 throttled
BenchmarkThrottledApply/others=30%-2 	       1	600000000000 ns/op	 551.4 bucket-min-s	 650.0 apply-s	 1 failed-changes	 2000 instances	 2401 mutating-calls	 30 others-%	 2426 planned-changes	 200.0 subnets	 97 throttled
`
	var out strings.Builder
	if err := run(nil, strings.NewReader(log), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| **aws apply under AWS's request throttling (200 subnets, 2,000 instances)** |",
		"| `aws apply --yes` wall time, the buckets to itself | 412.50 s | bucket-implied minimum (same model, same run): 380.00 s | 1.09x | <= 1.15x | yes |",
		"| `aws apply --yes` wall time, 30% of every bucket taken by other tools | 650.00 s | bucket-implied minimum (same model, same run): 551.40 s | 1.18x | <= 1.15x | **no** |",
		"| failed changes, 30% of every bucket taken by other tools | 1 | planned changes: 2,426 | — | 0 | **no** |",
		"| mutating calls reaching AWS | 2,401 | one per planned change, as before rules were batched: 2,426 | -25 calls | fewer | yes |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}
