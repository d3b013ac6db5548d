package policies

import (
	"context"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// converted is a cluster after the network and aws phases: every range has
// its IPv6 counterpart.
var converted = RangeInput{
	PodNetwork: []string{"10.128.0.0/14", "fd01::/48"}, ServiceNetwork: []string{"172.30.0.0/16", "fd02::/112"},
	VPCIPv4: []string{"10.0.0.0/16"}, VPCIPv6: "2600:1f18:abcd:ef00::/56",
}.Make()

// ipv4Only is the same cluster before: no IPv6 anywhere.
var ipv4Only = RangeInput{PodNetwork: []string{"10.128.0.0/14"}, ServiceNetwork: []string{"172.30.0.0/16"}, VPCIPv4: []string{"10.0.0.0/16"}}.Make()

func TestTwin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rs     Ranges
		in     Block
		want   string // "" when none
		reason string // part of the reason when none
	}{
		{"everywhere", converted, Block{CIDR: "0.0.0.0/0"}, "::/0", ""},
		{"everywhere but the metadata service", converted, Block{CIDR: "0.0.0.0/0", Except: []string{"169.254.169.254/32"}}, "::/0 except fd00:ec2::254/128", ""},
		{"the metadata service itself", converted, Block{CIDR: "169.254.169.254/32"}, "fd00:ec2::254/128", ""},
		{"everywhere but the cluster", converted, Block{CIDR: "0.0.0.0/0", Except: []string{"10.128.0.0/14", "172.30.0.0/16", "10.0.0.0/16"}},
			"::/0 except fd01::/48, fd02::/112, 2600:1f18:abcd:ef00::/56", ""},
		{"the pod network", converted, Block{CIDR: "10.128.0.0/14"}, "fd01::/48", ""},
		{"the VPC", converted, Block{CIDR: "10.0.0.0/16"}, "2600:1f18:abcd:ef00::/56", ""},
		{"a host address in the VPC is never invented", converted, Block{CIDR: "10.0.5.7/32"}, "", "never invented"},
		{"part of the pod network is never invented", converted, Block{CIDR: "10.128.0.0/16"}, "", "never invented"},
		{"an unmappable except leaves the block without a twin", converted, Block{CIDR: "0.0.0.0/0", Except: []string{"169.254.169.254/32", "192.168.7.0/24"}},
			"", "its except 192.168.7.0/24 has no twin"},
		{"the pod network before it has IPv6", ipv4Only, Block{CIDR: "10.128.0.0/14"}, "", "pod network, which has no IPv6 range yet"},
		{"an except in the pod network before it has IPv6", ipv4Only, Block{CIDR: "0.0.0.0/0", Except: []string{"10.128.0.0/14"}}, "", "has no IPv6 range yet"},
		{"the VPC before it has IPv6", ipv4Only, Block{CIDR: "10.0.0.0/16"}, "", "aws apply"},
		{"not masked", converted, Block{CIDR: "169.254.169.254/32", Except: nil}, "fd00:ec2::254/128", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := tc.rs.Twin(tc.in)
			if tc.want == "" {
				if why == "" || !strings.Contains(why, tc.reason) {
					t.Fatalf("Twin(%s) = %s, %q; want no twin because %q", tc.in, got, why, tc.reason)
				}
				return
			}
			if why != "" || got.String() != tc.want {
				t.Fatalf("Twin(%s) = %s, %q; want %s", tc.in, got, why, tc.want)
			}
		})
	}
}

