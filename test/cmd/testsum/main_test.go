package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"a says hi\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA","Elapsed":1.5}`,
		`{"Action":"run","Package":"p","Test":"TestB"}`,
		`{"Action":"run","Package":"p","Test":"TestB/sub"}`,
		`{"Action":"output","Package":"p","Test":"TestB/sub","Output":"    testserver.go:434: Starting kube-apiserver on port 1...\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB/sub","Output":"    b_test.go:9: wrong\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB/sub","Output":"        exit 1: the details\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB/sub","Output":"    logger.go:146: 2026-12-01T11:46:00.238Z\tERROR\tetcd-server\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestB/sub","Elapsed":0.1}`,
		`{"Action":"fail","Package":"p","Test":"TestB","Elapsed":0.2}`,
		`{"Action":"skip","Package":"p","Test":"TestC"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t1.9s\n"}`,
		`{"Action":"fail","Package":"p","Elapsed":1.9}`,
		`{"ImportPath":"q","Action":"build-output","Output":"q/x.go:1:1: syntax error\n"}`,
		`{"ImportPath":"q","Action":"build-fail"}`,
	}, "\n")
	var out bytes.Buffer
	c, failed := summarize(strings.NewReader(in), &out, true)
	if c.Run != 3 || c.Pass != 1 || c.Fail != 1 || c.Skip != 1 || !failed {
		t.Errorf("counts %+v, failed %v", c, failed)
	}
	for _, want := range []string{"    PASS TestA (1.5s)", "=== FAIL p TestB/sub", "b_test.go:9: wrong", "FAIL\tp\t1.9s", "q/x.go:1:1: syntax error", "    SKIP TestC"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "a says hi") {
		t.Errorf("a passing test's output was printed:\n%s", out.String())
	}
}

func TestRecapKeepsOnlyTheTestsOwnLines(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"example.com/m/e2e","Test":"TestX"}`,
		`{"Action":"output","Package":"example.com/m/e2e","Test":"TestX","Output":"    testserver.go:434: Starting kube-apiserver on port 1...\n"}`,
		`{"Action":"output","Package":"example.com/m/e2e","Test":"TestX","Output":"    gateway_test.go:175: gateway:\n        exit 1\n        stderr: no NLB\n"}`,
		`{"Action":"output","Package":"example.com/m/e2e","Test":"TestX","Output":"    logger.go:146: 2026-12-01T11:46:00.238Z\tERROR\tetcd-server\n"}`,
		`{"Action":"output","Package":"example.com/m/e2e","Test":"TestX","Output":"I1201 11:45:59.150250   17176 controller.go:176] quota evaluator worker shutdown\n"}`,
		`{"Action":"output","Package":"example.com/m/e2e","Test":"TestX","Output":"--- FAIL: TestX (5.33s)\n"}`,
		`{"Action":"fail","Package":"example.com/m/e2e","Test":"TestX","Elapsed":5.33}`,
		`{"Action":"run","Package":"example.com/m/e2e","Test":"TestY"}`,
		`{"Action":"output","Package":"example.com/m/e2e","Test":"TestY","Output":"panic: boom\n"}`,
		`{"Action":"fail","Package":"example.com/m/e2e","Test":"TestY","Elapsed":1}`,
	}, "\n")
	var out bytes.Buffer
	c, _ := summarize(strings.NewReader(in), &out, true)
	var recap bytes.Buffer
	printRecap(&recap, c.failures)
	want := "--- failed tests, with the lines they wrote themselves (the whole output is above):\n" +
		"  e2e TestX\n" +
		"    gateway_test.go:175: gateway:\n        exit 1\n        stderr: no NLB\n" +
		"  e2e TestY\n" +
		"        (no line from a _test.go file: see its output above)\n"
	if recap.String() != want {
		t.Errorf("recap:\n%s\nwant:\n%s", recap.String(), want)
	}

	var many []string
	for i := 0; i < recapLines+5; i++ {
		many = append(many, fmt.Sprintf("    a_test.go:%d: line\n", i+1))
	}
	if got := ownLines(many); len(got) != recapLines+1 || !strings.Contains(got[recapLines], "5 more lines") {
		t.Errorf("a long failure is not cut at %d lines: %d lines, last %q", recapLines, len(got), got[len(got)-1])
	}
	var none bytes.Buffer
	printRecap(&none, nil)
	if none.Len() != 0 {
		t.Errorf("a recap without failures: %q", none.String())
	}
}
