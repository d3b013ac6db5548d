package aws

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// ruleCalls counts the fake's successful calls of an operation.
func ruleCalls(f *fakeCloud, op string) int {
	n := 0
	for _, c := range f.changed() {
		if strings.HasPrefix(c, op+" ") {
			n++
		}
	}
	return n
}

// TestRulesOneCallPerGroupAndDirection: sg-node's three ingress rules are
// one AuthorizeSecurityGroupIngress, the two groups' egress rules one call
// each; the plan and the journal keep one entry per rule, and rollback
// revokes them with one call per group and direction too.
func TestRulesOneCallPerGroupAndDirection(t *testing.T) {
	f := newOpenShiftVPC()
	before := f.state()
	store := newJournal()
	inv, p := discoverAndPlan(t, f)
	if n := countOps(p.Changes); n["AuthorizeSecurityGroupIngress"] != 3 || n["AuthorizeSecurityGroupEgress"] != 2 {
		t.Fatalf("plan: %v; want 3 ingress and 2 egress rules, one change each", n)
	}
	results, err := Apply(context.Background(), f.clients(), inv, p, ApplyOptions{Journal: store, WaitTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Apply: %v\n%+v", err, results)
	}
	if in, eg := ruleCalls(f, "AuthorizeSecurityGroupIngress"), ruleCalls(f, "AuthorizeSecurityGroupEgress"); in != 1 || eg != 2 {
		t.Errorf("AuthorizeSecurityGroupIngress %d calls, Egress %d; want 1 (sg-node) and 2 (sg-node, sg-lb)", in, eg)
	}
	jn, err := store.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rules := 0
	for _, e := range jn.Layer(Layer) {
		if isRuleChange(e.Operation) && e.State == journal.Done {
			rules++
		}
	}
	if rules != 5 {
		t.Errorf("journal has %d done rule entries; want 5, one per rule", rules)
	}
	rollback(t, f, store)
	if in, eg := ruleCalls(f, "RevokeSecurityGroupIngress"), ruleCalls(f, "RevokeSecurityGroupEgress"); in != 1 || eg != 2 {
		t.Errorf("rollback: RevokeSecurityGroupIngress %d calls, Egress %d; want 1 and 2", in, eg)
	}
	expectSame(t, "after rollback", before, f.state())
}

// addIPv6Rule adds an ingress rule to a group of the fake, as someone
// else (or an earlier attempt of apply) would.
func addIPv6Rule(t *testing.T, f *fakeCloud, group string, p ec2types.IpPermission) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := authorize(&f.group(group).IpPermissions, []ec2types.IpPermission{p}); err != nil {
		t.Fatal(err)
	}
}

// TestRulesSomeOfTheBatchExisted: one of sg-node's three planned ingress
// rules appears between the plan and the apply. EC2 refuses the whole
// batch; apply authorizes the other two, and rollback revokes exactly
// those two: a rule that was there before it (someone else's description)
// stays; one an earlier attempt of apply made (apply's description: its
// answer was lost) goes.
func TestRulesSomeOfTheBatchExisted(t *testing.T) {
	for _, tc := range []struct {
		name        string
		description string
		stays       bool
	}{
		{"added by someone else", "opened by hand for the NodePorts", true},
		{"made by an earlier attempt", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOpenShiftVPC()
			before := f.state()
			store := newJournal()
			inv, p := discoverAndPlan(t, f)
			var planned Change
			for _, c := range p.Changes {
				if c.Operation == "AuthorizeSecurityGroupIngress" && c.Parameters["fromPort"] == "30000" {
					planned = c
				}
			}
			if planned.ID == "" {
				t.Fatalf("no NodePort ingress rule planned: %+v", p.Changes)
			}
			existing := permission(planned.Parameters)
			if tc.description != "" {
				existing.Ipv6Ranges[0].Description = aws.String(tc.description)
			}
			addIPv6Rule(t, f, "sg-node", existing)
			withRule := f.state()

			results, err := Apply(context.Background(), f.clients(), inv, p, ApplyOptions{Journal: store, WaitTimeout: 10 * time.Second})
			if err != nil {
				t.Fatalf("Apply: %v\n%+v", err, results)
			}
			for _, r := range results {
				if r.Status != StatusApplied {
					t.Errorf("%s %s: %s %s", r.Operation, r.Resource, r.Status, r.Error)
				}
			}
			// The refused batch, then the two missing rules in one call.
			if n := ruleCalls(f, "AuthorizeSecurityGroupIngress"); n != 1 {
				t.Errorf("%d successful AuthorizeSecurityGroupIngress calls; want 1 (the two missing rules)", n)
			}
			jn, err := store.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range jn.Layer(Layer) {
				marked := e.Undo[ExistedBeforeKey] == "true"
				if want := e.ID == planned.ID && tc.stays; marked != want {
					t.Errorf("journal entry %s: existed before = %v; want %v", e.ID, marked, want)
				}
			}

			rollback(t, f, store)
			if tc.stays {
				expectSame(t, "after rollback (the rule that was there before stays)", withRule, f.state())
			} else {
				expectSame(t, "after rollback", before, f.state())
			}
		})
	}
}

// TestRollbackRulesSomeAlreadyGone: a rule apply made was removed by hand
// before the rollback. EC2 refuses a revoke of the batch; each rule is
// then revoked on its own, the gone one counting as undone.
func TestRollbackRulesSomeAlreadyGone(t *testing.T) {
	f := newOpenShiftVPC()
	before := f.state()
	store := newJournal()
	if _, err := apply(t, f, store); err != nil {
		t.Fatal(err)
	}
	var gone ec2types.IpPermission
	f.mu.Lock()
	g := f.group("sg-node")
	for _, p := range g.IpPermissions {
		if aws.ToInt32(p.FromPort) == 30000 && len(p.Ipv6Ranges) > 0 {
			gone = ec2types.IpPermission{IpProtocol: p.IpProtocol, FromPort: p.FromPort, ToPort: p.ToPort, Ipv6Ranges: slices.Clone(p.Ipv6Ranges)}
		}
	}
	err := revoke(&g.IpPermissions, []ec2types.IpPermission{gone})
	f.mu.Unlock()
	if err != nil || gone.IpProtocol == nil {
		t.Fatalf("removing the NodePort rule by hand: %v (%+v)", err, gone)
	}
	rollback(t, f, store)
	expectSame(t, "after rollback", before, f.state())
}
