package aws

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The fuzzers below run their seed corpus (f.Add and testdata/fuzz/FuzzXxx)
// in every `go test`; `go test -fuzz '^FuzzXxx$'` explores from there.

const maxFuzzInput = 4096

// FuzzSubnetBlock: /64 number n of a VPC's block is a canonical /64 inside
// it, blockIndex reads n back from it, and in a /56 different numbers are
// different /64s; blockIndex of anything else is -1 or a number whose /64
// is that subnet.
func FuzzSubnetBlock(f *testing.F) {
	f.Add("2600:1f18:abcd:ef00::/56", 3, "2600:1f18:abcd:efff::/64")
	f.Add("2600:1f18:abcd:ef00::/56", 255, "2600:1f18:abcd:ef00::/64")
	f.Add("2600:1f18:abcd:ef00::/56", 256, "2600:1f18:abcd:ee00::/64")
	f.Add("2600:1f18:abcd:ef00::/56", -1, "2600:1f18:abcd:ef05::1/64")
	f.Add("2600:1f18:abcd:ef12::/56", 7, "2600:1f18:abcd:ef07::/63")
	f.Add("2600:1f18:abcd::/48", 9, "2600:1f18:abcd:109::/64")
	f.Add("2600:1f18:abcd:ef00::/60", 1, "2600:1f18:abcd:ef01::/64")
	f.Add("2600:1f18:abcd:ef00::/60", 16, "2600:1f18:abcd:ef10::/64")
	f.Add("2600:1f18:abc0::/44", 1<<20-1, "2600:1f18:abcf:ffff::/64")
	f.Add("2600:1f18:abcd:ef00::/64", 0, "2600:1f18:abcd:ef00::/64")
	f.Add("10.0.0.0/8", 1, "10.0.0.0/16")
	f.Add("::ffff:10.0.0.0/56", 1, "::ffff:10.0.0.0/64")
	f.Add("", 0, "")
	f.Fuzz(func(t *testing.T, vpc string, n int, sub string) {
		if len(vpc)+len(sub) > maxFuzzInput {
			return
		}
		p, perr := netip.ParsePrefix(vpc)
		valid := perr == nil && p.Addr().Is6() && !p.Addr().Is4In6() && p.Bits() >= 44 && p.Bits() <= 60
		count := 0
		if valid {
			count = 1 << (64 - p.Bits())
		}
		if c, err := BlockCount(vpc); c != count || (err == nil) != valid {
			t.Fatalf("BlockCount(%q) = %d, %v; want %d", vpc, c, err, count)
		}
		block, err := SubnetBlock(vpc, n)
		if (err == nil) != (valid && n >= 0 && n < count) {
			t.Fatalf("SubnetBlock(%q, %d) = %q, %v", vpc, n, block, err)
		}
		if err == nil {
			b, berr := netip.ParsePrefix(block)
			switch {
			case berr != nil || b.Bits() != 64 || b.Masked() != b || b.String() != block:
				t.Fatalf("SubnetBlock(%q, %d) = %q: not a canonical /64", vpc, n, block)
			case !p.Masked().Contains(b.Addr()):
				t.Fatalf("SubnetBlock(%q, %d) = %q: outside the VPC's block", vpc, n, block)
			case blockIndex(vpc, block) != n:
				t.Fatalf("blockIndex(%q, %q) = %d, want %d", vpc, block, blockIndex(vpc, block), n)
			}
			if other, err := SubnetBlock(vpc, n^1); err == nil {
				if other == block {
					t.Fatalf("/64s %d and %d of %q are both %q", n, n^1, vpc, block)
				}
			}
		}
		i := blockIndex(vpc, sub)
		if i < -1 || (i >= 0 && i >= count) {
			t.Fatalf("blockIndex(%q, %q) = %d", vpc, sub, i)
		}
		if i >= 0 {
			s, serr := netip.ParsePrefix(sub)
			if serr != nil || s.Bits() != 64 || !p.Masked().Contains(s.Addr()) {
				t.Fatalf("blockIndex(%q, %q) = %d for a subnet that is not a /64 of it", vpc, sub, i)
			}
			if valid {
				if again, _ := SubnetBlock(vpc, i); again != s.Masked().String() {
					t.Fatalf("blockIndex(%q, %q) = %d, but /64 number %d is %q", vpc, sub, i, i, again)
				}
			}
		}
	})
}

