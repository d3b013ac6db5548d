// Command testsum reads `go test -json` on stdin and prints what a person
// watching `make test` needs: each package's result as go test prints it,
// with -tests a line per finished test (so a long e2e stage is not
// silent), the output of every failed test, and a closing count. The
// closing count is preceded by a recap of each failure: only the lines the
// failing tests wrote from their own _test.go files (t.Fatal, t.Error,
// t.Log), so the cause is at the end of a long log, above the count, and not
// buried in thousands of lines of kube-apiserver logging. With
// -counts FILE it adds this stage's counts to FILE; -total FILE prints the
// closing line of the whole run from that file instead of reading stdin.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type counts struct {
	Run, Pass, Fail, Skip int
	failures              []failure // in the order they ended
}

// failure is a failed test and the lines it wrote from its _test.go files.
type failure struct {
	Name  string // package's last element and test
	Lines []string
}

func main() {
	stage := flag.String("stage", "tests", "the stage's name, for the closing line")
	perTest := flag.Bool("tests", false, "print a line per finished top-level test")
	countsFile := flag.String("counts", "", "add this stage's counts to this file")
	total := flag.String("total", "", "print the whole run's closing line from this counts file (started at its first line) and exit")
	flag.Parse()
	if *total != "" {
		os.Exit(printTotal(*total))
	}
	c, failedBuild := summarize(os.Stdin, os.Stdout, *perTest)
	printRecap(os.Stdout, c.failures)
	fmt.Printf("--- %s: %d tests run, %d passed, %d skipped, %d failed\n", *stage, c.Run, c.Pass, c.Skip, c.Fail)
	if *countsFile != "" {
		f, err := os.OpenFile(*countsFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%s %d %d %d %d\n", *stage, c.Run, c.Pass, c.Skip, c.Fail)
			f.Close()
		}
	}
	if c.Fail > 0 || failedBuild {
		os.Exit(1)
	}
}

func summarize(in io.Reader, out io.Writer, perTest bool) (counts, bool) {
	var c counts
	failedBuild := false
	outputs := map[string][]string{} // package/test -> its output
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Fprintln(out, string(line)) // a build error, printed as is
			continue
		}
		key := e.Package + "/" + e.Test
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "build-fail":
			failedBuild = true
		case "output":
			if e.Test == "" {
				// Package lines: "ok ...", "FAIL ...", "?   ... [no test files]".
				if t := strings.TrimSpace(e.Output); strings.HasPrefix(t, "ok ") || strings.HasPrefix(t, "FAIL") || strings.HasPrefix(t, "?") || strings.HasPrefix(t, "panic:") {
					fmt.Fprint(out, e.Output)
				}
				continue
			}
			outputs[key] = append(outputs[key], e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				if e.Action == "fail" {
					failedBuild = true
				}
				continue
			}
			top := !strings.Contains(e.Test, "/")
			if top {
				c.Run++
			}
			switch e.Action {
			case "pass":
				if top {
					c.Pass++
				}
			case "skip":
				if top {
					c.Skip++
				}
			case "fail":
				if top {
					c.Fail++
				}
				fmt.Fprintf(out, "=== FAIL %s %s (%.1fs)\n%s", e.Package, e.Test, e.Elapsed, strings.Join(outputs[key], ""))
				pkg := e.Package[strings.LastIndex(e.Package, "/")+1:]
				c.failures = append(c.failures, failure{Name: pkg + " " + e.Test, Lines: ownLines(outputs[key])})
			}
			if top && perTest && e.Action != "fail" {
				fmt.Fprintf(out, "    %s %s (%.1fs)\n", strings.ToUpper(e.Action), e.Test, e.Elapsed)
			}
			delete(outputs, key)
		}
	}
	return c, failedBuild
}

// testLine matches the start of a line a test wrote with t.Log, t.Error or
// t.Fatal from one of its own files: "    gateway_test.go:199: ...".
var testLine = regexp.MustCompile(`^\s+[\w.-]+_test\.go:\d+: `)

// recapLines bounds the lines recapped per failed test.
const recapLines = 40

// ownLines keeps the lines a test wrote from its _test.go files, each with
// its continuation lines (the more indented ones that follow it), and drops
// the rest (what the components it started logged through t.Log from their
// own files).
func ownLines(output []string) []string {
	var out []string
	in := false
	for _, chunk := range output {
		for _, l := range strings.Split(strings.TrimRight(chunk, "\n"), "\n") {
			switch {
			case testLine.MatchString(l):
				in = true
			case in && strings.HasPrefix(l, "        "):
			default:
				in = false
			}
			if in {
				out = append(out, l)
			}
		}
	}
	if len(out) > recapLines {
		out = append(out[:recapLines], fmt.Sprintf("        ... %d more lines in the output above", len(out)-recapLines))
	}
	return out
}

// printRecap prints each failed test with its own lines.
func printRecap(w io.Writer, failures []failure) {
	if len(failures) == 0 {
		return
	}
	fmt.Fprintf(w, "--- failed tests, with the lines they wrote themselves (the whole output is above):\n")
	for _, f := range failures {
		fmt.Fprintf(w, "  %s\n", f.Name)
		if len(f.Lines) == 0 {
			fmt.Fprintf(w, "        (no line from a _test.go file: see its output above)\n")
		}
		for _, l := range f.Lines {
			fmt.Fprintln(w, l)
		}
	}
}

func printTotal(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		return 1
	}
	var start int64
	var t counts
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if i == 0 {
			fmt.Sscanf(line, "start %d", &start)
			continue
		}
		var stage string
		var c counts
		if n, _ := fmt.Sscanf(line, "%s %d %d %d %d", &stage, &c.Run, &c.Pass, &c.Skip, &c.Fail); n == 5 {
			t.Run, t.Pass, t.Skip, t.Fail = t.Run+c.Run, t.Pass+c.Pass, t.Skip+c.Skip, t.Fail+c.Fail
		}
	}
	wall := time.Since(time.Unix(start, 0)).Round(time.Second)
	fmt.Printf("==> make test: %d tests run, %d passed, %d skipped, %d failed, in %s\n", t.Run, t.Pass, t.Skip, t.Fail, wall)
	if t.Fail > 0 {
		return 1
	}
	return 0
}
