package aws

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Network ACLs. When a VPC gets an IPv6 block, AWS adds IPv6 allow entries
// to its default network ACL only if that ACL's entries were never
// modified; a modified default ACL and every custom ACL keep dropping all
// IPv6. The plan gives every ACL of the cluster's subnets the IPv6 twin of
// each IPv4 entry, in the same shape.

// NetworkACL is a network ACL associated with at least one cluster subnet.
type NetworkACL struct {
	ID      string     `json:"id"`
	Name    string     `json:"name,omitempty"`
	Default bool       `json:"default"`
	Entries []ACLEntry `json:"entries"`
	// SubnetIDs are the cluster subnets associated with it.
	SubnetIDs []string `json:"subnetIds"`
	// ForeignSubnetIDs are subnets of the VPC associated with it that are
	// not the cluster's: the plan leaves such an ACL alone.
	ForeignSubnetIDs []string `json:"foreignSubnetIds,omitempty"`
	// OtherCluster is the infraID of another cluster the ACL is tagged for.
	OtherCluster string `json:"otherCluster,omitempty"`
}

// ACLEntry is one rule of a network ACL. Ports and ICMP are -1 when absent
// (all).
type ACLEntry struct {
	Number   int32  `json:"ruleNumber"`
	Egress   bool   `json:"egress"`
	Protocol string `json:"protocol"` // -1, 6, 17, 1, 58, ... as EC2 lists it
	Action   string `json:"ruleAction"`
	CIDR     string `json:"cidrBlock,omitempty"`
	IPv6CIDR string `json:"ipv6CidrBlock,omitempty"`
	FromPort int32  `json:"fromPort"`
	ToPort   int32  `json:"toPort"`
	ICMPType int32  `json:"icmpType"`
	ICMPCode int32  `json:"icmpCode"`
}

// defaultACLRule is the number of the last, unchangeable entry of each
// direction ("*", deny all): never mirrored, AWS has one per family.
const defaultACLRule = 32767

// maxACLRule is the highest rule number a request may use.
const maxACLRule = 32766

func (e ACLEntry) direction() string {
	if e.Egress {
		return "egress"
	}
	return "ingress"
}

// shape is an entry without its number and addresses, for comparing twins.
func (e ACLEntry) shape() string {
	return fmt.Sprintf("%v/%s/%s/%d/%d/%d/%d", e.Egress, aclProtocol(e.Protocol), e.Action, e.FromPort, e.ToPort, e.ICMPType, e.ICMPCode)
}

// aclProtocol makes the protocol spellings of ACL entries comparable
// (EC2 lists numbers; requests may use names).
func aclProtocol(p string) string {
	switch strings.ToLower(p) {
	case "tcp":
		return "6"
	case "udp":
		return "17"
	case "icmp":
		return "1"
	case "icmpv6":
		return "58"
	case "all":
		return "-1"
	}
	return p
}

// what says what an entry matches, as a reader says it.
func (e ACLEntry) what() string {
	proto := aclProtocol(e.Protocol)
	switch proto {
	case "-1":
		return "all traffic"
	case "6", "17":
		name := map[string]string{"6": "tcp", "17": "udp"}[proto]
		if e.FromPort == -1 || (e.FromPort == 0 && e.ToPort == 65535) {
			return name + " all ports"
		}
		if e.FromPort == e.ToPort {
			return name + " " + itoa(e.FromPort)
		}
		return name + " " + itoa(e.FromPort) + "-" + itoa(e.ToPort)
	case "1", "58":
		name := map[string]string{"1": "ICMP", "58": "ICMPv6"}[proto]
		if e.ICMPType == -1 {
			return name + " all types"
		}
		return fmt.Sprintf("%s type %d code %d", name, e.ICMPType, e.ICMPCode)
	}
	return "protocol " + proto
}

func readACLs(ctx context.Context, c *Clients, vpcFilter []ec2types.Filter) ([]ec2types.NetworkAcl, error) {
	return allPages(ctx, "DescribeNetworkAcls", ec2.NewDescribeNetworkAclsPaginator(c.EC2, &ec2.DescribeNetworkAclsInput{Filters: vpcFilter, MaxResults: aws.Int32(100)}),
		func(o *ec2.DescribeNetworkAclsOutput) []ec2types.NetworkAcl { return o.NetworkAcls })
}

