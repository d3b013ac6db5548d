package aws

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// The cluster c1 of newOpenShiftVPC, as its nodes name it; its m1.large
// worker gets a type with IPv6 support.
var (
	c1Target = Target{InfraID: "c1", Instances: map[string]bool{"i-master-0": true, "i-worker-a": false, "i-worker-b": false}}
	c1Plan   = PlanOptions{NewInstanceType: "m6i.large"}
)

// c1Changes is the plan for newOpenShiftVPC, by operation.
var c1Changes = map[string]int{
	"AssociateVpcCidrBlock": 1, "CreateEgressOnlyInternetGateway": 1,
	"AssociateSubnetCidrBlock": 4, "CreateRoute": 3, // rtb-pub -> igw-1, rtb-priv-a and -b -> the egress-only gateway
	"AuthorizeSecurityGroupIngress": 3, // sg-node: 22 from the VPC, 30000-32767 and ICMP from anywhere (sg-lb's 6443 has its ::/0)
	"AuthorizeSecurityGroupEgress":  2, // sg-node, sg-lb
	"ModifySubnetAttribute":         4,
	"ModifyInstanceAttribute":       1, // i-worker-b, m1.large
	"AssignIpv6Addresses":           3, // the primary ENIs only
	"SetIpAddressType":              1, // the NLB; the Classic ELB is a note
}

func discoverAndPlan(t *testing.T, f *fakeCloud) (*Inventory, *Plan) {
	t.Helper()
	inv, err := Discover(context.Background(), f.clients(), c1Target)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	return inv, MakePlan(inv, c1Plan)
}

func newJournal() *journal.Store { return journal.NewStore(fake.NewClientset(), "", "") }

func apply(t *testing.T, f *fakeCloud, j Journal) ([]Result, error) {
	t.Helper()
	inv, p := discoverAndPlan(t, f)
	return Apply(context.Background(), f.clients(), inv, p, ApplyOptions{Journal: j, WaitTimeout: 10 * time.Second})
}