// FuzzAllocateBlocks: the numbers given out are exactly the lowest `need`
// free ones (so stable: the same input gives the same output), distinct,
// in the block (16, 256 or 4096 /64s), never used; it fails iff there are
// not enough free numbers. used is read as pairs of bytes: a number
// (outside the block too) and whether it is marked true.
func FuzzAllocateBlocks(f *testing.F) {
	f.Add(3, []byte{0, 1, 2, 1})
	f.Add(0, []byte{})
	f.Add(256, []byte{})
	f.Add(255, []byte{0, 1, 1, 1})
	f.Add(-1, []byte{})
	f.Add(2, []byte{5, 0, 0xff, 1, 0x80, 1})
	f.Fuzz(func(t *testing.T, need int, raw []byte) {
		used := map[int]bool{}
		for i := 0; i+1 < len(raw); i += 2 {
			n := int(raw[i])
			if raw[i+1]&2 != 0 {
				n += 200 // past the end of the /56
			}
			if raw[i+1]&4 != 0 {
				n = -n - 1
			}
			used[n] = raw[i+1]&1 == 1
		}
		total := []int{256, 16, 4096}[len(raw)%3] // a /56, /60 or /52
		var free []int
		for n := range total {
			if !used[n] {
				free = append(free, n)
			}
		}
		got, err := AllocateBlocks(need, used, total)
		again, err2 := AllocateBlocks(need, used, total)
		if !slices.Equal(got, again) || (err == nil) != (err2 == nil) {
			t.Fatalf("not stable: %v %v / %v %v", got, err, again, err2)
		}
		if wantErr := need < 0 || need > len(free); (err != nil) != wantErr {
			t.Fatalf("AllocateBlocks(%d) with %d free: %v %v", need, len(free), got, err)
		}
		if err != nil {
			return
		}
		if !slices.Equal(got, free[:need]) {
			t.Fatalf("AllocateBlocks(%d) = %v, want the lowest free %v", need, got, free[:need])
		}
	})
}

// FuzzPlanSubnetBlocks: the /64s the plan carves for subnets without one lie
// in the VPC's block (/44 to /60), are distinct, never collide with a /64 a subnet already
// has, and come out the same on every run.
func FuzzPlanSubnetBlocks(f *testing.F) {
	f.Add([]byte{0x26, 0x00, 0x1f, 0x18, 0xab, 0xcd, 0xef}, "2600:1f18:abcd:ef00::/64,2600:1f18:abcd:ef02::/64", uint8(3))
	f.Add([]byte{0x26, 0x00, 0, 0, 0, 0, 0}, "2600::/64", uint8(1))
	f.Add([]byte{0x26, 0x00, 0, 0, 0, 0, 0}, "2600::1/64,2600:0:0:1::/63,2600:0:0:2::/64,garbage,2601::/64", uint8(4))
	f.Add([]byte{0x26, 0x00, 0, 0, 0, 0, 1}, "", uint8(255))
	f.Add([]byte{}, "", uint8(2))
	f.Add([]byte{0x26, 0x00, 0x1f, 0x18, 0xab, 0xcd, 0xef, 0x10, 4}, "2600:1f18:abcd:ef10::/64", uint8(16)) // /60: one too many
	f.Add([]byte{0x26, 0x00, 0x1f, 0x18, 0xab, 0xcd, 0xef, 0x10, 4}, "2600:1f18:abcd:ef10::/64", uint8(15))
	f.Add([]byte{0x26, 0x00, 0x1f, 0x18, 0xab, 0xc0, 0, 0, 1}, "2600:1f18:abc0:ff::/64", uint8(255)) // /48
	f.Add([]byte{0x26, 0x00, 0x1f, 0x18, 0xab, 0xcd, 0xef, 0x10, 5}, "", uint8(3))                   // /64
	f.Fuzz(func(t *testing.T, vpc []byte, usedList string, nNeed uint8) {
		if len(usedList) > maxFuzzInput {
			return
		}
		// 7 bytes: a /56; an 8th picks /44, /48, /52, /56, /60, or /64 (not
		// a VPC block: the plan must carve nothing and say why).
		vpc6, bits := "", 56
		if len(vpc) >= 8 {
			bits = 44 + 4*int(vpc[7]%6)
		}
		if len(vpc) >= 7 {
			var a [16]byte
			copy(a[:8], vpc)
			vpc6 = netip.PrefixFrom(netip.AddrFrom16(a), bits).Masked().String()
		}
		inv := &Inventory{VPC: VPC{ID: "vpc-1", IPv4CIDRs: []string{"10.0.0.0/16"}, IPv6CIDR: vpc6}}
		if vpc6 != "" && usedList != "" {
			inv.VPC.UsedIPv6Blocks = strings.Split(usedList, ",")
		}
		for _, b := range inv.VPC.UsedIPv6Blocks {
			if b == "" {
				continue // a subnet without IPv6 is one of the nNeed below
			}
			inv.Subnets = append(inv.Subnets, Subnet{ID: "subnet-has-" + b, IPv6CIDR: b, AssignIPv6OnCreation: true})
		}
		for i := range int(nNeed) {
			inv.Subnets = append(inv.Subnets, Subnet{ID: fmt.Sprintf("subnet-%03d", i), IPv4CIDR: fmt.Sprintf("10.0.%d.0/24", i), AssignIPv6OnCreation: true})
		}
		plan := MakePlan(inv, PlanOptions{})
		if !reflect.DeepEqual(plan, MakePlan(inv, PlanOptions{})) {
			t.Fatal("MakePlan is not deterministic")
		}
		var carved []string
		for _, c := range plan.Changes {
			if c.Operation == "AssociateSubnetCidrBlock" {
				carved = append(carved, c.Parameters["ipv6CidrBlock"])
			}
		}
		if len(carved) != 0 && len(carved) != int(nNeed) {
			t.Fatalf("%d of %d subnets got a /64", len(carved), nNeed)
		}
		if len(carved) < int(nNeed) && len(plan.Notes) == 0 {
			t.Fatalf("%d of %d subnets got a /64 and no note says why", len(carved), nNeed)
		}
		if vpc6 == "" {
			return
		}
		if bits == 64 && len(carved) > 0 {
			t.Fatalf("carved %v from a /64, which is no VPC block", carved)
		}
		vp := netip.MustParsePrefix(vpc6)
		seen := map[netip.Prefix]bool{}
		for _, b := range inv.VPC.UsedIPv6Blocks {
			if p, err := netip.ParsePrefix(b); err == nil && p.Bits() == 64 {
				seen[p.Masked()] = true
			}
		}
		for _, c := range carved {
			p, err := netip.ParsePrefix(c)
			switch {
			case err != nil || p.Bits() != 64 || p.Masked() != p:
				t.Fatalf("carved %q: not a canonical /64", c)
			case !vp.Contains(p.Addr()):
				t.Fatalf("carved %q outside the VPC's %s", c, vpc6)
			case seen[p]:
				t.Fatalf("carved %q, which is used already (or carved twice)", c)
			}
			seen[p] = true
		}
	})
}

