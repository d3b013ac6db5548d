// Command benchtable turns the output of the e2e benchmarks (`go test
// -bench`, read from stdin or the files named) into the markdown table the
// README links to: each figure next to its anchor from the same run, the
// ratio, the target and whether it holds.
//
//	cd test && go test -run '^$' -bench . ./e2e/ | go run ./cmd/benchtable
package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(files []string, stdin io.Reader, out io.Writer) error {
	r := parsed{metrics: map[string]map[string]float64{}}
	if len(files) == 0 {
		if err := r.read(stdin); err != nil {
			return err
		}
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = r.read(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
	}
	if len(r.metrics) == 0 {
		return fmt.Errorf("no benchmark results in the input (run go test -bench first)")
	}
	_, err := io.WriteString(out, r.table())
	return err
}

// parsed holds each benchmark's metrics by unit, and the machine lines.
type parsed struct {
	metrics map[string]map[string]float64 // "BenchmarkScaleStatus" -> "status-s" -> 0.2
	cpu     string
}

var procSuffix = regexp.MustCompile(`-\d+$`)

func (p *parsed) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	// The apiserver logs to the same stream, so a result can come on a line
	// of its own after "BenchmarkX-2 \t" and a log line.
	pending := ""
	for sc.Scan() {
		line := sc.Text()
		if cpu, ok := strings.CutPrefix(line, "cpu: "); ok {
			p.cpu = cpu
			continue
		}
		fields := strings.Fields(line)
		if len(fields) > 0 && strings.HasPrefix(fields[0], "Benchmark") {
			pending = procSuffix.ReplaceAllString(fields[0], "")
			fields = fields[1:]
		}
		if len(fields) < 3 || len(fields)%2 != 1 || fields[2] != "ns/op" || pending == "" {
			continue
		}
		if _, err := strconv.Atoi(fields[0]); err != nil {
			continue
		}
		m := map[string]float64{}
		for i := 1; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return fmt.Errorf("%q: %w", line, err)
			}
			m[fields[i+1]] = v
		}
		p.metrics[pending] = m
		pending = ""
	}
	return sc.Err()
}

// get returns a metric and whether the benchmark reported it.
func (p *parsed) get(bench, unit string) (float64, bool) {
	v, ok := p.metrics[bench][unit]
	return v, ok
}

// row is one line of the table.
type row struct {
	measure, ours, anchor, ratio, target, holds string
}

// compare builds a row of ours against an anchor with a maximum ratio.
func (p *parsed) compare(measure, bench, oursUnit, anchorName, anchorUnit string, format func(float64) string, maxRatio float64, target string) row {
	r := row{measure: measure, ours: "—", anchor: anchorName + ": —", ratio: "—", target: target, holds: "not measured"}
	ours, ok1 := p.get(bench, oursUnit)
	anchor, ok2 := p.get(bench, anchorUnit)
	if ok1 {
		r.ours = format(ours)
	}
	if ok2 {
		r.anchor = anchorName + ": " + format(anchor)
	}
	if ok1 && ok2 && anchor > 0 {
		ratio := ours / anchor
		r.ratio = fmt.Sprintf("%.2fx", ratio)
		r.holds = yesNo(ratio <= maxRatio)
	}
	return r
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func seconds(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.0f ms", v*1000)
	}
	return fmt.Sprintf("%.2f s", v)
}
func millis(v float64) string { return fmt.Sprintf("%.1f ms", v) }
func mebi(v float64) string   { return fmt.Sprintf("%.0f MiB", v) }
func count(v float64) string  { return commas(int64(math.Round(v))) }

// commas writes 35000 as 35,000.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func (p *parsed) size(bench string, units ...string) string {
	var parts []string
	for _, u := range units {
		if v, ok := p.get(bench, u); ok {
			parts = append(parts, count(v)+" "+u)
		}
	}
	if len(parts) == 0 {
		return "not run"
	}
	return strings.Join(parts, ", ")
}

