package aws

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Spellings EC2 and the fuzzer use for protocols, ports and sources; the
// rule bytes index into them, the fuzz strings add one unknown of each.
var (
	fuzzProtocols = []string{"tcp", "udp", "icmp", "-1", "6", "17", "1", "58", "icmpv6", "all", "TCP", "50"}
	fuzzPorts     = []int32{-1, 0, 3, 4, 8, 11, 12, 22, 443, 5, 65535, 1}
)

// decodeRules turns fuzz bytes into security group rules, 4 bytes a rule:
// direction and protocol, from port, to port, IPv4 and IPv6 sources.
func decodeRules(raw []byte, proto, src4 string, vpc4 []string, vpc6 string) (ingress, egress []Rule) {
	srcs4 := append([]string{"0.0.0.0/0", "192.168.0.0/16", src4}, vpc4...)
	srcs6 := []string{"::/0", vpc6, "fd00::/8"}
	protos := append(slices.Clone(fuzzProtocols), proto)
	port := func(b byte) int32 {
		if b&0x80 != 0 {
			return int32(b & 0x7f)
		}
		return fuzzPorts[int(b)%len(fuzzPorts)]
	}
	for ; len(raw) >= 4; raw = raw[4:] {
		r := Rule{Protocol: protos[int(raw[0]>>1)%len(protos)], FromPort: port(raw[1]), ToPort: port(raw[2])}
		for i, s := range srcs4 {
			if raw[3]>>i&1 == 1 && i < 5 {
				r.IPv4 = append(r.IPv4, s)
			}
		}
		if raw[3]&0x20 != 0 {
			r.IPv6 = append(r.IPv6, srcs6[int(raw[3]>>6)%len(srcs6)])
		}
		if raw[0]&1 == 0 {
			ingress = append(ingress, r)
		} else {
			egress = append(egress, r)
		}
	}
	return ingress, egress
}

// mirrors is what an IPv4 rule's protocol and ports become for IPv6.
func mirrors(r Rule) (proto string, from, to int32, ok bool) {
	proto, from, to = normProtocol(r.Protocol), r.FromPort, r.ToPort
	switch proto {
	case "icmp":
		from, to, ok = icmpv6For(from, to)
		return "58", from, to, ok
	case "-1":
		return proto, -1, -1, true
	}
	return proto, from, to, true
}

