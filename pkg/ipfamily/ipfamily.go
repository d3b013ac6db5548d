// Package ipfamily says which IP family an address or CIDR belongs to, the
// one way every layer decides it: an IPv4-mapped IPv6 address (::ffff:a.b.c.d)
// counts as IPv4, as it is an IPv4 address a resolver or stack wrapped.
package ipfamily

import (
	"encoding/json"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Family is spelled as Kubernetes spells ipFamilies.
type Family string

const (
	IPv4 Family = "IPv4"
	IPv6 Family = "IPv6"
	// None is the family of a string that is neither an address nor a CIDR.
	None Family = ""
)

// Of is the family of an address ("10.0.0.1", "fd00::1", "[fd00::1]") or a
// CIDR ("10.0.0.0/16"); None when s is neither.
func Of(s string) Family {
	s = strings.Trim(strings.TrimSpace(s), "[]")
	if p, err := netip.ParsePrefix(s); err == nil {
		return ofAddr(p.Addr())
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return ofAddr(a)
	}
	return None
}

func ofAddr(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// Cover tells which families a list of addresses or CIDRs covers; entries
// that are neither are ignored.
func Cover(list []string) (v4, v6 bool) {
	for _, s := range list {
		switch Of(s) {
		case IPv4:
			v4 = true
		case IPv6:
			v6 = true
		}
	}
	return v4, v6
}

// NodeInternalIPs are a node's InternalIP addresses of family f.
func NodeInternalIPs(n *corev1.Node, f Family) []string {
	var out []string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && Of(a.Address) == f {
			out = append(out, a.Address)
		}
	}
	return out
}

// OVNNodeSubnets is where OVN-Kubernetes records a node's pod subnets; it
// leaves spec.podCIDRs empty.
const OVNNodeSubnets = "k8s.ovn.org/node-subnets"

// NodePodCIDRs is a node's pod CIDRs: spec.podCIDRs, else the subnets
// OVN-Kubernetes recorded in its annotation.
func NodePodCIDRs(n *corev1.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	return OVNSubnets(n.Annotations[OVNNodeSubnets])
}

// OVNSubnets parses {"default":["10.128.0.0/23","fd01:0:0:1::/64"]} (older
// releases wrote a single string instead of a list).
func OVNSubnets(annotation string) []string {
	// Networks map to a list of subnets or, from older OVN-Kubernetes, to
	// one string; the two forms may mix (a default network written by an
	// old version next to a user-defined network's list).
	var networks map[string]json.RawMessage
	if json.Unmarshal([]byte(annotation), &networks) != nil {
		return nil
	}
	raw := networks["default"]
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return many
	}
	var one string
	if json.Unmarshal(raw, &one) == nil && one != "" {
		return []string{one}
	}
	return nil
}
