package probe

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

// WatchReport is what `probe watch -o json|yaml` prints and what upgrade
// reports as its availability. Field names are a stable contract.
type WatchReport struct {
	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	DurationSeconds float64   `json:"durationSeconds"`
	IntervalMs      int64     `json:"intervalMs"`
	// Targets has one entry per target and family, in the order given,
	// IPv4 first.
	Targets []LaneStats `json:"targets"`
	// Phases is what each family saw during each phase of an upgrade.
	Phases []PhaseAvailability `json:"phases,omitempty"`
	// Interrupted says the run was stopped (Ctrl-C) before --duration.
	Interrupted bool `json:"interrupted,omitempty"`
	// Files are what --report-dir wrote.
	Files []string `json:"files,omitempty"`
}

// LaneStats is what one family saw of one target.
type LaneStats struct {
	Target   string `json:"target"`
	Family   Family `json:"family"`
	Requests int    `json:"requests"`
	Failures int    `json:"failures"`
	// Lost counts requests whose result did not come back; they are in
	// Requests but neither failures nor successes.
	Lost int `json:"lost,omitempty"`
	// LongestOutageSeconds is the longest run of failed requests: from the
	// first failure of the run to the next success (or, when none followed,
	// to the end of the run or phase).
	LongestOutageSeconds float64    `json:"longestOutageSeconds"`
	LongestOutageStart   *time.Time `json:"longestOutageStart,omitempty"`
	// FirstSuccess is when the first successful request started; null when
	// none succeeded.
	FirstSuccess *time.Time `json:"firstSuccess"`
	// P50Ms and P99Ms are the latency of the successful requests.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	// LastError is the last failure's reason.
	LastError string `json:"lastError,omitempty"`
}

// PhaseAvailability is what each family saw of each target during one phase.
type PhaseAvailability struct {
	Name    string      `json:"name"`
	Start   time.Time   `json:"start"`
	End     time.Time   `json:"end"`
	Targets []LaneStats `json:"targets"`
}

// Lane names one target and family.
type Lane struct {
	Target string
	Family Family
}

// Lanes are the watcher's target and family pairs, in report order.
func (w *Watcher) Lanes() []Lane {
	var out []Lane
	for _, t := range w.Targets {
		for _, f := range Families {
			if slices.Contains(t.Families, f) {
				out = append(out, Lane{t.Name, f})
			}
		}
	}
	return out
}

// Report summarises the run so far (or the whole run, after Run).
func (w *Watcher) Report() WatchReport {
	w.mu.Lock()
	start, end := w.start, w.end
	samples := append([]Sample(nil), w.samples...)
	marks := append([]Mark(nil), w.marks...)
	w.mu.Unlock()
	if end.IsZero() {
		end = w.clock()
	}
	r := WatchReport{Start: start, End: end, DurationSeconds: round3(end.Sub(start).Seconds()), IntervalMs: w.Interval.Milliseconds()}
	sort.SliceStable(samples, func(i, j int) bool { return samples[i].Time.Before(samples[j].Time) })
	lanes := w.Lanes()
	r.Targets = laneStats(lanes, samples, end)
	for _, m := range marks {
		if m.End.IsZero() {
			m.End = end
		}
		var in []Sample
		for _, s := range samples {
			if !s.Time.Before(m.Start) && s.Time.Before(m.End) {
				in = append(in, s)
			}
		}
		r.Phases = append(r.Phases, PhaseAvailability{Name: m.Name, Start: m.Start, End: m.End, Targets: laneStats(lanes, in, m.End)})
	}
	return r
}

// Marks returns the named stretches so far.
func (w *Watcher) Marks() []Mark {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Mark(nil), w.marks...)
}