func rollback(t *testing.T, f *fakeCloud, j Journal) []Result {
	t.Helper()
	results, err := Rollback(context.Background(), f.clients(), "vpc-1", j, RollbackOptions{WaitTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Rollback: %v\n%+v", err, results)
	}
	for _, r := range results {
		if r.Status != StatusUndone {
			t.Errorf("rollback of %s %s: %s %s", r.Operation, r.Resource, r.Status, r.Error)
		}
	}
	return results
}

// expectSame fails with the difference when the cloud is not as before.
func expectSame(t *testing.T, what string, before, now []string) {
	t.Helper()
	if d := diff(before, now); len(d) > 0 {
		t.Errorf("%s: the VPC is not as it was before apply:\n%s", what, strings.Join(d, "\n"))
	}
}

func journalStates(t *testing.T, j Journal) map[journal.State]int {
	t.Helper()
	jn, err := j.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	states := map[journal.State]int{}
	for _, e := range jn.Layer(Layer) {
		states[e.State]++
	}
	return states
}

func countOps(cs []Change) map[string]int {
	n := map[string]int{}
	for _, c := range cs {
		n[c.Operation]++
	}
	return n
}

func TestApplyRollbackRestoresTheVPCExactly(t *testing.T) {
	f := newOpenShiftVPC()
	before := f.state()
	ctx := context.Background()
	store := newJournal()

	for round := 1; round <= 2; round++ { // the second after a rollback: AWS hands out a new /56
		inv, p := discoverAndPlan(t, f)
		if got := countOps(p.Changes); len(got) != len(c1Changes) || !mapsEqual(got, c1Changes) {
			t.Fatalf("round %d: plan %v, want %v", round, got, c1Changes)
		}
		results, err := Apply(ctx, f.clients(), inv, p, ApplyOptions{Journal: store, WaitTimeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("round %d: Apply: %v", round, err)
		}
		for _, r := range results {
			if r.Status != StatusApplied {
				t.Errorf("round %d: %s %s: %s %s", round, r.Operation, r.Resource, r.Status, r.Error)
			}
		}
		applied := f.state()
		d := diff(before, applied)
		for _, kind := range []string{"+ vpc ", "+ subnet ", "+ route rtb-pub ::/0 -> igw-1", "+ route rtb-priv-a ::/0 -> eigw-", "+ sg sg-node ingress",
			"+ sg sg-lb egress -1/-1/-1 ::/0", "+ eni eni-wb ipv6 [2600:1f18:4bd:", "+ eigw ", "+ instance i-worker-b m6i.large running", "+ lb c1-ext dualstack"} {
			if !containsPrefix(d, kind) {
				t.Errorf("round %d: apply did not change %q; the changes:\n%s", round, kind, strings.Join(d, "\n"))
			}
		}
		// Only the cluster's own resources, and only what it lacked.
		for _, line := range d {
			for _, foreign := range []string{"subnet-other", "rtb-other", "sg-other", "eni-other", "i-other", "rtb-main", "eni-wa-2", "6443"} {
				if strings.Contains(line, foreign) {
					t.Errorf("round %d: apply changed %s: %s", round, foreign, line)
				}
			}
		}
		if s := journalStates(t, store); s[journal.Done] != len(p.Changes) || s[journal.Pending] != 0 {
			t.Errorf("round %d: journal after apply: %v, want %d done", round, s, len(p.Changes))
		}

		// Idempotent: planned again from the changed VPC, nothing is left
		// to do, and applying that changes nothing.
		inv2, p2 := discoverAndPlan(t, f)
		if len(p2.Changes) != 0 {
			t.Fatalf("round %d: a second plan after apply: %+v", round, p2.Changes)
		}
		calls := len(f.changed())
		if results, err := Apply(ctx, f.clients(), inv2, p2, ApplyOptions{Journal: store}); err != nil || len(results) != 0 || len(f.changed()) != calls {
			t.Fatalf("round %d: applying the empty plan: %v %+v, %d calls", round, err, results, len(f.changed())-calls)
		}
		expectSame(t, "after the empty apply", applied, f.state())

		undone := rollback(t, f, store)
		if len(undone) != len(p.Changes) {
			t.Errorf("round %d: rollback undid %d entries, apply made %d changes", round, len(undone), len(p.Changes))
		}
		expectSame(t, "after rollback", before, f.state())
		if s := journalStates(t, store); s[journal.Undone] != len(p.Changes) || len(s) != 1 {
			t.Errorf("round %d: journal after rollback: %v", round, s)
		}
		// A second rollback finds nothing to undo.
		calls = len(f.changed())
		if results := rollback(t, f, store); len(results) != 0 || len(f.changed()) != calls {
			t.Errorf("round %d: a second rollback: %+v, %d calls", round, results, len(f.changed())-calls)
		}
	}
}

// failingJournal cannot be written any more from the first write that
// records a change as done: the done records of the first changes made are
// lost, and everything after.
type failingJournal struct {
	Journal
	mu     sync.Mutex
	broken bool
}

func (j *failingJournal) PutAll(ctx context.Context, es []journal.Entry) error {
	j.mu.Lock()
	j.broken = j.broken || slices.ContainsFunc(es, func(e journal.Entry) bool { return e.State == journal.Done })
	fail := j.broken
	j.mu.Unlock()
	if fail {
		return errors.New("injected: the journal ConfigMap could not be written")
	}
	return j.Journal.PutAll(ctx, es)
}

func TestApplyFailingMidwayRollsBackWhatWasApplied(t *testing.T) {
	for _, tc := range []struct {
		name        string
		op, res     string
		code        string
		after       bool // the change is made and its answer lost
		journalFail bool // the journal breaks instead (failingJournal)
		// failed are the changes the apply reports failed.
		failed []string
	}{
		{name: "VPC block refused", op: "AssociateVpcCidrBlock", res: "vpc-1", code: "CidrLimitExceeded", failed: []string{"AssociateVpcCidrBlock vpc-1"}},
		{name: "route refused", op: "CreateRoute", res: "rtb-priv-b", code: "RouteLimitExceeded", failed: []string{"CreateRoute rtb-priv-b"}},
		{name: "subnet block made, answer lost", op: "AssociateSubnetCidrBlock", res: "subnet-priv-a", code: "RequestTimeout", after: true,
			failed: []string{"AssociateSubnetCidrBlock subnet-priv-a"}},
		// sg-node's three ingress rules are one call: all three fail.
		{name: "rule refused", op: "AuthorizeSecurityGroupIngress", res: "sg-node", code: "RulesPerSecurityGroupLimitExceeded",
			failed: []string{"AuthorizeSecurityGroupIngress sg-node", "AuthorizeSecurityGroupIngress sg-node", "AuthorizeSecurityGroupIngress sg-node"}},
		{name: "type change refused", op: "ModifyInstanceAttribute", res: "i-worker-b", code: "InsufficientInstanceCapacity",
			failed: []string{"ModifyInstanceAttribute i-worker-b"}},
		{name: "address made, answer lost", op: "AssignIpv6Addresses", res: "eni-wb", code: "RequestTimeout", after: true,
			failed: []string{"AssignIpv6Addresses eni-wb"}},
		{name: "load balancer refused", op: "SetIpAddressType", code: "InvalidConfigurationRequest", failed: []string{"SetIpAddressType c1-ext"}},
		// The first phase's changes were made (or the second, not
		// attempted: its pending record could not be written); the done
		// records are lost, so what was made stays pending.
		{name: "journal breaks once the first changes are made", journalFail: true,
			failed: []string{"AssociateVpcCidrBlock vpc-1", "CreateEgressOnlyInternetGateway vpc-1"}},
	} {
		for _, resume := range []bool{false, true} {
			name := tc.name + "/rollback"
			if resume {
				name = tc.name + "/apply again, then rollback"
			}
			t.Run(name, func(t *testing.T) {
				f := newOpenShiftVPC()
				before := f.state()
				store := newJournal()
				var j Journal = store
				if tc.journalFail {
					j = &failingJournal{Journal: store}
				} else {
					f.fail(tc.op, tc.res, tc.code, tc.after)
				}
				results, err := apply(t, f, j)
				if err == nil || !strings.Contains(err.Error(), "rollback undoes it") {
					t.Fatalf("Apply = %v; want the failure", err)
				}
				var failed []string
				applied := 0
				for _, r := range results {
					switch r.Status {
					case StatusFailed:
						failed = append(failed, r.Operation+" "+r.Resource)
					case StatusApplied:
						applied++
					}
				}
				if !slices.Equal(failed, tc.failed) {
					t.Fatalf("failed changes %v; want %v", failed, tc.failed)
				}
				partial := f.state()
				if len(diff(before, partial)) == 0 {
					t.Fatal("nothing was applied before the failure: the case tests nothing")
				}
				// Every change made is in the journal, done or pending.
				jn, err := store.Load(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range f.changed() {
					op, res, _ := strings.Cut(c, " ")
					if op == "StopInstances" || op == "StartInstances" {
						op = "ModifyInstanceAttribute"
					}
					recorded := false
					for _, e := range jn.Layer(Layer) {
						recorded = recorded || (e.Operation == op && (e.Resource == res || e.Undo["loadBalancerArn"] == res) && e.State != journal.Undone)
					}
					if !recorded {
						t.Errorf("%s was made but is not in the journal", c)
					}
				}
				if resume {
					if _, err := apply(t, f, store); err != nil {
						t.Fatalf("apply again: %v", err)
					}
					if _, p := discoverAndPlan(t, f); len(p.Changes) != 0 {
						t.Fatalf("after apply again, a plan still has %+v", p.Changes)
					}
				}
				rollback(t, f, store)
				expectSame(t, "after rollback", before, f.state())
				if s := journalStates(t, store); s[journal.Pending]+s[journal.Done] != 0 {
					t.Errorf("journal after rollback: %v", s)
				}
			})
		}
	}
}

// TestRollbackCheckCatchesWhatIsLeftBehind shows that the comparison the
// rollback tests rest on fails when one undo is skipped, though rollback
// itself reports success.
func TestRollbackCheckCatchesWhatIsLeftBehind(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sabotage func(*fakeCloud, Journal)
		left     string
	}{
		{"the route's entry is skipped", func(_ *fakeCloud, j Journal) {
			if err := j.(*journal.Store).SetState(context.Background(), "underlay/CreateRoute/rtb-pub", journal.Undone, nil); err != nil {
				t.Fatal(err)
			}
		}, "+ route rtb-pub ::/0 -> igw-1 (active)"},
		{"DeleteRoute answers but does nothing", func(f *fakeCloud, _ Journal) { f.lie("DeleteRoute", "rtb-priv-a") }, "+ route rtb-priv-a ::/0 -> eigw-"},
		{"a revoke answers but does nothing", func(f *fakeCloud, _ Journal) { f.lie("RevokeSecurityGroupEgress", "sg-lb") }, "+ sg sg-lb egress -1/-1/-1 ::/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOpenShiftVPC()
			before := f.state()
			store := newJournal()
			if _, err := apply(t, f, store); err != nil {
				t.Fatal(err)
			}
			tc.sabotage(f, store)
			rollback(t, f, store)
			d := diff(before, f.state())
			if !containsPrefix(d, tc.left) {
				t.Fatalf("the comparison does not show %q; it shows:\n%s", tc.left, strings.Join(d, "\n"))
			}
		})
	}
}

func containsPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestApplyAddressesWaitOnlyForTheirSubnet: without instance type changes,
// subnet attributes and ENI addresses run alongside the subnet /64s, each
// waiting for its own subnet's /64 (the fake refuses an address or
// AssignIpv6AddressOnCreation in a subnet without IPv6).
func TestApplyAddressesWaitOnlyForTheirSubnet(t *testing.T) {
	f := newOpenShiftVPC()
	before := f.state()
	store := newJournal()
	inv, err := Discover(context.Background(), f.clients(), c1Target)
	if err != nil {
		t.Fatal(err)
	}
	p := MakePlan(inv, PlanOptions{})
	if st := stages(p.Changes); len(st) != 2 {
		t.Fatalf("%d stages without type changes; want 2 (the VPC, then the rest)", len(st))
	}
	for range 5 { // the lanes' interleaving varies
		results, err := Apply(context.Background(), f.clients(), inv, p, ApplyOptions{Journal: store, Parallel: 2, Batch: 2, WaitTimeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("Apply: %v\n%+v", err, results)
		}
		made := map[string]int{}
		for n, c := range f.changed() {
			made[c] = n
		}
		for _, c := range p.Changes {
			if c.Operation != "AssignIpv6Addresses" && c.Operation != "ModifySubnetAttribute" {
				continue
			}
			if at, ok := made["AssociateSubnetCidrBlock "+c.Parameters["subnetId"]]; ok && at > made[c.Operation+" "+c.Resource] {
				t.Errorf("%s %s was made before its subnet's /64", c.Operation, c.Resource)
			}
		}
		rollback(t, f, store)
		expectSame(t, "after rollback", before, f.state())
		inv, p = discoverAndPlan(t, f)
		p = MakePlan(inv, PlanOptions{})
	}
}
