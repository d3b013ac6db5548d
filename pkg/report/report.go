// Package report is the result model shared by the commands that check
// things (status, validate): a list of checks, each PASS, WARN, FAIL, SKIP or
// INCONCLUSIVE, and a summary; printed as a table or as JSON/YAML with stable field names.
package report

import (
	"fmt"
	"io"
	"strings"

	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// Status is the verdict of one check.
type Status string

const (
	Pass Status = "PASS"
	Warn Status = "WARN"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
	// Inconclusive means the check ran but its result was lost (a dropped
	// exec stream, empty output): nothing was observed, so it never passes.
	Inconclusive Status = "INCONCLUSIVE"
)

// Layers of a dual-stack cluster, in the order they are reported.
const (
	LayerCluster  = "cluster"
	LayerUnderlay = "underlay"
	LayerOverlay  = "overlay"
	LayerMesh     = "mesh"
	LayerProof    = "proof" // validate's end-to-end checks
)

// Check is one verdict. Field names are part of the JSON/YAML contract.
type Check struct {
	Layer       string `json:"layer"`
	Name        string `json:"name"`
	Status      Status `json:"status"`
	Message     string `json:"message"`
	Remediation string `json:"remediation,omitempty"`
	// Family is IPv4 or IPv6 for checks made once per IP family.
	Family string `json:"family,omitempty"`
	// DurationMs is how long a check that does I/O took.
	DurationMs int64 `json:"durationMs,omitempty"`
}

// Summary counts checks by status.
type Summary struct {
	Total int `json:"total"`
	Pass  int `json:"pass"`
	Warn  int `json:"warn"`
	Fail  int `json:"fail"`
	Skip  int `json:"skip"`
	// Inconclusive counts checks whose result was lost.
	Inconclusive int `json:"inconclusive,omitempty"`
}

// Report is the whole result of a checking command.
type Report struct {
	Checks  []Check `json:"checks"`
	Summary Summary `json:"summary"`
}

// Add appends a check and keeps the summary in step.
func (r *Report) Add(c Check) {
	r.Checks = append(r.Checks, c)
	r.Summary.Total++
	switch c.Status {
	case Pass:
		r.Summary.Pass++
	case Warn:
		r.Summary.Warn++
	case Fail:
		r.Summary.Fail++
	case Skip:
		r.Summary.Skip++
	case Inconclusive:
		r.Summary.Inconclusive++
	}
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool { return r.Summary.Fail > 0 }

// AllPassed reports whether every check that ran passed: no FAIL, no WARN
// and no INCONCLUSIVE (SKIPs were not asked for, so they do not count).
func (r *Report) AllPassed() bool {
	return r.Summary.Fail == 0 && r.Summary.Warn == 0 && r.Summary.Inconclusive == 0
}

// String is the one-line summary, e.g. "5 checks: 3 passed, 1 warning, 1 failed".
func (s Summary) String() string {
	parts := []string{fmt.Sprintf("%d passed", s.Pass)}
	if s.Warn > 0 {
		parts = append(parts, plural(s.Warn, "warning"))
	}
	if s.Fail > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", s.Fail))
	}
	if s.Inconclusive > 0 {
		parts = append(parts, fmt.Sprintf("%d inconclusive", s.Inconclusive))
	}
	if s.Skip > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped", s.Skip))
	}
	return fmt.Sprintf("%s: %s", plural(s.Total, "check"), strings.Join(parts, ", "))
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// PrintTable writes the human form: one row per check, then the summary and,
// unless wide (where remediation is a column), the fix for each check that
// did not pass.
func (r *Report) PrintTable(w io.Writer, wide bool, paint cli.Painter) error {
	tw := printers.GetNewTabWriter(w)
	header := "LAYER\tCHECK\tSTATUS\tMESSAGE"
	if wide {
		header += "\tREMEDIATION"
	}
	fmt.Fprintln(tw, header)
	for _, c := range r.Checks {
		row := fmt.Sprintf("%s\t%s\t%s\t%s", c.Layer, c.Name, paintStatus(paint, c.Status), oneLine(c.Message))
		if wide {
			row += "\t" + oneLine(c.Remediation)
		}
		fmt.Fprintln(tw, row)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s\n", r.Summary)
	if wide {
		return nil
	}
	fixes := groupFixes(r.Checks, paint, func(c Check) bool { return c.Status == Fail || c.Status == Warn },
		func(c Check) string { return c.Layer + "/" + c.Name })
	if len(fixes) > 0 {
		fmt.Fprintf(w, "\nTo fix:\n%s\n", strings.Join(fixes, "\n"))
	}
	return nil
}

// PaintStatus colours a verdict as the report tables do.
func PaintStatus(p cli.Painter, s Status) string { return paintStatus(p, s) }

// groupFixes lists each remediation once, in the order first seen, with
// every check it covers and the worst status among them.
func groupFixes(checks []Check, paint cli.Painter, include func(Check) bool, name func(Check) string) []string {
	type group struct {
		status Status
		names  []string
	}
	var order []string
	groups := map[string]*group{}
	for _, c := range checks {
		if c.Remediation == "" || !include(c) {
			continue
		}
		g := groups[c.Remediation]
		if g == nil {
			g = &group{status: c.Status}
			groups[c.Remediation] = g
			order = append(order, c.Remediation)
		}
		if c.Status == Fail {
			g.status = Fail
		}
		g.names = append(g.names, name(c))
	}
	out := make([]string, 0, len(order))
	for _, fix := range order {
		g := groups[fix]
		out = append(out, fmt.Sprintf("  %s %s: %s", paintStatus(paint, g.status), strings.Join(g.names, ", "), fix))
	}
	return out
}

func paintStatus(p cli.Painter, s Status) string {
	switch s {
	case Pass:
		return p.Green(string(s))
	case Warn:
		return p.Yellow(string(s))
	case Fail:
		return p.Red(string(s))
	case Inconclusive:
		return p.Yellow(string(s))
	default:
		return p.Grey(string(s))
	}
}

// oneLine keeps a table row on one line whatever a message contains.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