// FuzzICMPv6For: an ICMP rule maps to its ICMPv6 counterpart of the same
// kind (error to error, echo to echo, all to all), keeps the code or takes
// all codes of the type (the families number codes differently), and never opens
// the neighbor discovery or multicast listener types (130-137).
func FuzzICMPv6For(f *testing.F) {
	for _, tc := range [][2]int32{{-1, -1}, {3, 4}, {3, -1}, {3, 1}, {8, -1}, {8, 0}, {0, 0}, {11, 0}, {11, 1}, {12, 0}, {5, 0}, {9, 0}, {10, 0}, {13, 0}, {-1, 3}, {255, 255}} {
		f.Add(tc[0], tc[1])
	}
	f.Fuzz(func(t *testing.T, typ, code int32) {
		t6, c6, ok := icmpv6For(typ, code)
		if !ok {
			if slices.Contains([]int32{-1, 0, 3, 8, 11, 12}, typ) {
				t.Fatalf("ICMP type %d has an ICMPv6 counterpart but was not mapped", typ)
			}
			return
		}
		switch {
		case (t6 == -1) != (typ == -1):
			t.Fatalf("ICMP %d/%d -> %d/%d: all types only from all types", typ, code, t6, c6)
		case t6 == -1 && c6 != -1:
			t.Fatalf("all ICMP -> %d/%d", t6, c6)
		case t6 >= 130 && t6 <= 137:
			t.Fatalf("ICMP %d/%d opens ICMPv6 type %d (NDP/MLD)", typ, code, t6)
		case (typ == 0 || typ == 8) != (t6 >= 128):
			t.Fatalf("ICMP %d/%d -> %d: error and informational types mixed", typ, code, t6)
		case t6 != -1 && !slices.Contains([]int32{1, 2, 3, 4, 128, 129}, t6):
			t.Fatalf("ICMP %d/%d -> unexpected ICMPv6 type %d", typ, code, t6)
		case c6 != code && c6 != -1 && !(typ == 3 && code == 4 && t6 == 2 && c6 == 0):
			t.Fatalf("ICMP %d/%d -> %d/%d: code changed", typ, code, t6, c6)
		}
	})
}
