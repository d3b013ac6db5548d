package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// PrintProofTable writes the form validate uses: one row per check and IP
// family with how long it took, then the summary and the fixes.
func (r *Report) PrintProofTable(w io.Writer, paint cli.Painter) error {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "CHECK\tFAMILY\tSTATUS\tDETAIL\tDURATION")
	for _, c := range r.Checks {
		family := c.Family
		if family == "" {
			family = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, family, paintStatus(paint, c.Status), oneLine(c.Message), formatMillis(c.DurationMs))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s\n", r.Summary)
	fixes := groupFixes(r.Checks, paint, func(c Check) bool { return c.Status != Pass && c.Status != Skip },
		func(c Check) string { return c.Name + "/" + c.Family })
	if len(fixes) > 0 {
		fmt.Fprintf(w, "\nTo fix:\n%s\n", strings.Join(fixes, "\n"))
	}
	return nil
}

func formatMillis(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	d := time.Duration(ms) * time.Millisecond
	if d < time.Second {
		return d.String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// JUnit XML, the subset CI systems read (Jenkins, GitLab, GitHub actions).
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as one JUnit test suite: a test case per
// check (named check/family), FAIL as a failure, INCONCLUSIVE as an error
// (the test could not run to a verdict), SKIP as skipped.
func (r *Report) WriteJUnit(w io.Writer, suite string, elapsed time.Duration) error {
	s := junitSuite{Name: suite, Tests: len(r.Checks), Time: seconds(elapsed.Milliseconds())}
	for _, c := range r.Checks {
		name := c.Name
		if c.Family != "" {
			name += "/" + c.Family
		}
		tc := junitCase{Name: name, Classname: suite + "." + c.Layer, Time: seconds(c.DurationMs), SystemOut: c.Message}
		msg := &junitMessage{Message: oneLine(c.Message), Text: strings.TrimSpace(c.Message + "\n" + c.Remediation)}
		switch c.Status {
		case Fail, Warn:
			msg.Type = string(c.Status)
			tc.Failure = msg
			s.Failures++
		case Inconclusive:
			msg.Type = string(c.Status)
			tc.Error = msg
			s.Errors++
		case Skip:
			tc.Skipped = &junitMessage{Message: oneLine(c.Message)}
			s.Skipped++
		}
		s.Cases = append(s.Cases, tc)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return fmt.Errorf("writing JUnit XML: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func seconds(ms int64) string { return fmt.Sprintf("%.3f", float64(ms)/1000) }
