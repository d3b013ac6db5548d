package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// TestUpgradeAWSCalls counts the AWS calls `upgrade` makes on the conversion
// sandbox, per action: those of the planning alone (`upgrade
// --dry-run=client`), then those of the whole `upgrade --yes
// --recreate-gateway` (which plans again, applies, and runs the gateway and
// validate phases). Only the plugin's calls go through the recording proxy:
// the sandbox's simulators (the load-balancer controller, the node address
// syncer, the load balancers' DNS) talk to moto directly.
//
// A request is "distinct" by its service, action and every parameter
// (pages of one list differ by NextToken, so each page is its own request);
// a repeat is the same request made again by the same command.
func TestUpgradeAWSCalls(t *testing.T) {
	s := conversionSandbox(t, harness.ConversionSandboxOptions{})
	proxy := awsProxy(t)
	kcfg, env := s.API.Kubeconfig, proxy.Env(awsTLS.Env())

	proxy.Reset()
	r := plugin(t, kcfg, env, "upgrade", "--dry-run=client", "--recreate-gateway", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	if u := parseUpgrade(t, r); r.Code != 0 || u.Outcome != "dry-run" {
		t.Fatalf("upgrade --dry-run=client: outcome %q\n%s", u.Outcome, r)
	}
	planOps := proxy.Ops()
	plan := countCalls(planOps)

	proxy.Reset()
	r = plugin(t, kcfg, env, "upgrade", "--yes", "--recreate-gateway", "--dns-server", s.DNSAddr(), "--timeout", "90s", "-o", "json")
	if u := parseUpgrade(t, r); r.Code != 0 || u.Outcome != "converted" {
		t.Fatalf("upgrade --yes --recreate-gateway: outcome %q\n%s", u.Outcome, r)
	}
	fullOps := proxy.Ops()
	full := countCalls(fullOps)

	t.Logf("AWS calls of upgrade on the conversion sandbox (calls / distinct requests):\n%s", callTable(plan, full))
	for _, c := range []struct {
		name string
		n    callCounts
		ops  []harness.AWSOp
	}{{"plan", plan, planOps}, {"upgrade", full, fullOps}} {
		t.Logf("%s, in order: %s", c.name, timeline(c.ops))
		for _, rep := range c.n.repeats() {
			t.Logf("%s repeats %s", c.name, rep)
		}
	}

	// Planning is read-only: not one call that changes something.
	for a, n := range plan.calls {
		if !readOnlyAction(a) {
			t.Errorf("upgrade --dry-run=client made %d %s call(s)", n, a)
		}
	}
	// Planning reads the VPC, its lists and the load balancers: nothing of
	// that may be missing, or the counts below prove nothing.
	for _, a := range []string{"ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups",
		"ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "elasticloadbalancing:DescribeLoadBalancers"} {
		if plan.calls[a] == 0 {
			t.Errorf("upgrade --dry-run=client made no %s call", a)
		}
	}
	checkRepeats(t, "upgrade --dry-run=client", plan, planRepeatBound)
	checkRepeats(t, "upgrade --yes --recreate-gateway", full, upgradeRepeatBound)
	if n := plan.readCalls(); n > planReadBound {
		t.Errorf("upgrade --dry-run=client made %d read-only AWS calls, at most %d expected", n, planReadBound)
	}
	if n := full.readCalls(); n > upgradeReadBound {
		t.Errorf("upgrade --yes --recreate-gateway made %d read-only AWS calls, at most %d expected", n, upgradeReadBound)
	}
}

// What holds, as bounds a regression breaks:
//
// Planning discovers the VPC once: the facts are gathered once
// (convert.Facts), the aws phase discovers (convert.AWSPhase.Plan ->
// Account.Refresh) and the gateway phase finds its load balancer in that
// same discovery (Account.LoadBalancers: its first lookup uses it). So
// every discovery request is made once.
//
// The whole upgrade (with --yes, so no re-check after a question)
// discovers three times: the plan's; the gateway phase's first lookup
// after the aws phase changed the network (the aws phase invalidates the
// discovery it applied from), which sees the subnets' new IPv6; and its
// lookup of the new NLB after the re-creation. The aws phase applies from
// the plan's discovery, without a new one. Besides those, apply reads the
// ENIs it assigns addresses to before it does (pkg/aws/apply.go), and the
// discoveries after the underlay read the egress-only gateway the routes
// now name by its ID: requests of their own, not repeats. Apply's read of
// the VPC's ENIs before it assigns addresses is the same request as the
// discovery's: one more, allowed by name.
const (
	planRepeatBound    = 1
	upgradeRepeatBound = 3
	// All read-only calls of each command on the sandbox (each discovery
	// is 16 calls on it, and the dns phase asks Route 53 once for the
	// VPC's zones: see the table in the log).
	planReadBound    = 17
	upgradeReadBound = 52
)

// checkRepeats fails when a read-only request was made more than bound
// times, or a mutating one more than once.
func checkRepeats(t *testing.T, what string, c callCounts, bound int) {
	t.Helper()
	for key, n := range c.requests {
		action, _, _ := strings.Cut(key, " ")
		limit := bound
		if !readOnlyAction(action) {
			limit = 1
		}
		if action == "ec2:DescribeNetworkInterfaces" && bound > 1 {
			// Apply reads the VPC's ENIs once more, just before it assigns
			// addresses, to record what each had (pkg/aws/apply.go
			// recordBefore): the same request as discovery's.
			limit = bound + 1
		}
		if n > limit {
			t.Errorf("%s made the same %s request %d times (at most %d expected): %s", what, action, n, limit, key)
		}
	}
}

// readCalls is the number of read-only calls.
func (c callCounts) readCalls() int {
	n := 0
	for a, k := range c.calls {
		if readOnlyAction(a) {
			n += k
		}
	}
	return n
}

// callCounts are the calls of one command, by action and by request.
type callCounts struct {
	calls    map[string]int // "ec2:DescribeVpcs" -> calls
	distinct map[string]int // "ec2:DescribeVpcs" -> distinct requests
	requests map[string]int // "ec2:DescribeVpcs <params>" -> calls
}

func countCalls(ops []harness.AWSOp) callCounts {
	c := callCounts{calls: map[string]int{}, distinct: map[string]int{}, requests: map[string]int{}}
	for _, op := range ops {
		a := op.IAM()
		c.calls[a]++
		params := op.Params
		key := a + " " + params.Encode() // sorted by key: a stable identity
		if c.requests[key] == 0 {
			c.distinct[a]++
		}
		c.requests[key]++
	}
	return c
}

// repeats lists the requests made more than once, most repeated first.
func (c callCounts) repeats() []string {
	var out []string
	for key, n := range c.requests {
		if n > 1 {
			out = append(out, fmt.Sprintf("%dx %s", n, key))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		var ni, nj int
		fmt.Sscanf(out[i], "%dx", &ni)
		fmt.Sscanf(out[j], "%dx", &nj)
		if ni != nj {
			return ni > nj
		}
		return out[i] < out[j]
	})
	return out
}

// readOnlyAction: Describe*, Get*, List* (the IAM action, service:Action).
func readOnlyAction(iam string) bool {
	_, action, _ := strings.Cut(iam, ":")
	for _, p := range []string{"Describe", "Get", "List"} {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	return false
}

// callTable prints one line per action, read-only actions first, in a
// stable order, with a total per kind.
func callTable(plan, full callCounts) string {
	actions := map[string]bool{}
	for a := range plan.calls {
		actions[a] = true
	}
	for a := range full.calls {
		actions[a] = true
	}
	var names []string
	for a := range actions {
		names = append(names, a)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := readOnlyAction(names[i]), readOnlyAction(names[j])
		if ri != rj {
			return ri
		}
		return names[i] < names[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%-52s %15s %15s\n", "action", "plan", "upgrade")
	cell := func(c callCounts, a string) string {
		if c.calls[a] == 0 {
			return "-"
		}
		return fmt.Sprintf("%d / %d", c.calls[a], c.distinct[a])
	}
	var sums [2][2][2]int // [read-only, mutating][plan, upgrade][calls, distinct]
	for _, a := range names {
		fmt.Fprintf(&b, "%-52s %15s %15s\n", a, cell(plan, a), cell(full, a))
		k := 0
		if !readOnlyAction(a) {
			k = 1
		}
		for i, c := range []callCounts{plan, full} {
			sums[k][i][0] += c.calls[a]
			sums[k][i][1] += c.distinct[a]
		}
	}
	for k, label := range []string{"total read-only", "total mutating"} {
		fmt.Fprintf(&b, "%-52s %15s %15s\n", label,
			fmt.Sprintf("%d / %d", sums[k][0][0], sums[k][0][1]), fmt.Sprintf("%d / %d", sums[k][1][0], sums[k][1][1]))
	}
	return b.String()
}

// timeline tells the calls in order, one segment per run of reads or of
// writes: a read segment says how many discoveries it holds (one
// DescribeVpcs by VPC ID each: pkg/aws discoverVPC), a write segment its
// actions. It shows where in the flow each discovery happens.
func timeline(ops []harness.AWSOp) string {
	var segs []string
	for i := 0; i < len(ops); {
		ro := readOnlyAction(ops[i].IAM())
		j := i
		n, discoveries := 0, 0
		actions := map[string]int{}
		var order []string
		for ; j < len(ops) && readOnlyAction(ops[j].IAM()) == ro; j++ {
			n++
			if ops[j].Action == "DescribeVpcs" && ops[j].Params.Get("VpcId.1") != "" {
				discoveries++
			}
			if actions[ops[j].Action] == 0 {
				order = append(order, ops[j].Action)
			}
			actions[ops[j].Action]++
		}
		if ro {
			segs = append(segs, fmt.Sprintf("[%d reads, %d discoveries]", n, discoveries))
		} else {
			var parts []string
			for _, a := range order {
				parts = append(parts, fmt.Sprintf("%s x%d", a, actions[a]))
			}
			segs = append(segs, "["+strings.Join(parts, ", ")+"]")
		}
		i = j
	}
	return strings.Join(segs, " ")
}