func (p *parsed) table() string {
	var rows []row
	section := func(title string) { rows = append(rows, row{measure: "**" + title + "**"}) }

	const st = "BenchmarkScaleStatus"
	section("status (" + p.size(st, "nodes", "services", "pods") + ")")
	// The anchor reads the objects status reads in bulk: the same nodes,
	// (since the services check) the same Services and (since the pods
	// check) the same pods. Logs from before carry the narrower anchors
	// under their own names.
	kubectlGet, anchor := "`kubectl get nodes,services,pods -A -o json`", "kubectl-withpods"
	if _, ok := p.get(st, "kubectl-withpods-s"); !ok {
		kubectlGet, anchor = "`kubectl get nodes,services -A -o json`", "kubectl-bulk"
	}
	if _, ok := p.get(st, anchor+"-s"); !ok {
		kubectlGet, anchor = "`kubectl get nodes -o json`", "kubectl-nodes"
	}
	rows = append(rows,
		p.compare("wall time", st, "status-s", kubectlGet, anchor+"-s", seconds, 1.5, "<= 1.5x"),
		p.compare("peak memory (maxrss)", st, "status-MiB", kubectlGet, anchor+"-MiB", mebi, 1.5, "<= 1.5x"),
	)
	rows = append(rows, p.statusRequests(st, kubectlGet, anchor))

	const aws, small = "BenchmarkScaleAWS/large", "BenchmarkScaleAWS/small"
	section("aws (" + p.size(aws, "subnets", "instances") + ")")
	smallName := "at " + p.size(small, "subnets", "instances")
	// Describe calls are compared with the small VPC's from the same run.
	describe := func(measure, unit string) row {
		r := row{measure: measure, ours: p.value(aws, unit, count), anchor: smallName + ": " + p.value(small, unit, count),
			ratio: "—", target: "constant beyond pagination", holds: "not measured"}
		v, ok1 := p.get(aws, unit)
		base, ok2 := p.get(small, unit)
		if ok1 && ok2 {
			r.ratio = fmt.Sprintf("%+d calls", int64(math.Round(v-base)))
			r.holds = yesNo(v-base <= 4) // a second page of instances, ENIs, ...
		}
		return r
	}
	wall := func(measure, unit, target string) row {
		return row{measure: measure, ours: p.value(aws, unit, seconds), anchor: smallName + ": " + p.value(small, unit, seconds),
			ratio: "—", target: target, holds: "—"}
	}
	planWall := wall("`aws plan` wall time", "plan-s", "—")
	if v, ok := p.get(aws, "moto-describe-s"); ok {
		planWall.anchor = "moto answering the big Describe lists directly: " + seconds(v) + "; " + planWall.anchor
		if plan, ok := p.get(aws, "plan-s"); ok {
			planWall.ratio = fmt.Sprintf("%.2fx", plan/v)
		}
	}
	// Round trips matter where moto's own time does not drown them: the
	// small VPC.
	rtt := p.roundTrips(small, smallName)
	rows = append(rows,
		planWall, rtt,
		describe("`aws plan` Describe calls", "plan-describe-calls"),
		wall("`aws apply --yes` wall time", "apply-s", "independent changes in parallel (--parallel 4)"),
		describe("`aws apply` Describe calls", "apply-describe-calls"),
	)
	mut := row{measure: "`aws apply` mutating calls", ours: p.value(aws, "apply-mutating-calls", count), anchor: "planned changes: " + p.value(aws, "planned-changes", count), ratio: "—", target: "at most one per change (rules: one call per group and direction)", holds: "not measured"}
	if m, ok1 := p.get(aws, "apply-mutating-calls"); ok1 {
		if c, ok2 := p.get(aws, "planned-changes"); ok2 && c > 0 {
			mut.ratio = fmt.Sprintf("%.2f per change", m/c)
			mut.holds = yesNo(m <= c)
		}
	}
	rows = append(rows, mut)
	jw := row{measure: "`aws apply` journal writes", ours: p.value(aws, "apply-journal-writes", count), anchor: "planned changes: " + p.value(aws, "planned-changes", count),
		ratio: "—", target: "batched: about one per 64 changes, plus one per phase", holds: "not measured"}
	if w, ok1 := p.get(aws, "apply-journal-writes"); ok1 {
		if c, ok2 := p.get(aws, "planned-changes"); ok2 && c > 0 {
			jw.ratio = fmt.Sprintf("%.1f changes per write", c/math.Max(w, 1))
			jw.holds = yesNo(w <= math.Ceil(c/64)+10)
		}
	}
	rows = append(rows, jw)
	rows = append(rows, p.throttledRows()...)

	const su = "BenchmarkStartup"
	section("start-up")
	kubectlVersion := "`kubectl version --client`"
	rows = append(rows,
		p.compare("`kubectl-dualstack version` wall time", su, "version-ms", kubectlVersion, "kubectl-version-ms", millis, 1, "no slower"),
		p.compare("`kubectl-dualstack --help` wall time", su, "help-ms", kubectlVersion, "kubectl-version-ms", millis, 1, "no slower"),
		p.compare("binary size", su, "binary-MiB", "kubectl", "kubectl-binary-MiB", mebi, math.Inf(1), "—"),
	)
	rows[len(rows)-1].holds = "—"
	rows = append(rows, p.compare("release binary size (-trimpath -s -w)", su, "release-binary-MiB", "kubectl", "kubectl-binary-MiB", mebi, math.Inf(1), "—"))
	rows[len(rows)-1].holds = "—"

	const fl = "BenchmarkFleetStatus"
	section("fleet status (" + p.size(fl, "contexts") + " of " + p.value(fl, "nodes-each", count) + " nodes each)")
	fleetRow := func(setting, prefix string) row {
		r := p.compare("`status --contexts` (all N) wall time, "+setting, fl, prefix+"fleet-s", "the slowest single `status --context`", prefix+"slowest-single-s", seconds, 1.3, "<= 1.3x")
		if sum, ok := p.get(fl, prefix+"sum-singles-s"); ok {
			r.anchor += "; the N one after another: " + seconds(sum)
		}
		return r
	}
	rows = append(rows,
		fleetRow("clusters 20 ms away (a delay line each)", "rtt20ms-"),
		fleetRow("on loopback (the N apiservers share the 2 cores with it)", ""),
		p.compare("peak memory (maxrss)", fl, "fleet-MiB", "a single `status`", "single-MiB", mebi, math.Inf(1), "—"))
	rows[len(rows)-1].holds = "—"

	const va = "BenchmarkValidate"
	section("validate (sandbox, pods ready)")
	rows = append(rows,
		row{measure: "wall time", ours: p.value(va, "ns/op", func(v float64) string { return seconds(v / 1e9) }), anchor: "—", ratio: "—", target: "—", holds: "—"},
		row{measure: "API requests", ours: p.value(va, "api-calls/op", count), anchor: "—", ratio: "—", target: "—", holds: "—"},
	)

	var b strings.Builder
	b.WriteString("| measure | kubectl-dualstack | anchor (same run) | ratio | target | holds |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.measure, r.ours, r.anchor, r.ratio, r.target, r.holds)
	}
	if p.cpu != "" {
		fmt.Fprintf(&b, "\nMeasured on %s.\n", p.cpu)
	}
	return b.String()
}

