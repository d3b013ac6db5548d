package nodes

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAddDualStackGolden edits real-looking cloud configs and compares the
// result with hand-written expected files, byte for byte.
func TestAddDualStackGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before []string // NodeIPFamilies before
		target []string
		diff   []string
	}{
		{"openshift-serviceoverride", nil, []string{"ipv4", "ipv6"},
			[]string{"@@ -4,0 +5,2 @@", "+NodeIPFamilies = ipv4", "+NodeIPFamilies = ipv6"}},
		{"crlf", nil, []string{"ipv4", "ipv6"},
			[]string{"@@ -4,0 +5,2 @@", "+NodeIPFamilies = ipv4", "+NodeIPFamilies = ipv6"}},
		{"no-trailing-newline", nil, []string{"ipv4", "ipv6"},
			[]string{"@@ -3,0 +4,2 @@", "+NodeIPFamilies=ipv4", "+NodeIPFamilies=ipv6"}},
		{"no-global", nil, []string{"ipv4", "ipv6"},
			[]string{"@@ -0,0 +1,3 @@", "+[Global]", "+NodeIPFamilies=ipv4", "+NodeIPFamilies=ipv6"}},
		{"ipv4-only", []string{"ipv4"}, []string{"ipv4", "ipv6"},
			[]string{"@@ -3,0 +4,1 @@", `+  NodeIPFamilies = "ipv6"`}},
		{"installer-ipv4", nil, []string{"ipv4", "ipv6"},
			[]string{"@@ -1,0 +2,2 @@", "+NodeIPFamilies=ipv4", "+NodeIPFamilies=ipv6"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := readTestdata(t, tc.name+".conf")
			want := readTestdata(t, tc.name+".golden")
			fams, err := Families(in)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(fams, tc.before) {
				t.Errorf("Families = %q, want %q", fams, tc.before)
			}
			e, err := AddDualStack(in)
			if err != nil {
				t.Fatal(err)
			}
			if e.Text != want {
				t.Errorf("AddDualStack:\n got %q\nwant %q", e.Text, want)
			}
			if !slices.Equal(e.Target, tc.target) {
				t.Errorf("Target = %q, want %q", e.Target, tc.target)
			}
			if !slices.Equal(e.Diff, tc.diff) {
				t.Errorf("Diff = %q, want %q", e.Diff, tc.diff)
			}
			// What the CCM would read from the result.
			after, err := Families(e.Text)
			if err != nil || !slices.Equal(after, tc.target) {
				t.Errorf("Families(new) = %q, %v; want %q", after, err, tc.target)
			}
			// Removing the added lines gives back the original bytes: the
			// rest is untouched.
			if got := removeAdded(e.Text, e.Added); got != in && tc.name != "no-global" && tc.name != "no-trailing-newline" {
				t.Errorf("the edit changed more than it added:\n got %q\nwant %q", got, in)
			}
			// Idempotent: a second edit adds nothing.
			again, err := AddDualStack(e.Text)
			if err != nil || again.Text != e.Text || len(again.Added) != 0 || len(again.Diff) != 0 {
				t.Errorf("second AddDualStack = %+v, %v; want no change", again, err)
			}
		})
	}
}

func removeAdded(text string, added []string) string {
	for _, l := range added {
		for _, eol := range []string{"\r\n", "\n"} {
			if i := strings.Index(text, l+eol); i >= 0 {
				text = text[:i] + text[i+len(l+eol):]
				break
			}
		}
	}
	return text
}

