package dns

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"
	"k8s.io/client-go/kubernetes/fake"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// fakeR53 keeps zones and record sets as Route 53 does: a record set is
// unique by name, type and set identifier; a batch is atomic; listing is
// paged in (name, type, set identifier) order.
type fakeR53 struct {
	awsx.Route53API
	mu      sync.Mutex
	zones   map[string]*fakeZone
	calls   map[string]int
	maxPage int
}

type fakeZone struct {
	name    string
	private bool
	vpcs    []string
	tags    map[string]string
	records []r53types.ResourceRecordSet
}

func newFakeR53() *fakeR53 {
	return &fakeR53{zones: map[string]*fakeZone{}, calls: map[string]int{}, maxPage: 300}
}

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

func (f *fakeR53) call(op string) {
	f.mu.Lock()
	f.calls[op]++
	f.mu.Unlock()
}

func (f *fakeR53) GetHostedZone(_ context.Context, in *route53.GetHostedZoneInput, _ ...func(*route53.Options)) (*route53.GetHostedZoneOutput, error) {
	f.call("GetHostedZone")
	z, ok := f.zones[aws.ToString(in.Id)]
	if !ok {
		return nil, apiErr("NoSuchHostedZone")
	}
	out := &route53.GetHostedZoneOutput{HostedZone: &r53types.HostedZone{Id: aws.String("/hostedzone/" + aws.ToString(in.Id)), Name: aws.String(z.name),
		Config: &r53types.HostedZoneConfig{PrivateZone: z.private}}}
	for _, v := range z.vpcs {
		out.VPCs = append(out.VPCs, r53types.VPC{VPCId: aws.String(v)})
	}
	return out, nil
}

func (f *fakeR53) ListHostedZonesByVPC(_ context.Context, in *route53.ListHostedZonesByVPCInput, _ ...func(*route53.Options)) (*route53.ListHostedZonesByVPCOutput, error) {
	f.call("ListHostedZonesByVPC")
	out := &route53.ListHostedZonesByVPCOutput{}
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for k := range f.zones {
			if !yield(k) {
				return
			}
		}
	}) {
		z := f.zones[id]
		if z.private && slices.Contains(z.vpcs, aws.ToString(in.VPCId)) {
			out.HostedZoneSummaries = append(out.HostedZoneSummaries, r53types.HostedZoneSummary{HostedZoneId: aws.String(id), Name: aws.String(z.name)})
		}
	}
	return out, nil
}

func (f *fakeR53) ListResourceRecordSets(_ context.Context, in *route53.ListResourceRecordSetsInput, _ ...func(*route53.Options)) (*route53.ListResourceRecordSetsOutput, error) {
	f.call("ListResourceRecordSets")
	f.mu.Lock()
	defer f.mu.Unlock()
	z, ok := f.zones[aws.ToString(in.HostedZoneId)]
	if !ok {
		return nil, apiErr("NoSuchHostedZone")
	}
	rs := slices.Clone(z.records)
	key := func(r r53types.ResourceRecordSet) string {
		return aws.ToString(r.Name) + "|" + string(r.Type) + "|" + aws.ToString(r.SetIdentifier)
	}
	sort.Slice(rs, func(a, b int) bool { return key(rs[a]) < key(rs[b]) })
	start := 0
	if n := aws.ToString(in.StartRecordName); n != "" {
		from := n + "|" + string(in.StartRecordType) + "|" + aws.ToString(in.StartRecordIdentifier)
		for start < len(rs) && key(rs[start]) < from {
			start++
		}
	}
	limit := f.maxPage
	if in.MaxItems != nil && int(*in.MaxItems) < limit {
		limit = int(*in.MaxItems)
	}
	end := min(start+limit, len(rs))
	out := &route53.ListResourceRecordSetsOutput{ResourceRecordSets: rs[start:end]}
	if end < len(rs) {
		out.IsTruncated = true
		out.NextRecordName, out.NextRecordType = rs[end].Name, rs[end].Type
		out.NextRecordIdentifier = rs[end].SetIdentifier
	}
	return out, nil
}