func aclEntry(e ec2types.NetworkAclEntry) ACLEntry {
	out := ACLEntry{Number: aws.ToInt32(e.RuleNumber), Egress: aws.ToBool(e.Egress), Protocol: aclProtocol(aws.ToString(e.Protocol)),
		Action: string(e.RuleAction), CIDR: aws.ToString(e.CidrBlock), IPv6CIDR: aws.ToString(e.Ipv6CidrBlock),
		FromPort: -1, ToPort: -1, ICMPType: -1, ICMPCode: -1}
	if r := e.PortRange; r != nil && (out.Protocol == "6" || out.Protocol == "17") {
		out.FromPort, out.ToPort = aws.ToInt32(r.From), aws.ToInt32(r.To)
	}
	if t := e.IcmpTypeCode; t != nil && (out.Protocol == "1" || out.Protocol == "58") {
		out.ICMPType, out.ICMPCode = aws.ToInt32(t.Type), aws.ToInt32(t.Code)
	}
	return out
}

// classifyACLs keeps the ACLs associated with cluster subnets (a subnet
// without an explicit association uses the VPC's default ACL).
func classifyACLs(acls []ec2types.NetworkAcl, cluster []Subnet, all []ec2types.Subnet, clusterKey string) []NetworkACL {
	mine := map[string]bool{}
	for _, s := range cluster {
		mine[s.ID] = true
	}
	assoc := map[string]string{} // subnet -> ACL
	defaultID := ""
	byID := map[string]*NetworkACL{}
	var order []string
	for _, a := range acls {
		n := &NetworkACL{ID: aws.ToString(a.NetworkAclId), Name: tagValue(a.Tags, "Name"), Default: aws.ToBool(a.IsDefault),
			OtherCluster: otherCluster(a.Tags, clusterKey)}
		if n.Default {
			defaultID = n.ID
		}
		for _, as := range a.Associations {
			if s := aws.ToString(as.SubnetId); s != "" {
				assoc[s] = n.ID
			}
		}
		for _, e := range a.Entries {
			n.Entries = append(n.Entries, aclEntry(e))
		}
		sort.Slice(n.Entries, func(x, y int) bool {
			if n.Entries[x].Egress != n.Entries[y].Egress {
				return !n.Entries[x].Egress
			}
			return n.Entries[x].Number < n.Entries[y].Number
		})
		byID[n.ID] = n
		order = append(order, n.ID)
	}
	for _, s := range all {
		id := aws.ToString(s.SubnetId)
		acl := assoc[id]
		if acl == "" {
			acl = defaultID
		}
		n := byID[acl]
		if n == nil {
			continue
		}
		if mine[id] {
			n.SubnetIDs = append(n.SubnetIDs, id)
		} else {
			n.ForeignSubnetIDs = append(n.ForeignSubnetIDs, id)
		}
	}
	var out []NetworkACL
	sort.Strings(order)
	for _, id := range order {
		n := byID[id]
		if len(n.SubnetIDs) == 0 {
			continue
		}
		sort.Strings(n.SubnetIDs)
		sort.Strings(n.ForeignSubnetIDs)
		out = append(out, *n)
	}
	return out
}

// planNetworkACLs gives each ACL of the cluster's subnets the IPv6 twin of
// every IPv4 entry: 0.0.0.0/0 -> ::/0, the VPC's IPv4 range -> its IPv6
// block, ICMP -> ICMPv6; other ranges are reported, never invented. An
// ACL evaluates entries by rule number and an IPv6 packet only meets IPv6
// entries, so a twin's number keeps its IPv4 entry's place among the IPv6
// entries: above the IPv4 entry's own number, below the next IPv6 entry
// that follows it, in the same order as the IPv4 entries.
func planNetworkACLs(p *Plan, inv *Inventory, counterpart counterpartFunc) {
	for _, acl := range inv.NetworkACLs {
		name := nameOrID(acl.Name, acl.ID)
		kind := "network ACL"
		if acl.Default {
			kind = "the VPC's default network ACL"
		}
		switch {
		case acl.OtherCluster != "":
			p.Notes = append(p.Notes, Note{Resource: acl.ID,
				Message: fmt.Sprintf("%s %s gets no IPv6 entries: it is tagged for another cluster (%s%s)", kind, name, ClusterTagPrefix, acl.OtherCluster),
				Fix:     "that cluster's owner adds its IPv6 entries; until then the cluster's subnets " + strings.Join(acl.SubnetIDs, ", ") + " drop IPv6"})
			continue
		case len(acl.ForeignSubnetIDs) > 0:
			p.Notes = append(p.Notes, Note{Resource: acl.ID,
				Message: fmt.Sprintf("%s %s gets no IPv6 entries: subnets that are not the cluster's use it too (%s), and the IPv6 twins would change their traffic", kind, name, strings.Join(acl.ForeignSubnetIDs, ", ")),
				Fix:     "give the cluster's subnets (" + strings.Join(acl.SubnetIDs, ", ") + ") an ACL of their own, or add the IPv6 entries by hand if every subnet using it should have them"})
			continue
		}
		for _, egress := range []bool{false, true} {
			planACLDirection(p, acl, name, egress, counterpart, inv.VPC.ID)
		}
	}
}

