package aws

import (
	"encoding/binary"
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

// vpcBlock parses a VPC's IPv6 block: Amazon provides a /56, IPAM pools
// and BYOIP give /44 to /60.
func vpcBlock(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() < 44 || p.Bits() > 60 {
		return netip.Prefix{}, fmt.Errorf("the VPC's IPv6 block %q is not an IPv6 /44 to /60", s)
	}
	return p.Masked(), nil
}

// BlockCount is how many /64s a VPC's IPv6 block holds: 256 in a /56.
func BlockCount(vpc string) (int, error) {
	p, err := vpcBlock(vpc)
	if err != nil {
		return 0, err
	}
	return 1 << (64 - p.Bits()), nil
}

// hi64 is the network half of an IPv6 address: the /64 it is in.
func hi64(a netip.Addr) uint64 {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8])
}

// SubnetBlock is /64 number n of a VPC's IPv6 block (0-255 in a /56).
func SubnetBlock(vpc string, n int) (string, error) {
	p, err := vpcBlock(vpc)
	if err != nil {
		return "", err
	}
	if count := 1 << (64 - p.Bits()); n < 0 || n >= count {
		return "", fmt.Errorf("/64 number %d is outside the VPC's /%d (0-%d)", n, p.Bits(), count-1)
	}
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], hi64(p.Addr())|uint64(n))
	return netip.PrefixFrom(netip.AddrFrom16(a), 64).String(), nil
}

// blockIndex is the number of the /64 sub within the VPC's block, or -1
// when it is not one of its /64s.
func blockIndex(vpc, sub string) int {
	p, err1 := vpcBlock(vpc)
	s, err2 := netip.ParsePrefix(sub)
	if err1 != nil || err2 != nil || s.Bits() != 64 || !s.Addr().Is6() || !p.Contains(s.Addr()) {
		return -1
	}
	return int(hi64(s.Addr()) - hi64(p.Addr()))
}

// AllocateBlocks gives each subnet in need a /64 number of the VPC's block
// of total /64s: stable (subnets in IPv4 address order take the lowest free
// numbers) and never one already in use. used are the numbers subnets
// already have.
func AllocateBlocks(need int, used map[int]bool, total int) ([]int, error) {
	if need < 0 {
		return nil, fmt.Errorf("cannot allocate %d IPv6 /64s", need)
	}
	// Count the free numbers rather than total-len(used): used may hold
	// numbers marked false or outside the block.
	free := total
	for n, u := range used {
		if u && n >= 0 && n < total {
			free--
		}
	}
	if need > free {
		return nil, fmt.Errorf("%d subnets need an IPv6 /64 but the VPC's IPv6 block has only %d left (%d in all)", need, free, total)
	}
	out := make([]int, 0, need)
	for n := 0; len(out) < need; n++ {
		if !used[n] {
			out = append(out, n)
		}
	}
	return out, nil
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
