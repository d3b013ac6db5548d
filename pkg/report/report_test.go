package report

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func sample() Report {
	var r Report
	r.Add(Check{Layer: LayerCluster, Name: "kubernetes-version", Status: Pass, Message: "Kubernetes v1.37.2"})
	r.Add(Check{Layer: LayerOverlay, Name: "node-internal-ips", Status: Fail, Message: "6 of 6 nodes\nlack IPv6", Remediation: "give the instances IPv6"})
	r.Add(Check{Layer: LayerOverlay, Name: "pod-cidrs", Status: Skip, Message: "none recorded"})
	r.Add(Check{Layer: LayerOverlay, Name: "service-cidrs", Status: Warn, Message: "unknown", Remediation: "grant list"})
	return r
}

func TestSummary(t *testing.T) {
	r := sample()
	want := Summary{Total: 4, Pass: 1, Warn: 1, Fail: 1, Skip: 1}
	if r.Summary != want || !r.Failed() {
		t.Fatalf("summary %+v failed=%v", r.Summary, r.Failed())
	}
	if got := r.Summary.String(); got != "4 checks: 1 passed, 1 warning, 1 failed, 1 skipped" {
		t.Fatalf("summary line %q", got)
	}
}

func TestPrintTableGolden(t *testing.T) {
	for _, wide := range []bool{false, true} {
		name := "table.golden"
		if wide {
			name = "table-wide.golden"
		}
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			r := sample()
			if err := r.PrintTable(&buf, wide, cli.Painter{}); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if buf.String() != string(want) {
				t.Fatalf("table differs from %s:\n%s", path, buf.String())
			}
		})
	}
}

func proofSample() Report {
	var r Report
	r.Add(Check{Layer: LayerProof, Name: "curl-service", Family: "IPv4", Status: Pass, Message: "200 from 10.96.0.10 via envoy", DurationMs: 120})
	r.Add(Check{Layer: LayerProof, Name: "curl-service", Family: "IPv6", Status: Fail, Message: "curl exit 7: connection refused", Remediation: "check the Service", DurationMs: 1500})
	r.Add(Check{Layer: LayerProof, Name: "dns-service", Family: "IPv6", Status: Inconclusive, Message: "exec stream lost"})
	r.Add(Check{Layer: LayerProof, Name: "dns-ingress", Family: "IPv4", Status: Skip, Message: "not selected"})
	return r
}

func TestProofSummary(t *testing.T) {
	r := proofSample()
	if r.Summary.Inconclusive != 1 || r.AllPassed() {
		t.Fatalf("summary %+v allPassed=%v", r.Summary, r.AllPassed())
	}
	if got := r.Summary.String(); got != "4 checks: 1 passed, 1 failed, 1 inconclusive, 1 skipped" {
		t.Fatalf("summary line %q", got)
	}
	var ok Report
	ok.Add(Check{Name: "a", Status: Pass})
	ok.Add(Check{Name: "b", Status: Skip})
	if !ok.AllPassed() {
		t.Fatal("PASS and SKIP only must count as all passed")
	}
}

func TestPrintProofTableGolden(t *testing.T) {
	var buf bytes.Buffer
	r := proofSample()
	if err := r.PrintProofTable(&buf, cli.Painter{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "proof-table.golden", buf.Bytes())
}

func TestWriteJUnit(t *testing.T) {
	var buf bytes.Buffer
	r := proofSample()
	if err := r.WriteJUnit(&buf, "dualstack-validate", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Errors   int `xml:"errors,attr"`
			Skipped  int `xml:"skipped,attr"`
			Cases    []struct {
				Name string `xml:"name,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &parsed); err != nil {
		t.Fatalf("not XML: %v\n%s", err, buf.String())
	}
	s := parsed.Suites[0]
	if s.Tests != 4 || s.Failures != 1 || s.Errors != 1 || s.Skipped != 1 || s.Cases[1].Name != "curl-service/IPv6" {
		t.Fatalf("suite %+v", s)
	}
	golden(t, "junit.golden", buf.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("output differs from %s:\n%s", path, got)
	}
}

// TestFixesOncePerRemediation: checks that share a fix list it once, with
// every check it covers and the worst status.
func TestFixesOncePerRemediation(t *testing.T) {
	var r Report
	r.Add(Check{Layer: LayerOverlay, Name: "a", Status: Warn, Remediation: "run kubectl dualstack aws apply"})
	r.Add(Check{Layer: LayerOverlay, Name: "b", Status: Fail, Remediation: "run kubectl dualstack network"})
	r.Add(Check{Layer: LayerOverlay, Name: "c", Status: Fail, Remediation: "run kubectl dualstack aws apply"})
	r.Add(Check{Layer: LayerOverlay, Name: "d", Status: Pass, Remediation: "run kubectl dualstack aws apply"})
	var buf bytes.Buffer
	if err := r.PrintTable(&buf, false, cli.Painter{}); err != nil {
		t.Fatal(err)
	}
	want := "To fix:\n  FAIL overlay/a, overlay/c: run kubectl dualstack aws apply\n  FAIL overlay/b: run kubectl dualstack network\n"
	if !bytes.HasSuffix(buf.Bytes(), []byte(want)) {
		t.Fatalf("fixes:\n%s\nwant the table to end with\n%s", buf.String(), want)
	}
}
