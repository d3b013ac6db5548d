package cli

import (
	"bytes"
	"testing"
)

func TestProgressWithoutTerminalPrintsChangesOnly(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf) // a buffer is not a terminal
	p.Start("waiting for the network operator")
	p.Update("1/3 conditions met")
	p.Update("1/3 conditions met")
	p.Update("3/3 conditions met")
	p.Done("network operator: Available")
	want := "waiting for the network operator ...\n  1/3 conditions met\n  3/3 conditions met\nnetwork operator: Available\n"
	if buf.String() != want {
		t.Fatalf("got %q\nwant %q", buf.String(), want)
	}
	if bytes.ContainsAny(buf.Bytes(), "\r\033") {
		t.Fatal("no control characters outside a terminal")
	}
}

func TestProgressSpinsOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &Progress{w: &buf, tty: true, now: NewProgress(&buf).now, interval: 1}
	p.Start("waiting")
	p.Done("ok")
	if out := buf.String(); !bytes.Contains([]byte(out), []byte("\r\033[K")) || !bytes.HasSuffix([]byte(out), []byte("ok\n")) {
		t.Fatalf("terminal output %q", out)
	}
}