func peer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func TestWithTwins(t *testing.T) {
	pods := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}
	for _, tc := range []struct {
		name    string
		spec    networkingv1.NetworkPolicySpec
		want    networkingv1.NetworkPolicySpec // == spec when nothing is added
		actions []string
	}{
		{
			name: "egress that keeps pods from the metadata service",
			spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{peer("0.0.0.0/0", "169.254.169.254/32")}}}},
			want: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
				peer("0.0.0.0/0", "169.254.169.254/32"), peer("::/0", "fd00:ec2::254/128")}}}},
			actions: []string{BlockAdd},
		},
		{
			name: "ingress and egress, several blocks, other peers kept in place",
			spec: networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{pods, peer("10.128.0.0/14"), peer("192.168.0.0/16")}}},
				Egress: []networkingv1.NetworkPolicyEgressRule{
					{To: []networkingv1.NetworkPolicyPeer{peer("172.30.0.0/16")}},
					{To: []networkingv1.NetworkPolicyPeer{peer("0.0.0.0/0", "10.0.0.0/16", "169.254.169.254/32")}},
				},
			},
			want: networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{pods, peer("10.128.0.0/14"), peer("fd01::/48"), peer("192.168.0.0/16")}}},
				Egress: []networkingv1.NetworkPolicyEgressRule{
					{To: []networkingv1.NetworkPolicyPeer{peer("172.30.0.0/16"), peer("fd02::/112")}},
					{To: []networkingv1.NetworkPolicyPeer{peer("0.0.0.0/0", "10.0.0.0/16", "169.254.169.254/32"), peer("::/0", "2600:1f18:abcd:ef00::/56", "fd00:ec2::254/128")}},
				},
			},
			actions: []string{BlockAdd, BlockUnmapped, BlockAdd, BlockAdd},
		},
		{
			name: "already dual-stack: nothing added",
			spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
				peer("0.0.0.0/0", "169.254.169.254/32"), peer("::/0", "fd00:ec2::254/128")}}}},
			actions: []string{BlockPresent},
		},
		{
			name: "::/0 without the metadata except is a conflict, left alone",
			spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
				peer("0.0.0.0/0", "169.254.169.254/32"), peer("::/0")}}}},
			actions: []string{BlockConflict},
		},
		{
			name:    "IPv6 and pod peers only: no findings",
			spec:    networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{pods, peer("fd01::/48")}}}},
			actions: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := tc.spec.DeepCopy()
			got, findings := converted.WithTwins(&tc.spec)
			want := tc.want
			if want.Ingress == nil && want.Egress == nil {
				want = tc.spec
			}
			if !equality.Semantic.DeepEqual(*got, want) {
				t.Errorf("spec:\n got %+v\nwant %+v", *got, want)
			}
			if !equality.Semantic.DeepEqual(tc.spec, *orig) {
				t.Errorf("WithTwins changed its input")
			}
			var actions []string
			for _, f := range findings {
				actions = append(actions, f.Action)
			}
			if strings.Join(actions, ",") != strings.Join(tc.actions, ",") {
				t.Errorf("actions %v, want %v (%v)", actions, tc.actions, findings)
			}
			for _, f := range findings {
				if f.Action == BlockConflict && !strings.Contains(f.Reason, "metadata service over IPv6") {
					t.Errorf("the conflict does not say it opens the metadata service: %q", f.Reason)
				}
			}
			// A second pass over the result adds nothing: idempotent.
			again, _ := converted.WithTwins(got)
			if !equality.Semantic.DeepEqual(again, got) {
				t.Errorf("a second pass changed the spec again")
			}
		})
	}
}

func policy(ns, name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)}, Spec: spec}
}

// memJournal is a journal in memory.
type memJournal struct{ j journal.Journal }

func (m *memJournal) Load(context.Context) (*journal.Journal, error) {
	out := &journal.Journal{Entries: append([]journal.Entry(nil), m.j.Entries...)}
	return out, nil
}

func (m *memJournal) PutAll(_ context.Context, es []journal.Entry) error {
	for _, e := range es {
		found := false
		for i := range m.j.Entries {
			if m.j.Entries[i].ID == e.ID {
				m.j.Entries[i], found = e, true
			}
		}
		if !found {
			e.Seq = len(m.j.Entries)
			m.j.Entries = append(m.j.Entries, e)
		}
	}
	return nil
}

