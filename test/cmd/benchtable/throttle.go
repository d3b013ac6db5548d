package main

import "fmt"

// throttledRows: `aws apply` under the proxy's model of AWS's request
// throttling (BenchmarkThrottledApply), with the buckets to itself and
// with a share taken by other tools: wall time against the bucket-implied
// minimum the same model computes from the same run's calls, throttled
// answers, failed changes, and the calls against one per planned change.
func (p *parsed) throttledRows() []row {
	var rows []row
	for _, others := range []string{"0", "30"} {
		bench := "BenchmarkThrottledApply/others=" + others + "%"
		if _, ok := p.get(bench, "apply-s"); !ok {
			continue
		}
		who := "the buckets to itself"
		if others != "0" {
			who = others + "% of every bucket taken by other tools"
		}
		if len(rows) == 0 {
			rows = append(rows, row{measure: "**aws apply under AWS's request throttling (" + p.size(bench, "subnets", "instances") + ")**"})
		}
		rows = append(rows, p.compare("`aws apply --yes` wall time, "+who, bench, "apply-s",
			"bucket-implied minimum (same model, same run)", "bucket-min-s", seconds, 1.15, "<= 1.15x"))
		rows = append(rows, row{measure: "RequestLimitExceeded / Throttling answers, " + who, ours: p.value(bench, "throttled", count),
			anchor: "—", ratio: "—", target: "ridden out (see failed changes)", holds: "—"})
		fc := row{measure: "failed changes, " + who, ours: p.value(bench, "failed-changes", count), anchor: "planned changes: " + p.value(bench, "planned-changes", count),
			ratio: "—", target: "0", holds: "not measured"}
		if f, ok := p.get(bench, "failed-changes"); ok {
			fc.holds = yesNo(f == 0)
		}
		rows = append(rows, fc)
		if others != "0" {
			continue
		}
		mut := row{measure: "mutating calls reaching AWS", ours: p.value(bench, "mutating-calls", count),
			anchor: "one per planned change, as before rules were batched: " + p.value(bench, "planned-changes", count), ratio: "—", target: "fewer", holds: "not measured"}
		if m, ok1 := p.get(bench, "mutating-calls"); ok1 {
			if c, ok2 := p.get(bench, "planned-changes"); ok2 && c > 0 {
				mut.ratio = fmt.Sprintf("%+d calls", int64(m-c))
				mut.holds = yesNo(m < c)
			}
		}
		rows = append(rows, mut)
	}
	return rows
}
