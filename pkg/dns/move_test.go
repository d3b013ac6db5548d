package dns

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

const (
	oldELB = "a0123-456.us-east-1.elb.amazonaws.com"
	newNLB = "a9999-abc.elb.us-east-1.amazonaws.com"
)

// moveWorld: records on a Classic ELB (plain, weighted pair, one with an
// AAAA twin already, one with an AAAA pointing elsewhere), one on another
// load balancer, a plain A record.
func moveWorld() *fakeR53 {
	f := newFakeR53()
	blue := alias("shop.example.com.", "dualstack."+oldELB+".")
	blue.SetIdentifier, blue.Weight = aws.String("blue"), aws.Int64(10)
	blue.AliasTarget.EvaluateTargetHealth = true
	green := alias("shop.example.com.", "other-lb.us-east-1.elb.amazonaws.com.")
	green.SetIdentifier, green.Weight = aws.String("green"), aws.Int64(90)
	twinned := alias("api.example.com.", oldELB+".")
	twinnedAAAA := twinned
	twinnedAAAA.Type = r53types.RRTypeAaaa
	odd := alias("odd.example.com.", oldELB+".")
	oddAAAA := alias("odd.example.com.", "elsewhere.example.net.")
	oddAAAA.Type = r53types.RRTypeAaaa
	f.zones["ZPUB"] = &fakeZone{name: "example.com.", records: []r53types.ResourceRecordSet{
		alias(`\052.apps.example.com.`, "DualStack."+strings.ToUpper(oldELB)+"."),
		blue, green, twinned, twinnedAAAA, odd, oddAAAA,
		{Name: aws.String("bastion.example.com."), Type: r53types.RRTypeA, TTL: aws.Int64(300), ResourceRecords: []r53types.ResourceRecord{{Value: aws.String("192.0.2.1")}}},
	}}
	f.zones["ZPRIV"] = &fakeZone{name: "internal.example.com.", private: true, records: []r53types.ResourceRecordSet{
		alias("gw.internal.example.com.", oldELB+"."),
	}}
	return f
}

