package e2e

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/ from this run")

// goldenNormalizers turn what differs between runs (AWS IDs, ports,
// durations, times) into stable placeholders; what is left is the text a
// user reads, compared byte for byte.
var goldenNormalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\b(vpc|subnet|igw|eigw|rtb|sg|eni|i|nat|eipalloc|acl)-[0-9a-f]{8,17}\b`), "$1-ID"},
	{regexp.MustCompile(`\b(127\.0\.0\.1|localhost|\[::1\]):\d+`), "$1:PORT"},
	{regexp.MustCompile(`\b(k8s-elb-)?[0-9a-f]{32}\b`), "${1}ELB-NAME"},
	{regexp.MustCompile(`([\s(=])\d+(\.\d+)?(ms|s)\b`), "${1}DURATION"},
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b`), "TIME"},
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "UUID"},
	{regexp.MustCompile(`\b[a-z0-9-]+-[0-9a-f]{6,}\.elb\.[a-z0-9-]+\.amazonaws\.com\b`), "LB-HOSTNAME"},
	{regexp.MustCompile(`[ \t]+\n`), "\n"},
}

func normalizeGolden(s string) string {
	for _, n := range goldenNormalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// checkGolden compares got (normalized) with testdata/name; -update
// rewrites the file.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	got = normalizeGolden(got)
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from what a user reads now (run with -update after checking the difference):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines that differ, with their numbers.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			out = append(out, "line "+strconv.Itoa(i+1)+":\n  want: "+a+"\n  got:  "+b)
		}
	}
	return strings.Join(out, "\n")
}

// TestGoldenSandboxOutputs: what a new user reads first on the sandbox,
// IPv4-only: `status` (each check and each fix once, naming the command
// that does it) and `aws plan` (ordered as apply runs it), as golden
// files, so a change in wording is seen and reviewed.
func TestGoldenSandboxOutputs(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	kcfg, env := s.API.Kubeconfig, awsTLS.Env()
	r := plugin(t, kcfg, env, "status")
	if r.Code != 1 {
		t.Fatalf("status on the IPv4-only sandbox:\n%s", r)
	}
	// The fixes: the checks' messages count pods and nodes as they are at
	// that moment; what to do about them is the same every time.
	_, fixes, ok := strings.Cut(r.Stdout, "\nTo fix:\n")
	if !ok {
		t.Fatalf("status lists no fixes:\n%s", r.Stdout)
	}
	checkGolden(t, "sandbox-status-fixes.golden", fixes)
	r = plugin(t, kcfg, env, "aws", "plan")
	if r.Code != 0 {
		t.Fatalf("aws plan:\n%s", r)
	}
	checkGolden(t, "sandbox-aws-plan.golden", r.Stdout)
}