func planACLDirection(p *Plan, acl NetworkACL, name string, egress bool, counterpart counterpartFunc, vpcID string) {
	var v4, v6 []ACLEntry
	used := map[int32]bool{}
	for _, e := range acl.Entries {
		if e.Egress != egress {
			continue
		}
		used[e.Number] = true
		switch {
		case e.Number >= defaultACLRule:
		case e.IPv6CIDR != "":
			v6 = append(v6, e)
		case e.CIDR != "":
			v4 = append(v4, e)
		}
	}
	// The twins: which IPv4 entries need one, and with what.
	type twin struct {
		of   ACLEntry
		e    ACLEntry
		why  string
		note string
	}
	var twins []twin
	for _, e := range v4 {
		t := e
		t.CIDR = ""
		cidr6, why, ok := counterpart(e.CIDR)
		t.IPv6CIDR = cidr6
		if !ok {
			p.Notes = append(p.Notes, Note{Resource: acl.ID,
				Message: fmt.Sprintf("%s entry %d of network ACL %s (%s %s %s %s) has no known IPv6 counterpart: not mirrored", e.direction(), e.Number, name, e.Action, e.what(), peerWord(e.direction()), e.CIDR),
				Fix:     "add the IPv6 entry by hand if that network has IPv6"})
			continue
		}
		if t.Protocol == "1" {
			typ, code, ok := icmpv6For(e.ICMPType, e.ICMPCode)
			if !ok {
				p.Notes = append(p.Notes, Note{Resource: acl.ID,
					Message: fmt.Sprintf("%s entry %d of network ACL %s (ICMP type %d code %d) has no ICMPv6 counterpart: not mirrored", e.direction(), e.Number, name, e.ICMPType, e.ICMPCode)})
				continue
			}
			t.Protocol, t.ICMPType, t.ICMPCode = "58", typ, code
			why += ", ICMP -> ICMPv6"
		}
		if slices.ContainsFunc(v6, func(x ACLEntry) bool { return x.shape() == t.shape() && x.IPv6CIDR == t.IPv6CIDR }) {
			continue // mirrored already (an earlier apply, AWS itself, or by hand)
		}
		twins = append(twins, twin{of: e, e: t, why: why})
	}
	if len(twins) == 0 {
		return
	}
	// Numbers: each twin after its IPv4 entry and the twin before it,
	// before the next existing IPv6 entry above its IPv4 entry.
	last := int32(0)
	for i := range twins {
		n := max(twins[i].of.Number, last) + 1
		for n <= maxACLRule && used[n] {
			n++
		}
		limit := int32(maxACLRule + 1)
		for _, x := range v6 {
			if x.Number > twins[i].of.Number && x.Number < limit {
				limit = x.Number
			}
		}
		if n >= limit {
			p.Notes = append(p.Notes, Note{Resource: acl.ID,
				Message: fmt.Sprintf("network ACL %s has no free %s rule number between %d and %d for the IPv6 twin of entry %d: none of its %s entries are mirrored (a partial set would change their order)",
					name, twins[i].of.direction(), twins[i].of.Number, limit, twins[i].of.Number, twins[i].of.direction()),
				Fix: "renumber the ACL's entries to leave gaps (e.g. 100, 110, 120), then re-run"})
			return
		}
		twins[i].e.Number = n
		used[n] = true
		last = n
	}
	for _, t := range twins {
		e := t.e
		p.add(Change{Operation: "CreateNetworkAclEntry", Resource: acl.ID, Phase: PhaseSubnetsRules,
			Reason: fmt.Sprintf("IPv6 twin of network ACL %s's %s entry %d (%s %s %s %s, %s), as entry %d", name, e.direction(), t.of.Number, t.of.Action, t.of.what(), peerWord(e.direction()), t.of.CIDR, t.why, e.Number),
			Parameters: map[string]string{"networkAclId": acl.ID, "ruleNumber": itoa(e.Number), "egress": strconv.FormatBool(e.Egress),
				"protocol": e.Protocol, "ruleAction": e.Action, "ipv6CidrBlock": e.IPv6CIDR, "fromPort": itoa(e.FromPort), "toPort": itoa(e.ToPort),
				"icmpType": itoa(e.ICMPType), "icmpCode": itoa(e.ICMPCode), "mirrorOf": itoa(t.of.Number), "vpcId": vpcID,
				"_id": e.direction() + "/" + itoa(e.Number)}})
	}
}