// statusRequests: status's API requests against its own on a small
// cluster in the same run; only the list pages (nodes, and every Service
// where the log has them) may grow. kubectl's requests for the same objects
// are shown, not compared (it pages too).
func (p *parsed) statusRequests(st, kubectlGet, anchor string) row {
	r := row{measure: "API requests", ours: "—", anchor: "status at a small cluster: —", ratio: "—", target: "constant beyond pagination", holds: "not measured"}
	n, ok1 := p.get(st, "status-requests")
	pages := p.pages(st, "status")
	if ok1 {
		r.ours = fmt.Sprintf("%s (%s of 500 + %s)", count(n), pageCount(pages), count(n-pages))
	}
	sn, ok2 := p.get(st, "small-status-requests")
	spages := p.pages(st, "small-status")
	if ok2 {
		nodes, _ := p.get(st, "small-nodes")
		r.anchor = fmt.Sprintf("status at %s nodes: %s (%s + %s)", count(nodes), count(sn), pageCount(spages), count(sn-spages))
	}
	if k, ok := p.get(st, anchor+"-requests"); ok {
		r.anchor += "; " + kubectlGet + ": " + count(k)
	}
	if ok1 && ok2 {
		extra := int64(math.Round((n - pages) - (sn - spages)))
		r.ratio = fmt.Sprintf("%+d beyond the list pages", extra)
		r.holds = yesNo(extra <= 0)
	}
	return r
}

// pages is the list pages of prefix's run: node pages, plus Service and
// pod pages where the log has them.
func (p *parsed) pages(st, prefix string) float64 {
	n, _ := p.get(st, prefix+"-node-pages")
	s, _ := p.get(st, prefix+"-service-pages")
	q, _ := p.get(st, prefix+"-pod-pages")
	return n + s + q
}

func pageCount(v float64) string {
	if math.Round(v) == 1 {
		return "1 list page"
	}
	return count(v) + " list pages"
}

// roundTrips: the plan with a region's round trip on every call against
// the same plan with its calls let through one at a time, both measured.
// Logs from before that anchor was measured carry a modelled one (the plan
// without latency plus one round trip per call): it is shown as modelled
// and decides nothing.
func (p *parsed) roundTrips(small, smallName string) row {
	r := row{measure: "`aws plan` with 100 ms per AWS call (a region's round trip), " + smallName, ours: p.value(small, "plan-rtt100ms-s", seconds),
		anchor: "the same plan, its calls one at a time: —", ratio: "—", target: "independent calls concurrent", holds: "not measured"}
	v, ok := p.get(small, "plan-rtt100ms-s")
	if serial, ok2 := p.get(small, "plan-rtt100ms-serial-s"); ok2 {
		r.anchor = "the same plan, its calls let through one at a time: " + seconds(serial)
		if calls, ok3 := p.get(small, "plan-rtt100ms-calls"); ok3 {
			r.anchor += fmt.Sprintf(" (%s calls each)", count(calls))
		}
		if ok && serial > 0 {
			r.ratio = fmt.Sprintf("%.2fx", v/serial)
			r.holds = yesNo(v < serial)
		}
		return r
	}
	if model, ok2 := p.get(small, "plan-rtt100ms-sequential-s"); ok2 {
		r.anchor = "modelled, not measured (the plan without latency + 100 ms per call): " + seconds(model)
		if ok && model > 0 {
			r.ratio = fmt.Sprintf("%.2fx", v/model)
		}
		r.holds = "— (modelled anchor)"
	}
	return r
}

// value formats a metric, or "—" when the benchmark did not report it.
func (p *parsed) value(bench, unit string, format func(float64) string) string {
	if v, ok := p.get(bench, unit); ok {
		return format(v)
	}
	return "—"
}
