// Package policies gives the cluster's NetworkPolicies the IPv6 twins of
// their IPv4 ipBlocks.
//
// A NetworkPolicy written for an IPv4-only cluster names IPv4 CIDRs only.
// Once pods have IPv6 such a policy either blocks every IPv6 peer it meant
// to allow (breakage), or, when someone adds `::/0` by hand without the
// except that kept pods from the instance metadata service, opens that
// service over IPv6 (AWS serves it on fd00:ec2::254 when the instance's
// HttpProtocolIpv6 is enabled). So each IPv4 ipBlock gets its IPv6 twin,
// the same shape in the other family: 0.0.0.0/0 -> ::/0,
// 169.254.169.254/32 -> fd00:ec2::254/128, the cluster's pod, service and
// VPC ranges -> their IPv6 ranges; any other CIDR is reported, never
// invented. A block whose except list cannot be mapped whole is not mapped
// at all: a twin without one of its excepts would allow more over IPv6 than
// the policy allows over IPv4.
//
// Plan reads; Apply adds exactly the planned twins, each policy updated
// with the resourceVersion the plan read and journalled first; Rollback
// puts each policy's original spec back.
package policies

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// The fixed twins: everywhere, and AWS's instance metadata service.
var (
	anyIPv4      = netip.MustParsePrefix("0.0.0.0/0")
	anyIPv6      = netip.MustParsePrefix("::/0")
	MetadataIPv4 = netip.MustParsePrefix("169.254.169.254/32")
	MetadataIPv6 = netip.MustParsePrefix("fd00:ec2::254/128")
)

// Range is one of the cluster's IPv4 ranges and its IPv6 counterpart.
type Range struct {
	What string       `json:"what"` // "pod network", "service network", "VPC"
	IPv4 netip.Prefix `json:"ipv4"`
	// IPv6 is the counterpart; not valid when the cluster has none (yet).
	IPv6 netip.Prefix `json:"ipv6,omitzero"`
	// Missing says why there is no IPv6 counterpart and what gives one.
	Missing string `json:"missing,omitempty"`
}

// Ranges are the cluster's ranges that have (or will have) IPv6 twins.
type Ranges []Range

// PairOf makes the Range of a list of one range's CIDRs in both families
// (the OpenShift Network's clusterNetwork, a ServiceCIDR's cidrs): the
// first IPv4 and the first IPv6 entry. ok is false when the list has no
// IPv4 entry.
func PairOf(what string, cidrs []string, missing string) (Range, bool) {
	r := Range{What: what}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			continue
		}
		p = p.Masked()
		switch {
		case p.Addr().Is4() && !r.IPv4.IsValid():
			r.IPv4 = p
		case p.Addr().Is6() && !p.Addr().Is4In6() && !r.IPv6.IsValid():
			r.IPv6 = p
		}
	}
	if !r.IPv4.IsValid() {
		return Range{}, false
	}
	if !r.IPv6.IsValid() {
		r.Missing = missing
	}
	return r, true
}

// twin is the IPv6 counterpart of one IPv4 CIDR, or why there is none.
func (rs Ranges) twin(cidr string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR", cidr)
	}
	p = p.Masked()
	switch p {
	case anyIPv4:
		return anyIPv6, ""
	case MetadataIPv4:
		return MetadataIPv6, ""
	}
	for _, r := range rs {
		if r.IPv4 != p {
			continue
		}
		if !r.IPv6.IsValid() {
			return netip.Prefix{}, fmt.Sprintf("%s is the cluster's %s, which has no IPv6 range yet (%s)", p, r.What, r.Missing)
		}
		return r.IPv6, ""
	}
	return netip.Prefix{}, fmt.Sprintf("%s is none of 0.0.0.0/0, %s (the metadata service) or the cluster's ranges: its IPv6 twin is yours to choose, it is never invented", p, MetadataIPv4)
}

// Block is an ipBlock as the plan shows it.
type Block struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

func (b Block) String() string {
	if len(b.Except) == 0 {
		return b.CIDR
	}
	return b.CIDR + " except " + strings.Join(b.Except, ", ")
}

func blockOf(ib *networkingv1.IPBlock) Block {
	return Block{CIDR: ib.CIDR, Except: slices.Clone(ib.Except)}
}

// Twin is the IPv6 counterpart of an IPv4 ipBlock: its CIDR and every
// except mapped; "" reason when it has one. A block any part of which has
// no twin gets none.
func (rs Ranges) Twin(b Block) (Block, string) {
	cidr, why := rs.twin(b.CIDR)
	if why != "" {
		return Block{}, why
	}
	out := Block{CIDR: cidr.String()}
	for _, e := range b.Except {
		ex, why := rs.twin(e)
		if why != "" {
			return Block{}, "its except " + strings.TrimSpace(e) + " has no twin (" + why + "); without it the IPv6 twin would allow more than the IPv4 block does"
		}
		out.Except = append(out.Except, ex.String())
	}
	return out, ""
}