// aclEntryOf is the entry a CreateNetworkAclEntry change (or its journal
// record) makes.
func aclEntryOf(p map[string]string) ACLEntry {
	return ACLEntry{Number: atoi32(p["ruleNumber"]), Egress: p["egress"] == "true", Protocol: aclProtocol(p["protocol"]), Action: p["ruleAction"],
		IPv6CIDR: p["ipv6CidrBlock"], FromPort: atoi32(p["fromPort"]), ToPort: atoi32(p["toPort"]),
		ICMPType: atoi32(p["icmpType"]), ICMPCode: atoi32(p["icmpCode"])}
}

func createACLEntryInput(p map[string]string, dry bool) *ec2.CreateNetworkAclEntryInput {
	e := aclEntryOf(p)
	in := &ec2.CreateNetworkAclEntryInput{NetworkAclId: aws.String(p["networkAclId"]), RuleNumber: aws.Int32(e.Number), Egress: aws.Bool(e.Egress),
		Protocol: aws.String(e.Protocol), RuleAction: ec2types.RuleAction(e.Action), Ipv6CidrBlock: aws.String(e.IPv6CIDR), DryRun: aws.Bool(dry)}
	if e.Protocol == "6" || e.Protocol == "17" {
		from, to := e.FromPort, e.ToPort
		if from == -1 {
			from, to = 0, 65535
		}
		in.PortRange = &ec2types.PortRange{From: aws.Int32(from), To: aws.Int32(to)}
	}
	if e.Protocol == "58" {
		in.IcmpTypeCode = &ec2types.IcmpTypeCode{Type: aws.Int32(e.ICMPType), Code: aws.Int32(e.ICMPCode)}
	}
	return in
}

// liveACLEntry reads the entry with the number and direction of p's, if any.
func liveACLEntry(ctx context.Context, c *Clients, p map[string]string) (ACLEntry, bool, error) {
	out, err := c.EC2.DescribeNetworkAcls(ctx, &ec2.DescribeNetworkAclsInput{NetworkAclIds: []string{p["networkAclId"]}})
	if err != nil {
		return ACLEntry{}, false, err
	}
	want := aclEntryOf(p)
	for _, a := range out.NetworkAcls {
		for _, e := range a.Entries {
			if x := aclEntry(e); x.Number == want.Number && x.Egress == want.Egress {
				return x, true, nil
			}
		}
	}
	return ACLEntry{}, false, nil
}

// createACLEntry makes the twin. When its number is taken since the plan
// by the very same entry (AWS adds IPv6 entries to a never-modified default
// ACL itself when the VPC gets its block), it is not ours: undo says so,
// and rollback leaves it. Taken by another entry: a failure that says so.
func (a *applier) createACLEntry(ctx context.Context, p map[string]string, dry bool, undo map[string]string) error {
	_, err := a.c.EC2.CreateNetworkAclEntry(ctx, createACLEntryInput(p, dry))
	if errorCode(err) != "NetworkAclEntryAlreadyExists" {
		return err
	}
	live, ok, derr := liveACLEntry(ctx, a.c, p)
	if derr != nil {
		return err
	}
	want := aclEntryOf(p)
	if ok && live.shape() == want.shape() && live.IPv6CIDR == want.IPv6CIDR {
		if undo != nil {
			undo["existed"] = "true"
		}
		return nil
	}
	return fmt.Errorf("%s rule number %s of network ACL %s was taken since the plan (by %s %s): nothing was changed there; run the plan again", want.direction(), p["ruleNumber"], p["networkAclId"], live.Action, firstNonEmpty(live.IPv6CIDR, live.CIDR))
}

// deleteACLEntry undoes a twin: only while the entry at its number is
// still the one apply made (an entry someone put there since is left
// alone), and never one that existed before (undo "existed").
func deleteACLEntry(ctx context.Context, c *Clients, u map[string]string) error {
	if u["existed"] == "true" {
		return nil
	}
	live, ok, err := liveACLEntry(ctx, c, u)
	if err != nil || !ok {
		return err
	}
	want := aclEntryOf(u)
	if live.shape() != want.shape() || live.IPv6CIDR != want.IPv6CIDR {
		return nil
	}
	_, err = c.EC2.DeleteNetworkAclEntry(ctx, &ec2.DeleteNetworkAclEntryInput{NetworkAclId: aws.String(u["networkAclId"]),
		RuleNumber: aws.Int32(want.Number), Egress: aws.Bool(want.Egress)})
	return err
}