func (f *fakeR53) ChangeResourceRecordSets(_ context.Context, in *route53.ChangeResourceRecordSetsInput, _ ...func(*route53.Options)) (*route53.ChangeResourceRecordSetsOutput, error) {
	f.call("ChangeResourceRecordSets")
	f.mu.Lock()
	defer f.mu.Unlock()
	z, ok := f.zones[aws.ToString(in.HostedZoneId)]
	if !ok {
		return nil, apiErr("NoSuchHostedZone")
	}
	if len(in.ChangeBatch.Changes) > MaxBatch {
		return nil, apiErr("InvalidChangeBatch")
	}
	next := slices.Clone(z.records)
	same := func(a, b r53types.ResourceRecordSet) bool {
		return aws.ToString(a.Name) == aws.ToString(b.Name) && a.Type == b.Type && aws.ToString(a.SetIdentifier) == aws.ToString(b.SetIdentifier)
	}
	for _, c := range in.ChangeBatch.Changes {
		rs := *c.ResourceRecordSet
		if !strings.HasSuffix(aws.ToString(rs.Name), ".") {
			rs.Name = aws.String(aws.ToString(rs.Name) + ".")
		}
		i := slices.IndexFunc(next, func(x r53types.ResourceRecordSet) bool { return same(x, rs) })
		switch c.Action {
		case r53types.ChangeActionCreate:
			if i >= 0 {
				return nil, apiErr("InvalidChangeBatch")
			}
			next = append(next, rs)
		case r53types.ChangeActionUpsert:
			if i >= 0 {
				next[i] = rs
			} else {
				next = append(next, rs)
			}
		case r53types.ChangeActionDelete:
			if i < 0 || recordJSON(next[i]) != recordJSON(rs) {
				return nil, apiErr("InvalidChangeBatch")
			}
			next = slices.Delete(next, i, i+1)
		}
	}
	z.records = next
	return &route53.ChangeResourceRecordSetsOutput{ChangeInfo: &r53types.ChangeInfo{Id: aws.String("/change/C1"), Status: r53types.ChangeStatusPending}}, nil
}

func (f *fakeR53) GetChange(_ context.Context, in *route53.GetChangeInput, _ ...func(*route53.Options)) (*route53.GetChangeOutput, error) {
	f.call("GetChange")
	return &route53.GetChangeOutput{ChangeInfo: &r53types.ChangeInfo{Id: in.Id, Status: r53types.ChangeStatusInsync}}, nil
}

func alias(name, target string) r53types.ResourceRecordSet {
	return r53types.ResourceRecordSet{Name: aws.String(name), Type: r53types.RRTypeA,
		AliasTarget: &r53types.AliasTarget{DNSName: aws.String(target), HostedZoneId: aws.String("Z26RNL4JYFTOTI")}}
}

func (f *fakeR53) state() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id, z := range f.zones {
		for _, r := range z.records {
			out = append(out, id+" "+recordJSON(r))
		}
	}
	sort.Strings(out)
	return out
}