// laneStats summarises samples (sorted by time) per lane; end closes an
// outage that lasts to the end.
func laneStats(lanes []Lane, samples []Sample, end time.Time) []LaneStats {
	out := make([]LaneStats, 0, len(lanes))
	for _, l := range lanes {
		st := LaneStats{Target: l.Target, Family: l.Family}
		var latencies []float64
		var runStart, runEnd time.Time // the current run of failures
		inRun := false
		closeRun := func(until time.Time) {
			if !inRun {
				return
			}
			inRun = false
			if d := until.Sub(runStart).Seconds(); d > st.LongestOutageSeconds || st.LongestOutageStart == nil {
				st.LongestOutageSeconds = round3(d)
				t := runStart
				st.LongestOutageStart = &t
			}
		}
		for _, s := range samples {
			if s.Target != l.Target || s.Family != l.Family {
				continue
			}
			st.Requests++
			switch {
			case s.Lost:
				st.Lost++
			case s.OK:
				closeRun(s.Time)
				if st.FirstSuccess == nil {
					t := s.Time
					st.FirstSuccess = &t
				}
				latencies = append(latencies, float64(s.Latency.Microseconds())/1000)
			default:
				st.Failures++
				st.LastError = s.Error
				if !inRun {
					inRun, runStart = true, s.Time
				}
				if e := s.Time.Add(s.Latency); e.After(runEnd) {
					runEnd = e
				}
			}
		}
		if inRun {
			// No success came: the outage lasted at least until the end
			// of the window (the run, or the phase).
			closeRun(later(runEnd, end))
		}
		st.P50Ms, st.P99Ms = percentile(latencies, 50), percentile(latencies, 99)
		out = append(out, st)
	}
	return out
}

// percentile is the nearest-rank percentile, to 0.1 ms.
func percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	v := slices.Clone(values)
	slices.Sort(v)
	rank := int(math.Ceil(p/100*float64(len(v)))) - 1
	rank = max(0, min(rank, len(v)-1))
	return math.Round(v[rank]*10) / 10
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// Failed says whether any family saw a failed request of any target.
func (r WatchReport) Failed() bool {
	return slices.ContainsFunc(r.Targets, func(l LaneStats) bool { return l.Failures > 0 })
}

// Describe is one lane's numbers on one line, the same in the table, the
// JUnit and the logs.
func (l LaneStats) Describe() string {
	msg := fmt.Sprintf("requests=%d failures=%d longestOutageSeconds=%.3f p50Ms=%.1f p99Ms=%.1f", l.Requests, l.Failures, l.LongestOutageSeconds, l.P50Ms, l.P99Ms)
	if l.Lost > 0 {
		msg += fmt.Sprintf(" lost=%d", l.Lost)
	}
	if l.FirstSuccess != nil {
		msg += " firstSuccess=" + l.FirstSuccess.UTC().Format(time.RFC3339Nano)
	} else {
		msg += " firstSuccess=none"
	}
	if l.LastError != "" {
		msg += " lastError=" + l.LastError
	}
	return msg
}

// Checks turns the report into report checks, one per target and family
// (and, with phases, per phase): PASS with no failed request, else
// failed (FAIL, or WARN when the caller only informs, as upgrade does).
func (r WatchReport) Checks(failed report.Status) report.Report {
	var rep report.Report
	add := func(prefix string, lanes []LaneStats) {
		for _, l := range lanes {
			c := report.Check{Layer: "availability", Name: prefix + l.Target, Family: string(l.Family), Status: report.Pass, Message: l.Describe()}
			switch {
			case l.Failures > 0:
				c.Status = failed
				c.Remediation = fmt.Sprintf("%d of %d %s requests to %s failed; the longest outage was %.1fs", l.Failures, l.Requests, l.Family, l.Target, l.LongestOutageSeconds)
			case l.Requests == l.Lost:
				c.Status = report.Inconclusive
			}
			rep.Add(c)
		}
	}
	add("", r.Targets)
	for _, p := range r.Phases {
		add(p.Name+": ", p.Targets)
	}
	return rep
}