// FuzzMirrorSecurityGroups: the IPv6 rules the plan adds are mirrors of IPv4
// rules of the same group and direction: ::/0 only where the IPv4 rule
// allowed 0.0.0.0/0 for the same protocol and ports, the VPC's /56 only for
// the VPC's own IPv4 ranges; each IPv6 permission is added once, none that
// exists already, the plan is deterministic, and once applied, planning
// again adds no rule.
func FuzzMirrorSecurityGroups(f *testing.F) {
	vpc := []byte{0x26, 0x00, 0x1f, 0x18, 0xab, 0xcd, 0xef}
	f.Add(vpc, "10.0.0.0/16", "tcp", "10.1.0.0/16", []byte{0x00, 7, 7, 0x05, 0x00, 8, 8, 0x21, 0x04, 2, 3, 0x01, 0x07, 0, 0, 0x01})
	f.Add(vpc, "10.0.0.0/16,10.1.0.0/16", "tcp", "", []byte{0x00, 7, 7, 0x18})
	f.Add([]byte{}, "10.0.0.0/16", "icmp", "", []byte{0x04, 0, 0, 0x09, 0x04, 9, 0, 0x01, 0x04, 2, 0x81, 0x01, 0x05, 0x80, 0x80, 0x01})
	f.Add(vpc, "0.0.0.0/0", "-1", "0.0.0.0/0", []byte{0x18, 0, 0, 0x1d, 0x13, 0, 0, 0x01})
	f.Add(vpc, "10.0.0.0/16", "ICMPv6", "10.0.0.0/16", []byte{0x18, 7, 7, 0x25, 0x0e, 0, 0, 0x61})
	f.Fuzz(func(t *testing.T, vpcBytes []byte, vpc4List, proto, src4 string, raw []byte) {
		if len(vpc4List)+len(proto)+len(src4)+len(raw) > maxFuzzInput {
			return
		}
		vpc6 := ""
		if len(vpcBytes) >= 7 {
			var a [16]byte
			copy(a[:7], vpcBytes)
			vpc6 = netip.PrefixFrom(netip.AddrFrom16(a), 56).String()
		}
		vpc4 := strings.Split(vpc4List, ",")
		inv := &Inventory{VPC: VPC{ID: "vpc-1", IPv4CIDRs: vpc4, IPv6CIDR: vpc6}}
		for _, id := range []string{"sg-1", "sg-2"} {
			in, eg := decodeRules(raw, proto, src4, vpc4, first6(vpc6))
			inv.SecurityGroups = append(inv.SecurityGroups, SecurityGroup{ID: id, Name: id, Ingress: in, Egress: eg})
			raw = reverse(raw) // the second group gets other rules
		}
		plan := MakePlan(inv, PlanOptions{})
		if !reflect.DeepEqual(plan, MakePlan(inv, PlanOptions{})) {
			t.Fatal("MakePlan is not deterministic")
		}
		ids := map[string]bool{}
		perms := map[string]bool{}
		for _, c := range plan.Changes {
			if ids[c.ID] {
				t.Fatalf("two changes with ID %s", c.ID)
			}
			ids[c.ID] = true
			if c.Operation != "AuthorizeSecurityGroupIngress" && c.Operation != "AuthorizeSecurityGroupEgress" {
				continue
			}
			p := c.Parameters
			g := inv.SecurityGroups[slices.IndexFunc(inv.SecurityGroups, func(g SecurityGroup) bool { return g.ID == p["groupId"] })]
			rules := g.Ingress
			if p["direction"] == "egress" {
				rules = g.Egress
			}
			perm := strings.Join([]string{p["groupId"], p["direction"], p["ipProtocol"], p["fromPort"], p["toPort"], p["cidrIpv6"]}, " ")
			if perms[perm] {
				t.Fatalf("IPv6 permission %s added twice", perm)
			}
			perms[perm] = true
			from, to := atoi32(p["fromPort"]), atoi32(p["toPort"])
			if hasIPv6Rule(rules, p["ipProtocol"], from, to, p["cidrIpv6"]) {
				t.Fatalf("IPv6 permission %s exists already", perm)
			}
			switch p["cidrIpv6"] {
			case "::/0":
				if p["mirrorOf"] != "0.0.0.0/0" {
					t.Fatalf("%s opens ::/0 as the mirror of %s", perm, p["mirrorOf"])
				}
			case first6(vpc6):
				if !slices.Contains(vpc4, p["mirrorOf"]) {
					t.Fatalf("%s opens the VPC's /56 as the mirror of %s, not a VPC range", perm, p["mirrorOf"])
				}
			default:
				t.Fatalf("%s opens a range that is neither ::/0 nor the VPC's", perm)
			}
			// The IPv4 rule it mirrors: same group, direction, source, protocol and ports.
			if !slices.ContainsFunc(rules, func(r Rule) bool {
				mp, mf, mt, ok := mirrors(r)
				return ok && slices.Contains(r.IPv4, p["mirrorOf"]) && mp == p["ipProtocol"] && mf == from && mt == to
			}) {
				t.Fatalf("%s mirrors no %s rule from %s", perm, p["direction"], p["mirrorOf"])
			}
		}
		// Apply the mirrors, plan again: nothing is left to add.
		for _, c := range plan.Changes {
			p := c.Parameters
			i := slices.IndexFunc(inv.SecurityGroups, func(g SecurityGroup) bool { return g.ID == p["groupId"] })
			if i < 0 {
				continue
			}
			r := Rule{Protocol: p["ipProtocol"], FromPort: atoi32(p["fromPort"]), ToPort: atoi32(p["toPort"]), IPv6: []string{p["cidrIpv6"]}}
			if c.Operation == "AuthorizeSecurityGroupIngress" {
				inv.SecurityGroups[i].Ingress = append(inv.SecurityGroups[i].Ingress, r)
			} else if c.Operation == "AuthorizeSecurityGroupEgress" {
				inv.SecurityGroups[i].Egress = append(inv.SecurityGroups[i].Egress, r)
			}
		}
		for _, c := range MakePlan(inv, PlanOptions{}).Changes {
			if strings.HasPrefix(c.Operation, "AuthorizeSecurityGroup") {
				t.Fatalf("after applying the mirrors, the plan still adds %v", c.Parameters)
			}
		}
	})
}

// first6 is the IPv6 range the plan mirrors the VPC's IPv4 ranges to.
func first6(vpc6 string) string {
	if vpc6 == "" {
		return VPCIPv6Placeholder
	}
	return vpc6
}

func reverse(b []byte) []byte {
	out := slices.Clone(b)
	slices.Reverse(out)
	return out
}
