package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

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