func TestApplyAndRollback(t *testing.T) {
	ctx := context.Background()
	deny := policy("shop", "deny-metadata", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{peer("0.0.0.0/0", "169.254.169.254/32")}}}})
	moved := policy("shop", "moved", networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{peer("0.0.0.0/0")}}}})
	done := policy("web", "done", networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{peer("0.0.0.0/0"), peer("::/0")}}}})
	kc := fake.NewClientset(deny, moved, done)
	list, err := List(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	p := Judged(list, converted)
	if p.Changes != 2 || p.Additions != 2 || len(p.Policies) != 3 {
		t.Fatalf("plan: %d changes, %d additions, %d policies; want 2, 2, 3", p.Changes, p.Additions, len(p.Policies))
	}
	// Someone edits one policy after the plan: it is refused, not overwritten.
	cur, _ := kc.NetworkingV1().NetworkPolicies("shop").Get(ctx, "moved", metav1.GetOptions{})
	cur.ResourceVersion = "7"
	cur.Spec.Egress[0].To = append(cur.Spec.Egress[0].To, peer("10.9.0.0/16"))
	if _, err := kc.NetworkingV1().NetworkPolicies("shop").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	j := &memJournal{}
	a := &Applier{Kube: kc, Journal: j}
	// Plan order: shop/deny-metadata, shop/moved. The first is applied,
	// the second refused.
	res, err := a.Apply(ctx, p)
	if err == nil || !strings.Contains(err.Error(), "changed since the plan") {
		t.Fatalf("apply over a changed policy: %v", err)
	}
	if res.Changed != 1 || res.Failed != 1 {
		t.Fatalf("result %+v", res)
	}
	got, _ := kc.NetworkingV1().NetworkPolicies("shop").Get(ctx, "deny-metadata", metav1.GetOptions{})
	if n := len(got.Spec.Egress[0].To); n != 2 || got.Spec.Egress[0].To[1].IPBlock.CIDR != "::/0" {
		t.Fatalf("deny-metadata after apply: %+v", got.Spec.Egress[0].To)
	}
	m, _ := kc.NetworkingV1().NetworkPolicies("shop").Get(ctx, "moved", metav1.GetOptions{})
	if len(m.Spec.Egress[0].To) != 2 || m.Spec.Egress[0].To[1].IPBlock.CIDR != "10.9.0.0/16" {
		t.Fatalf("the policy changed since the plan was overwritten: %+v", m.Spec.Egress[0].To)
	}
	if e, ok := j.j.Get(entryID("shop", "deny-metadata")); !ok || e.State != journal.Done {
		t.Fatalf("journal: %+v", j.j.Entries)
	}
	if _, ok := j.j.Get(entryID("shop", "moved")); ok {
		t.Fatalf("a refused change was journalled: %+v", j.j.Entries)
	}

	results, err := Rollback(ctx, kc, j)
	if err != nil || len(results) != 1 || results[0].Status != "undone" {
		t.Fatalf("rollback: %v %+v", err, results)
	}
	got, _ = kc.NetworkingV1().NetworkPolicies("shop").Get(ctx, "deny-metadata", metav1.GetOptions{})
	if !equality.Semantic.DeepEqual(got.Spec, deny.Spec) {
		t.Fatalf("after rollback %+v, want %+v", got.Spec, deny.Spec)
	}
	// A second rollback finds nothing to undo.
	if results, err := Rollback(ctx, kc, j); err != nil || len(results) != 0 {
		t.Fatalf("second rollback: %v %+v", err, results)
	}
}

func TestRollbackLeavesAPolicyChangedSince(t *testing.T) {
	ctx := context.Background()
	np := policy("shop", "p", networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{peer("0.0.0.0/0")}}}})
	kc := fake.NewClientset(np)
	list, _ := List(ctx, kc)
	j := &memJournal{}
	if _, err := (&Applier{Kube: kc, Journal: j}).Apply(ctx, Judged(list, converted)); err != nil {
		t.Fatal(err)
	}
	cur, _ := kc.NetworkingV1().NetworkPolicies("shop").Get(ctx, "p", metav1.GetOptions{})
	cur.Spec.Egress[0].To = append(cur.Spec.Egress[0].To, peer("10.9.0.0/16"))
	if _, err := kc.NetworkingV1().NetworkPolicies("shop").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	results, err := Rollback(ctx, kc, j)
	if err != nil || len(results) != 1 || results[0].Status != "skipped" || !strings.Contains(results[0].Message, "changed by someone else") {
		t.Fatalf("rollback: %v %+v", err, results)
	}
}