// world: a private zone with the installer's records and a weighted pair,
// a public zone, an NLB that becomes dual-stack, one that stays IPv4, a
// Classic ELB.
func world() (*fakeR53, map[string]Target) {
	f := newFakeR53()
	weighted := alias("www.c1.example.com.", "dualstack.c1-ext-123.elb.us-east-1.amazonaws.com.")
	weighted.SetIdentifier, weighted.Weight = aws.String("blue"), aws.Int64(10)
	f.zones["ZPRIV"] = &fakeZone{name: "c1.example.com.", private: true, vpcs: []string{"vpc-1"}, records: []r53types.ResourceRecordSet{
		alias("api.c1.example.com.", "c1-int-123.elb.us-east-1.amazonaws.com."),
		alias("api-int.c1.example.com.", "c1-int-123.elb.us-east-1.amazonaws.com."),
		alias(`\052.apps.c1.example.com.`, "a0123.us-east-1.elb.amazonaws.com."),
		alias("legacy.c1.example.com.", "c1-v4only-9.elb.us-east-1.amazonaws.com."),
		alias("cdn.c1.example.com.", "d111.cloudfront.net."),
		weighted,
		{Name: aws.String("bastion.c1.example.com."), Type: r53types.RRTypeA, TTL: aws.Int64(300), ResourceRecords: []r53types.ResourceRecord{{Value: aws.String("10.0.0.10")}}},
	}}
	done := alias("api.c1.example.com.", "c1-ext-123.elb.us-east-1.amazonaws.com.")
	doneAAAA := done
	doneAAAA.Type = r53types.RRTypeAaaa
	f.zones["ZPUB"] = &fakeZone{name: "example.com.", records: []r53types.ResourceRecordSet{done, doneAAAA,
		alias("www.example.com.", "c1-ext-123.elb.us-east-1.amazonaws.com.")}}
	targets := map[string]Target{
		"c1-int-123.elb.us-east-1.amazonaws.com":  {LoadBalancer: "c1-int", Type: "network", Planned: true},
		"c1-ext-123.elb.us-east-1.amazonaws.com":  {LoadBalancer: "c1-ext", Type: "network", DualStack: true},
		"c1-v4only-9.elb.us-east-1.amazonaws.com": {LoadBalancer: "c1-v4only", Type: "network"},
		"a0123.us-east-1.elb.amazonaws.com":       {LoadBalancer: "a0123", Type: "classic", Service: "openshift-ingress/router-default"},
	}
	return f, targets
}

func TestPlanApplyRollback(t *testing.T) {
	ctx := context.Background()
	f, targets := world()
	zones, err := FindZones(ctx, f, ZoneOptions{ZoneIDs: []string{"ZPRIV", "/hostedzone/ZPUB"}, VPCID: "vpc-1", ClusterDomain: "c1.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(ctx, f, zones, targets, "kubectl dualstack")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Changes {
		got = append(got, c.ZoneID+" "+c.Name+" "+c.SetIdentifier+" -> "+c.LoadBalancer)
	}
	want := []string{
		"ZPRIV api-int.c1.example.com.  -> c1-int", "ZPRIV api.c1.example.com.  -> c1-int", "ZPRIV www.c1.example.com. blue -> c1-ext",
		"ZPUB www.example.com.  -> c1-ext",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var notes []string
	for _, n := range p.Notes {
		notes = append(notes, n.Message)
	}
	for _, w := range []string{"*.apps.c1.example.com. -> a0123 (Service openshift-ingress/router-default)", "legacy.c1.example.com. -> c1-v4only", "1 plain A record(s) in zone c1.example.com. have no AAAA, and none is invented: bastion.c1.example.com."} {
		if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, w) }) {
			t.Errorf("no note with %q in %q", w, notes)
		}
	}

	before := f.state()
	store := journal.NewStore(fake.NewClientset(), "", "")
	results, err := Apply(ctx, f, p, ApplyOptions{Journal: store})
	if err != nil || len(results) != 4 {
		t.Fatalf("Apply: %v %+v", err, results)
	}
	if f.calls["ChangeResourceRecordSets"] != 2 {
		t.Errorf("%d change batches, want one per zone", f.calls["ChangeResourceRecordSets"])
	}
	var blue r53types.ResourceRecordSet
	for _, r := range f.zones["ZPRIV"].records {
		if r.Type == r53types.RRTypeAaaa && aws.ToString(r.SetIdentifier) == "blue" {
			blue = r
		}
	}
	if aws.ToInt64(blue.Weight) != 10 || !strings.HasPrefix(aws.ToString(blue.AliasTarget.DNSName), "dualstack.") {
		t.Errorf("the weighted twin lost its routing or target: %s", recordJSON(blue))
	}
	again, _ := MakePlan(ctx, f, zones, targets, "kubectl dualstack")
	if len(again.Changes) != 0 {
		t.Errorf("a plan after apply still has %d changes", len(again.Changes))
	}

	// Someone repoints one twin: rollback leaves it and deletes the rest.
	for i, r := range f.zones["ZPUB"].records {
		if aws.ToString(r.Name) == "www.example.com." && r.Type == r53types.RRTypeAaaa {
			f.zones["ZPUB"].records[i].AliasTarget = &r53types.AliasTarget{DNSName: aws.String("elsewhere.example.net."), HostedZoneId: aws.String("Z1")}
		}
	}
	res, err := Rollback(ctx, f, store)
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	left := 0
	for _, r := range res {
		if r.Error != "" {
			left++
		}
	}
	if left != 1 {
		t.Errorf("rollback results %+v, want one left alone", res)
	}
	now := f.state()
	if d := len(now) - len(before); d != 1 {
		t.Errorf("after rollback %d records more than before, want 1 (the repointed twin)", d)
	}
	// A second rollback finds nothing left to do.
	if res, err := Rollback(ctx, f, store); err != nil || len(res) != 0 {
		t.Errorf("second rollback: %v %+v", err, res)
	}
}