func TestPlanApplyRollbackMoves(t *testing.T) {
	ctx := context.Background()
	f := moveWorld()
	zones := []Zone{{ID: "ZPRIV", Name: "internal.example.com."}, {ID: "ZPUB", Name: "example.com."}}
	to := LBTarget{DNSName: newNLB, HostedZoneID: "/hostedzone/Z26RNL4JYFTOTI"}
	p, err := PlanMoves(ctx, f, zones, oldELB, to, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range p.Moves {
		got = append(got, m.ZoneID+" "+m.Operation+" "+m.Type+" "+m.Name+" "+m.SetIdentifier)
	}
	want := []string{
		"ZPRIV MoveAlias A gw.internal.example.com. ", "ZPRIV AddAAAA AAAA gw.internal.example.com. ",
		"ZPUB MoveAlias A *.apps.example.com. ", "ZPUB AddAAAA AAAA *.apps.example.com. ",
		"ZPUB MoveAlias AAAA api.example.com. ", "ZPUB MoveAlias A api.example.com. ", // in listing order
		"ZPUB MoveAlias A odd.example.com. ",
		"ZPUB MoveAlias A shop.example.com. blue", "ZPUB AddAAAA AAAA shop.example.com. blue",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("moves:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "odd.example.com.") {
		t.Errorf("notes %q, want one about odd.example.com.'s AAAA", p.Notes)
	}
	if d := p.Describe(); !strings.Contains(d, "add AAAA alias shop.example.com. (set blue) -> "+newNLB) {
		t.Errorf("describe:\n%s", d)
	}

	before := f.state()
	store := journal.NewStore(fake.NewClientset(), "", "")
	results, err := ApplyMoves(ctx, f, p, ApplyOptions{Journal: store})
	if err != nil || len(results) != len(want) {
		t.Fatalf("ApplyMoves: %v %+v", err, results)
	}
	if n := f.calls["ChangeResourceRecordSets"]; n != 2 {
		t.Errorf("%d change batches, want one per zone", n)
	}
	// Every record that led to the old ELB now leads to the NLB, with its
	// routing kept; the others are untouched.
	for _, z := range f.zones {
		for _, r := range z.records {
			if r.AliasTarget == nil {
				continue
			}
			target := NormalizeDNSName(aws.ToString(r.AliasTarget.DNSName))
			if target == oldELB {
				t.Errorf("%s %s still points at the old ELB", aws.ToString(r.Name), r.Type)
			}
			if target == newNLB && aws.ToString(r.AliasTarget.HostedZoneId) != "Z26RNL4JYFTOTI" {
				t.Errorf("%s %s names zone %s", aws.ToString(r.Name), r.Type, aws.ToString(r.AliasTarget.HostedZoneId))
			}
			if aws.ToString(r.SetIdentifier) == "blue" && (aws.ToInt64(r.Weight) != 10 || !r.AliasTarget.EvaluateTargetHealth || target != newNLB) {
				t.Errorf("blue %s lost its routing or target: %+v", r.Type, r)
			}
			if aws.ToString(r.SetIdentifier) == "green" && target != "other-lb.us-east-1.elb.amazonaws.com" {
				t.Errorf("green was moved: %+v", r)
			}
			if aws.ToString(r.Name) == "odd.example.com." && r.Type == r53types.RRTypeAaaa && target != "elsewhere.example.net" {
				t.Errorf("odd's AAAA was moved: %+v", r)
			}
		}
	}
	jn, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !HasMoves(jn) || len(jn.Layer(MoveLayer)) != len(want) {
		t.Fatalf("journal: %+v", jn.Layer(MoveLayer))
	}
	for _, e := range jn.Layer(MoveLayer) {
		if e.State != journal.Done {
			t.Errorf("%s is %s", e.ID, e.State)
		}
	}

	// Someone changes one moved record by hand: rollback leaves it alone.
	for i, r := range f.zones["ZPRIV"].records {
		if r.Type == r53types.RRTypeAaaa {
			r.AliasTarget = &r53types.AliasTarget{DNSName: aws.String("by-hand.example.net."), HostedZoneId: aws.String("ZX")}
			f.zones["ZPRIV"].records[i] = r
		}
	}
	rb, err := RollbackMoves(ctx, f, store, nil)
	if err != nil {
		t.Fatalf("RollbackMoves: %v", err)
	}
	left := 0
	for _, r := range rb {
		if r.Error != "" {
			left++
			if r.Resource != "gw.internal.example.com. AAAA" {
				t.Errorf("left alone: %+v", r)
			}
		}
	}
	if left != 1 || len(rb) != len(want) {
		t.Errorf("rollback results %+v", rb)
	}
	after := slices.DeleteFunc(f.state(), func(s string) bool { return strings.Contains(s, "by-hand") })
	if !slices.Equal(after, before) {
		t.Errorf("after rollback:\n%s\nbefore:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
	jn, _ = store.Load(ctx)
	if HasMoves(jn) {
		t.Errorf("entries left after rollback: %+v", jn.Layer(MoveLayer))
	}
	// A second rollback has nothing to do.
	calls := f.calls["ChangeResourceRecordSets"]
	if rb, err := RollbackMoves(ctx, f, store, nil); err != nil || len(rb) != 0 || f.calls["ChangeResourceRecordSets"] != calls {
		t.Errorf("second rollback: %v %+v", err, rb)
	}
}

func TestPlanMovesNothingToMove(t *testing.T) {
	f := moveWorld()
	p, err := PlanMoves(context.Background(), f, []Zone{{ID: "ZPUB", Name: "example.com."}}, "not-there.elb.amazonaws.com", LBTarget{DNSName: newNLB, HostedZoneID: "Z1"}, "")
	if err != nil || len(p.Moves) != 0 {
		t.Fatalf("%v %+v", err, p)
	}
	if _, err := PlanMoves(context.Background(), f, nil, oldELB, LBTarget{DNSName: newNLB}, ""); err == nil {
		t.Error("no error without the new load balancer's hosted zone")
	}
}

func TestManualMoves(t *testing.T) {
	s := ManualMoves("dualstack."+oldELB+".", newNLB)
	if !strings.Contains(s, oldELB+" at "+newNLB) || !strings.Contains(s, "AAAA") {
		t.Error(s)
	}
}

// TestRollbackMovesToARecreatedELB: the old gateway Service was retired
// (its Classic ELB deleted) and created again behind a new ELB: the
// records go back to the new ELB's name, keeping the rest of the record;
// the AAAA twins the move added go.
func TestRollbackMovesToARecreatedELB(t *testing.T) {
	ctx := context.Background()
	f := moveWorld()
	zones := []Zone{{ID: "ZPRIV", Name: "internal.example.com."}, {ID: "ZPUB", Name: "example.com."}}
	// What rollback should leave: every record as it was, the old ELB's
	// name replaced by the new one's.
	const recreated = "a7777-new.us-east-1.elb.amazonaws.com"
	var want []string
	for id, z := range f.zones {
		for _, r := range z.records {
			if r.AliasTarget != nil && NormalizeDNSName(aws.ToString(r.AliasTarget.DNSName)) == oldELB {
				at := *r.AliasTarget
				at.DNSName = aws.String(recreated)
				if was := aws.ToString(r.AliasTarget.DNSName); strings.HasPrefix(strings.ToLower(was), "dualstack.") {
					at.DNSName = aws.String("dualstack." + recreated)
				}
				if strings.HasSuffix(aws.ToString(r.AliasTarget.DNSName), ".") {
					at.DNSName = aws.String(aws.ToString(at.DNSName) + ".")
				}
				r.AliasTarget = &at
			}
			want = append(want, id+" "+recordJSON(r))
		}
	}
	slices.Sort(want)
	p, err := PlanMoves(ctx, f, zones, oldELB, LBTarget{DNSName: newNLB, HostedZoneID: "Z26RNL4JYFTOTI"}, "")
	if err != nil {
		t.Fatal(err)
	}
	store := journal.NewStore(fake.NewClientset(), "", "")
	if _, err := ApplyMoves(ctx, f, p, ApplyOptions{Journal: store}); err != nil {
		t.Fatal(err)
	}
	rb, err := RollbackMoves(ctx, f, store, map[string]string{oldELB: recreated})
	if err != nil {
		t.Fatalf("RollbackMoves: %v %+v", err, rb)
	}
	for _, r := range rb {
		if r.Error != "" {
			t.Errorf("left alone: %+v", r)
		}
	}
	got := f.state()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("after rollback to the re-created ELB:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, z := range f.zones {
		for _, r := range z.records {
			if r.AliasTarget != nil && NormalizeDNSName(aws.ToString(r.AliasTarget.DNSName)) == newNLB {
				t.Errorf("%s %s still leads to the NLB", aws.ToString(r.Name), r.Type)
			}
		}
	}
}

// TestPlanMovesExternalDNSOwnership: a record external-dns owns moves only
// when the old gateway Service owns it (its annotations move with it); one
// owned by another source is left alone, with a note.
func TestPlanMovesExternalDNSOwnership(t *testing.T) {
	f := newFakeR53()
	txt := func(name, value string) r53types.ResourceRecordSet {
		return r53types.ResourceRecordSet{Name: aws.String(name), Type: r53types.RRTypeTxt, TTL: aws.Int64(300),
			ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(`"` + value + `"`)}}}
	}
	f.zones["ZPUB"] = &fakeZone{name: "example.com.", records: []r53types.ResourceRecordSet{
		alias("ours.example.com.", oldELB+"."),
		txt("a-ours.example.com.", "heritage=external-dns,external-dns/owner=c1,external-dns/resource=service/istio-system/gw"),
		alias("theirs.example.com.", oldELB+"."),
		txt("theirs.example.com.", "heritage=external-dns,external-dns/owner=c1,external-dns/resource=ingress/shop/web"),
		alias("plain.example.com.", oldELB+"."),
		txt("plain.example.com.", "v=spf1 -all"),
	}}
	p, err := PlanMoves(context.Background(), f, []Zone{{ID: "ZPUB", Name: "example.com."}}, oldELB, LBTarget{DNSName: newNLB, HostedZoneID: "Z1"}, "service/istio-system/gw")
	if err != nil {
		t.Fatal(err)
	}
	var moved []string
	for _, m := range p.Moves {
		moved = append(moved, m.Type+" "+m.Name)
	}
	want := []string{"A ours.example.com.", "AAAA ours.example.com.", "A plain.example.com.", "AAAA plain.example.com."}
	if !slices.Equal(moved, want) {
		t.Errorf("moves %q, want %q", moved, want)
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "theirs.example.com.") || !strings.Contains(p.Notes[0], "ingress/shop/web") {
		t.Errorf("notes %q, want one naming theirs and its owner", p.Notes)
	}
}