func TestAddDualStackAlreadyBoth(t *testing.T) {
	for _, in := range []string{
		readTestdata(t, "both.conf"),
		"[Global]\nNodeIPFamilies = ipv6\nNodeIPFamilies = ipv4\n",     // IPv6 primary stays so
		"[global]\nnodeipfamilies=ipv4\n[GLOBAL]\nNODEIPFAMILIES=ipv6", // names are case-insensitive, sections merge
	} {
		e, err := AddDualStack(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if e.Text != in || len(e.Added) != 0 || len(e.Target) != 2 {
			t.Errorf("%q: want no change, got %+v", in, e)
		}
	}
}

func TestFamiliesAsGcfgReadsThem(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"[Global]\n", nil},
		{"[Global]\nNodeIPFamilies = ipv6 ; primary\nNodeIPFamilies = \"ipv4\"\n", []string{"ipv6", "ipv4"}},
		{"[Global]\nNodeIPFamilies = ipv4\nNodeIPFamilies\nNodeIPFamilies = ipv6\n", []string{"ipv6"}}, // no "=": the list is emptied
		{"[ServiceOverride \"0\"]\nNodeIPFamilies = ipv6\n", nil},                                      // not [Global]
		{"[Global \"x\"]\nNodeIPFamilies = ipv6\n", nil},                                               // a subsection is another section
		{"# NodeIPFamilies = ipv6\n[Global]\n;NodeIPFamilies = ipv6\n", nil},
		{"[Global]\nNodeIPFamilies = ipv4,ipv6\n", []string{"ipv4,ipv6"}}, // one value, which the CCM ignores
		{"[Global]\r\nNodeIPFamilies = ipv4\r\n", []string{"ipv4"}},
	} {
		got, err := Families(tc.in)
		if err != nil {
			t.Errorf("Families(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Families(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAddDualStackEdges(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// Empty: the installer's dual-stack text.
		{"", "[Global]\nNodeIPFamilies=ipv4\nNodeIPFamilies=ipv6\n"},
		// IPv6 only: IPv4 after it, IPv6 stays primary.
		{"[Global]\nNodeIPFamilies=ipv6\n", "[Global]\nNodeIPFamilies=ipv6\nNodeIPFamilies=ipv4\n"},
		// After the last NodeIPFamilies, in the [Global] that has it.
		{"[Global]\nZone=a\n[ServiceOverride \"0\"]\nService=ec2\n[Global]\nNodeIPFamilies = ipv4\n# end\n",
			"[Global]\nZone=a\n[ServiceOverride \"0\"]\nService=ec2\n[Global]\nNodeIPFamilies = ipv4\nNodeIPFamilies = ipv6\n# end\n"},
		// A [Global] with no variables: right after its header; comments
		// and blank lines after stay after.
		{"[Global] ; main\n\n; endpoints\n[ServiceOverride \"0\"]\nService=ec2\n",
			"[Global] ; main\nNodeIPFamilies=ipv4\nNodeIPFamilies=ipv6\n\n; endpoints\n[ServiceOverride \"0\"]\nService=ec2\n"},
		// The list emptied after ipv4: both again, after the emptying line.
		{"[Global]\nNodeIPFamilies=ipv4\nNodeIPFamilies\n", "[Global]\nNodeIPFamilies=ipv4\nNodeIPFamilies\nNodeIPFamilies=ipv4\nNodeIPFamilies=ipv6\n"},
		// No trailing newline after a header alone.
		{"[Global]", "[Global]\nNodeIPFamilies=ipv4\nNodeIPFamilies=ipv6"},
		// Mostly CRLF: a new [Global] uses CRLF.
		{"[A]\r\nk=v\r\n", "[Global]\r\nNodeIPFamilies=ipv4\r\nNodeIPFamilies=ipv6\r\n\r\n[A]\r\nk=v\r\n"},
	} {
		e, err := AddDualStack(tc.in)
		if err != nil {
			t.Errorf("AddDualStack(%q): %v", tc.in, err)
			continue
		}
		if e.Text != tc.want {
			t.Errorf("AddDualStack(%q)\n got %q\nwant %q", tc.in, e.Text, tc.want)
		}
	}
}

func TestAddDualStackBadInput(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Zone = a\n[Global]\n", "before the first [section]"},
		{"[Global\nZone = a\n", "closing ]"},
		{"[Global]\nZone = \"a\n", "closing quote"},
		{"[Global]\nZone = a \\\n  b\n", "trailing backslash"},
		{"[Global]\n1Zone = a\n", "not a variable name"},
		{"[Global]\nZone : a\n", "expected ="},
		{"[Global sub]\n", "double quotes"},
		{"[Global]\nNodeIPFamilies = IPv6\n", `"IPv6", which cloud-provider-aws does not recognise`},
		{"[Global]\nNodeIPFamilies = ipv4,ipv6\n", `"ipv4,ipv6"`},
	} {
		_, err := AddDualStack(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddDualStack(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
	if _, err := Families("[Global]\nZone = \"a\n"); !errors.Is(err, ErrSyntax) {
		t.Errorf("Families: %v, want ErrSyntax", err)
	}
}

// FuzzAddDualStack: whatever the input, an edit that succeeds leaves both
// families readable, keeps every original line, and is idempotent.
func FuzzAddDualStack(f *testing.F) {
	for _, n := range []string{"openshift-serviceoverride", "crlf", "no-trailing-newline", "no-global", "ipv4-only", "both", "installer-ipv4"} {
		b, err := os.ReadFile(filepath.Join("testdata", n+".conf"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, in string) {
		e, err := AddDualStack(in)
		if err != nil {
			return
		}
		fams, err := Families(e.Text)
		if err != nil {
			t.Fatalf("the edit of %q does not parse: %v", in, err)
		}
		if !slices.Contains(fams, "ipv4") || !slices.Contains(fams, "ipv6") {
			t.Fatalf("the edit of %q has NodeIPFamilies %q", in, fams)
		}
		if !strings.Contains(e.Text, strings.TrimRight(in, "\r\n")) && !strings.Contains(strings.ReplaceAll(e.Text, strings.Join(e.Added, "\n")+"\n", ""), in) {
			// Every original byte is there, in order, around the insertion.
			if !isSubsequence(in, e.Text) {
				t.Fatalf("the edit of %q lost bytes: %q", in, e.Text)
			}
		}
		again, err := AddDualStack(e.Text)
		if err != nil || again.Text != e.Text {
			t.Fatalf("not idempotent on %q: %q, %v", e.Text, again.Text, err)
		}
	})
}

func isSubsequence(a, b string) bool {
	i := 0
	for j := 0; i < len(a) && j < len(b); j++ {
		if a[i] == b[j] {
			i++
		}
	}
	return i == len(a)
}