func TestFindZonesBadInput(t *testing.T) {
	ctx := context.Background()
	f, _ := world()
	f.zones["ZOTHER"] = &fakeZone{name: "corp.internal.", private: true, vpcs: []string{"vpc-9"}}
	f.zones["ZFOREIGN"] = &fakeZone{name: "example.org."}
	for _, tc := range []struct{ id, want string }{
		{"ZNOPE", "--hosted-zone ZNOPE: no such hosted zone"},
		{"ZOTHER", "private zone corp.internal. is not associated with the cluster's VPC vpc-1 (its VPCs: vpc-9)"},
		{"ZFOREIGN", "zone example.org. is for another domain; the cluster's names are under c1.example.com"},
	} {
		_, err := FindZones(ctx, f, ZoneOptions{ZoneIDs: []string{tc.id}, VPCID: "vpc-1", ClusterDomain: "c1.example.com"})
		var bad *BadInputError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !asBad(err, &bad) {
			t.Errorf("%s: %v, want bad input %q", tc.id, err, tc.want)
		}
	}
	zs, err := FindZones(ctx, f, ZoneOptions{VPCID: "vpc-1"})
	if err != nil || len(zs) != 1 || zs[0].ID != "ZPRIV" {
		t.Errorf("zones of vpc-1: %+v %v", zs, err)
	}
}

func asBad(err error, target **BadInputError) bool {
	b, ok := err.(*BadInputError)
	*target = b
	return ok
}

// TestScale: 5,000 alias records are read in pages and changed in batches
// of MaxBatch: a handful of calls, not one per record.
func TestScale(t *testing.T) {
	ctx := context.Background()
	f := newFakeR53()
	z := &fakeZone{name: "c1.example.com.", private: true, vpcs: []string{"vpc-1"}}
	for i := range 5000 {
		z.records = append(z.records, alias(fmt.Sprintf("svc-%04d.c1.example.com.", i), "c1-int-123.elb.us-east-1.amazonaws.com."))
	}
	f.zones["ZPRIV"] = z
	targets := map[string]Target{"c1-int-123.elb.us-east-1.amazonaws.com": {LoadBalancer: "c1-int", Type: "network", DualStack: true}}
	zones, _ := FindZones(ctx, f, ZoneOptions{VPCID: "vpc-1"})
	p, err := MakePlan(ctx, f, zones, targets, "kubectl dualstack")
	if err != nil || len(p.Changes) != 5000 {
		t.Fatalf("plan: %v, %d changes", err, len(p.Changes))
	}
	if _, err := Apply(ctx, f, p, ApplyOptions{Journal: journal.NewStore(fake.NewClientset(), "", "")}); err != nil {
		t.Fatal(err)
	}
	if f.calls["ListResourceRecordSets"] != 17 || f.calls["ChangeResourceRecordSets"] != 5 {
		t.Errorf("calls %v, want 17 pages of 300 and 5 batches of 1,000", f.calls)
	}
}