// family of an ipBlock's CIDR: 4, 6 or 0 when it does not parse.
func family(cidr string) int {
	p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
	switch {
	case err != nil:
		return 0
	case p.Addr().Is4():
		return 4
	default:
		return 6
	}
}

// sameBlock compares two blocks as prefixes, excepts in any order.
func sameBlock(a, b Block) bool {
	norm := func(b Block) []string {
		var out []string
		for _, e := range b.Except {
			if p, err := netip.ParsePrefix(strings.TrimSpace(e)); err == nil {
				out = append(out, p.Masked().String())
			} else {
				out = append(out, e)
			}
		}
		slices.Sort(out)
		return out
	}
	pa, ea := netip.ParsePrefix(strings.TrimSpace(a.CIDR))
	pb, eb := netip.ParsePrefix(strings.TrimSpace(b.CIDR))
	if ea != nil || eb != nil || pa.Masked() != pb.Masked() {
		return false
	}
	return slices.Equal(norm(a), norm(b))
}

// Actions of one IPv4 ipBlock.
const (
	BlockAdd      = "add"      // its twin is added next to it
	BlockPresent  = "present"  // its twin is there already
	BlockUnmapped = "unmapped" // no twin can be derived: reported
	// BlockConflict: an IPv6 block of the twin's CIDR is there with other
	// excepts; it is left alone and reported.
	BlockConflict = "conflict"
)

// Finding is what became of one IPv4 ipBlock of a policy.
type Finding struct {
	Direction string `json:"direction"` // ingress or egress
	Rule      int    `json:"rule"`      // index in spec.ingress or spec.egress
	IPv4      Block  `json:"ipv4"`
	IPv6      *Block `json:"ipv6,omitempty"`
	Action    string `json:"action"`
	Reason    string `json:"reason,omitempty"`
}

func (f Finding) String() string {
	switch f.Action {
	case BlockAdd:
		return fmt.Sprintf("%s[%d] %s -> add %s", f.Direction, f.Rule, f.IPv4, f.IPv6)
	case BlockPresent:
		return fmt.Sprintf("%s[%d] %s: has its twin %s", f.Direction, f.Rule, f.IPv4, f.IPv6)
	default:
		return fmt.Sprintf("%s[%d] %s: %s", f.Direction, f.Rule, f.IPv4, f.Reason)
	}
}

// WithTwins is spec with the IPv6 twin of each IPv4 ipBlock added right
// after it, in the same rule (so with the same ports), where it has one
// and it is not there yet; and what became of each IPv4 ipBlock. spec is
// not changed.
func (rs Ranges) WithTwins(spec *networkingv1.NetworkPolicySpec) (*networkingv1.NetworkPolicySpec, []Finding) {
	out := spec.DeepCopy()
	var findings []Finding
	for i := range out.Ingress {
		var f []Finding
		out.Ingress[i].From, f = rs.peers("ingress", i, out.Ingress[i].From)
		findings = append(findings, f...)
	}
	for i := range out.Egress {
		var f []Finding
		out.Egress[i].To, f = rs.peers("egress", i, out.Egress[i].To)
		findings = append(findings, f...)
	}
	return out, findings
}

func (rs Ranges) peers(direction string, rule int, peers []networkingv1.NetworkPolicyPeer) ([]networkingv1.NetworkPolicyPeer, []Finding) {
	var v6 []Block
	for _, p := range peers {
		if p.IPBlock != nil && family(p.IPBlock.CIDR) == 6 {
			v6 = append(v6, blockOf(p.IPBlock))
		}
	}
	var out []networkingv1.NetworkPolicyPeer
	var findings []Finding
	for _, p := range peers {
		out = append(out, p)
		if p.IPBlock == nil || family(p.IPBlock.CIDR) != 4 {
			continue
		}
		f := Finding{Direction: direction, Rule: rule, IPv4: blockOf(p.IPBlock)}
		twin, why := rs.Twin(f.IPv4)
		if why != "" {
			f.Action, f.Reason = BlockUnmapped, why
			findings = append(findings, f)
			continue
		}
		f.IPv6 = &twin
		f.Action = BlockAdd
		for _, have := range v6 {
			if sameBlock(have, twin) {
				f.Action, f.Reason = BlockPresent, ""
				break
			}
			if sameBlock(Block{CIDR: have.CIDR}, Block{CIDR: twin.CIDR}) {
				f.Action = BlockConflict
				f.Reason = fmt.Sprintf("the rule has %s already, not the twin %s; left alone", have, twin)
				if slices.Contains(twin.Except, MetadataIPv6.String()) && !slices.Contains(have.Except, MetadataIPv6.String()) {
					f.Reason += fmt.Sprintf(": it lets pods reach the instance metadata service over IPv6 (%s), which the IPv4 block keeps them from; add %s to its except list", MetadataIPv6.Addr(), MetadataIPv6)
				}
			}
		}
		if f.Action == BlockAdd {
			out = append(out, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: twin.CIDR, Except: twin.Except}})
			v6 = append(v6, twin) // a repeated IPv4 block gets one twin
		}
		findings = append(findings, f)
	}
	return out, findings
}
