package aws

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ipv4Less orders CIDRs by address (unparsable ones last, by text).
func ipv4Less(a, b string) bool {
	pa, ea := netip.ParsePrefix(a)
	pb, eb := netip.ParsePrefix(b)
	if ea != nil || eb != nil {
		return ea == nil || (eb != nil && a < b)
	}
	if c := pa.Addr().Compare(pb.Addr()); c != 0 {
		return c < 0
	}
	return pa.Bits() < pb.Bits()
}

// SubnetBlock is /64 number n (0-255) of a VPC's /56.
func SubnetBlock(vpc56 string, n int) (string, error) {
	p, err := netip.ParsePrefix(vpc56)
	if err != nil || !p.Addr().Is6() || p.Bits() > 56 {
		return "", fmt.Errorf("the VPC's IPv6 block %q is not an IPv6 /56", vpc56)
	}
	if n < 0 || n > 255 {
		return "", fmt.Errorf("/64 number %d is outside a /56 (0-255)", n)
	}
	a := p.Masked().Addr().As16()
	a[7] = byte(n)
	return netip.PrefixFrom(netip.AddrFrom16(a), 64).String(), nil
}

// blockIndex is the number of the /64 sub within vpc56, or -1 when it is not one of its /64s.
func blockIndex(vpc56, sub string) int {
	p, err1 := netip.ParsePrefix(vpc56)
	s, err2 := netip.ParsePrefix(sub)
	if err1 != nil || err2 != nil || s.Bits() != 64 || !p.Masked().Contains(s.Addr()) {
		return -1
	}
	return int(s.Addr().As16()[7])
}

// AllocateBlocks gives each subnet in need a /64 number of the VPC's /56:
// stable (subnets in IPv4 address order take the lowest free numbers) and
// never one already in use. used are the numbers subnets already have.
func AllocateBlocks(need int, used map[int]bool) ([]int, error) {
	if need < 0 {
		return nil, fmt.Errorf("cannot allocate %d IPv6 /64s", need)
	}
	// Count the free numbers rather than 256-len(used): used may hold
	// numbers marked false or outside the /56.
	var out []int
	for n := 0; n < 256; n++ {
		if !used[n] {
			out = append(out, n)
		}
	}
	if need > len(out) {
		return nil, fmt.Errorf("%d subnets need an IPv6 /64 but the VPC's /56 has only %d left (256 in all)", need, len(out))
	}
	return out[:need:need], nil
}

// icmpv6For maps an ICMP (v4) type/code rule to its ICMPv6 counterpart.
// -1 means all. ok is false when there is no sensible counterpart.
func icmpv6For(typ, code int32) (int32, int32, bool) {
	switch {
	case typ == -1:
		return -1, -1, true // all ICMP -> all ICMPv6
	case typ == 3 && code == 4:
		return 2, 0, true // fragmentation needed -> packet too big (path MTU discovery)
	case typ == 3:
		return 1, -1, true // destination unreachable
	case typ == 8:
		return 128, code, true // echo request
	case typ == 0:
		return 129, code, true // echo reply
	case typ == 11:
		return 3, code, true // time exceeded
	case typ == 12:
		return 4, -1, true // parameter problem
	}
	return 0, 0, false
}

// normProtocol makes EC2's protocol spellings comparable.
func normProtocol(p string) string {
	switch strings.ToLower(p) {
	case "6":
		return "tcp"
	case "17":
		return "udp"
	case "1":
		return "icmp"
	case "58", "icmpv6":
		return "58"
	case "all":
		return "-1"
	}
	return strings.ToLower(p)
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func atoi32(s string) int32 {
	n, _ := strconv.Atoi(s)
	return int32(n)
}
