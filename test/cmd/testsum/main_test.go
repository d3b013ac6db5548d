package main

import (
	"bytes"
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
		`{"Action":"output","Package":"p","Test":"TestB/sub","Output":"    b_test.go:9: wrong\n"}`,
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
	if c != (counts{Run: 3, Pass: 1, Fail: 1, Skip: 1}) || !failed {
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
