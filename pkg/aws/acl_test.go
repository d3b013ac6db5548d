package aws

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNetworkACLTwins(t *testing.T) {
	f := newOpenShiftVPC().withACLs()
	before := f.state()
	inv, p := discoverAndPlan(t, f)

	// The other cluster's ACL is not even in the inventory's changes.
	var got []string
	for _, c := range p.Changes {
		if c.Operation != "CreateNetworkAclEntry" {
			continue
		}
		pm := c.Parameters
		got = append(got, strings.Join([]string{c.Resource, map[string]string{"true": "egress", "false": "ingress"}[pm["egress"]], pm["ruleNumber"], pm["ruleAction"],
			pm["protocol"], pm["ipv6CidrBlock"], pm["fromPort"] + "-" + pm["toPort"], "icmp " + pm["icmpType"] + "/" + pm["icmpCode"], "of " + pm["mirrorOf"]}, " "))
	}
	want := []string{
		// The modified default ACL: the deny on 23 stays before the allow-all, as in IPv4.
		"acl-default ingress 91 deny 6 ::/0 23-23 icmp -1/-1 of 90",
		"acl-default ingress 101 allow -1 ::/0 -1--1 icmp -1/-1 of 100",
		"acl-default egress 101 allow -1 ::/0 -1--1 icmp -1/-1 of 100",
		// 100, 101 and 102 are taken: the twins keep their order after 102.
		"acl-priv ingress 103 allow 6 ::/0 443-443 icmp -1/-1 of 100",
		"acl-priv ingress 104 allow -1 " + VPCIPv6Placeholder + " -1--1 icmp -1/-1 of 101",
		"acl-priv ingress 105 allow 6 ::/0 1024-65535 icmp -1/-1 of 102",
		"acl-priv ingress 111 allow 58 ::/0 -1--1 icmp 2/0 of 110",
		"acl-priv egress 101 allow -1 ::/0 -1--1 icmp -1/-1 of 100",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("ACL twins:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var notes []string
	for _, n := range p.Notes {
		if strings.HasPrefix(n.Resource, "acl-") {
			notes = append(notes, n.Resource+": "+n.Message)
		}
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "acl-priv: ingress entry 120") || !strings.Contains(notes[0], "192.168.0.0/16") {
		t.Errorf("notes: %q, want one for the 192.168.0.0/16 entry (no known IPv6 counterpart)", notes)
	}

	// Apply, then a second plan has nothing left for the ACLs; rollback
	// restores every ACL exactly, and the other cluster's was never touched.
	store := newJournal()
	if _, err := Apply(context.Background(), f.clients(), inv, p, ApplyOptions{Journal: store, WaitTimeout: 10 * time.Second}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, line := range diff(before, f.state()) {
		if strings.Contains(line, "acl-other") {
			t.Errorf("the other cluster's ACL changed: %s", line)
		}
	}
	if !slices.Contains(f.state(), "acl acl-priv ingress 104 allow -1 "+fakeVPCBlock(f.vpcs[0])+" -1--1 icmp -1/-1") {
		t.Errorf("the VPC-range twin did not get the VPC's block %s:\n%s", fakeVPCBlock(f.vpcs[0]), strings.Join(diff(before, f.state()), "\n"))
	}
	_, again := discoverAndPlan(t, f)
	for _, c := range again.Changes {
		if c.Operation == "CreateNetworkAclEntry" {
			t.Errorf("re-plan after apply still has %s", c.ID)
		}
	}
	rollback(t, f, store)
	expectSame(t, "after rollback", before, f.state())
}

// A twin's number taken since the plan by the same entry (AWS's own IPv6
// entries of a never-modified default ACL) is not the tool's: rollback
// leaves it. Taken by another entry: the change fails and says so.
func TestNetworkACLNumberTakenSinceThePlan(t *testing.T) {
	f := newOpenShiftVPC().withACLs()
	inv, p := discoverAndPlan(t, f)
	f.acl("acl-default").Entries = append(f.acl("acl-default").Entries, aclRule(101, true, "-1", "allow", "::/0", 0, 0), aclRule(101, false, "6", "allow", "::/0", 80, 80))
	store := newJournal()
	results, err := Apply(context.Background(), f.clients(), inv, p, ApplyOptions{Journal: store, WaitTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "ingress rule number 101 of network ACL acl-default was taken since the plan (by allow ::/0)") {
		t.Fatalf("Apply: %v, want the taken ingress 101 named", err)
	}
	for _, r := range results {
		if r.Operation == "CreateNetworkAclEntry" && r.Parameters["networkAclId"] == "acl-default" && r.Parameters["egress"] == "true" && r.Status != StatusApplied {
			t.Errorf("egress 101 (the same entry, there already): %s %s", r.Status, r.Error)
		}
	}
	Rollback(context.Background(), f.clients(), "vpc-1", store, RollbackOptions{WaitTimeout: 10 * time.Second})
	if !slices.Contains(f.state(), "acl acl-default egress 101 allow -1 ::/0 -1--1 icmp -1/-1") {
		t.Errorf("rollback removed the egress entry that was there before the tool made it")
	}
}

// A rule from a cluster subnet's IPv4 range (load balancer health checks
// are written per subnet) is mirrored from that subnet's IPv6 /64, the one
// it has or gets in the same apply.
func TestSubnetRangeRulesMirrorTheSubnets64(t *testing.T) {
	f := newOpenShiftVPC()
	g := f.group("sg-node")
	g.IpPermissions = append(g.IpPermissions, perm("tcp", 10256, 10256, "10.0.0.0/20"))
	inv, p := discoverAndPlan(t, f)
	var mirror *Change
	for i, c := range p.Changes {
		if c.Operation == "AuthorizeSecurityGroupIngress" && c.Parameters["mirrorOf"] == "10.0.0.0/20" {
			mirror = &p.Changes[i]
		}
	}
	if mirror == nil || !strings.HasPrefix(mirror.Parameters["cidrIpv6"], VPCIPv6Placeholder+"/64#") || !strings.Contains(mirror.Reason, "cluster subnet 10.0.0.0/20 -> its IPv6 /64") {
		t.Fatalf("the health-check rule from subnet-pub-a is not mirrored from its /64: %+v", mirror)
	}
	if _, err := Apply(context.Background(), f.clients(), inv, p, ApplyOptions{Journal: newJournal(), WaitTimeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	pub := fakeSubnetBlock(f.subnets[0])
	if pub == "" || !slices.Contains(f.state(), "sg sg-node ingress tcp/10256/10256 "+pub) {
		t.Errorf("no ingress rule from subnet-pub-a's /64 %q:\n%s", pub, strings.Join(f.state(), "\n"))
	}
}
