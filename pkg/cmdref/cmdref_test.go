package cmdref

import (
	"bytes"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// checkedIn is the reference the README links to.
var checkedIn = filepath.Join("..", "..", "docs", "commands")

// The checked-in reference is what the command tree generates today: a
// command, flag or help text changed without `make docs` fails here (and so
// in CI), naming the pages that differ.
func TestReferenceIsCurrent(t *testing.T) {
	dir := t.TempDir()
	if err := Markdown(dir); err != nil {
		t.Fatal(err)
	}
	want, err := Pages(dir)
	if err != nil {
		t.Fatal(err)
	}
	have, err := Pages(checkedIn)
	if err != nil {
		t.Fatalf("%v: run make docs", err)
	}
	var stale []string
	for name, page := range want {
		if !bytes.Equal(have[name], page) {
			stale = append(stale, name)
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			stale = append(stale, name+" (no such command any more)")
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Fatalf("docs/commands is stale; run make docs and commit the result. Pages that differ: %s", strings.Join(stale, ", "))
	}
	for _, page := range []string{"kubectl_dualstack.md", "kubectl_dualstack_status.md", "kubectl_dualstack_aws_plan.md"} {
		if _, ok := want[page]; !ok {
			t.Errorf("no page %s among %d", page, len(want))
		}
	}
	if s := string(want["kubectl_dualstack_status.md"]); !strings.Contains(s, "--all-contexts") || !strings.Contains(s, "kubectl dualstack status") {
		t.Errorf("the status page lacks --all-contexts or the kubectl name:\n%s", s)
	}
}

// Every command has a man page, and each page is a man(7) document with the
// sections man readers expect.
func TestManPagesBuild(t *testing.T) {
	md, man := t.TempDir(), t.TempDir()
	if err := Markdown(md); err != nil {
		t.Fatal(err)
	}
	if err := Man(man); err != nil {
		t.Fatal(err)
	}
	mdPages, _ := Pages(md)
	manPages, err := Pages(man)
	if err != nil {
		t.Fatal(err)
	}
	if len(manPages) != len(mdPages) || len(manPages) < 20 {
		t.Fatalf("%d man pages for %d commands", len(manPages), len(mdPages))
	}
	for name, page := range manPages {
		s := string(page)
		if !strings.HasSuffix(name, ".1") || !strings.HasPrefix(s, ".nh\n.TH \"KUBECTL-DUALSTACK\" \"1\"") ||
			!strings.Contains(s, ".SH NAME") || !strings.Contains(s, ".SH SYNOPSIS") {
			t.Errorf("%s is not a section-1 man page:\n%.300s", name, s)
		}
	}
	if _, ok := manPages["kubectl-dualstack-status.1"]; !ok {
		t.Errorf("no kubectl-dualstack-status.1 among %d pages", len(manPages))
	}
}
