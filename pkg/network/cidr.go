// Package network is the overlay layer: it converts the cluster network to
// IPv4/IPv6 dual-stack. On OpenShift it appends IPv6 ranges to the Network
// config, waits until the network operator has rolled them out, and can
// revert exactly what it added; on kubeadm and kind it reads the current
// flags and plans the per-component changes, without touching the hosts.
package network

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
)

// Defaults for the IPv6 ranges, the ones OpenShift documents for dual-stack.
const (
	DefaultClusterNetwork = "fd01::/48"
	DefaultHostPrefix     = 64
	DefaultServiceNetwork = "fd02::/112"
)

// Service range sizes: kube-apiserver refuses an IPv6 service range larger
// than /108 (it allocates from a bitmap of at most 2^20 addresses); one
// smaller than /120 leaves fewer than 256 service IPs, which no cluster can
// live with.
const (
	minServicePrefix = 108
	maxServicePrefix = 120
	// minHostPrefix: OVN-Kubernetes and the kube-controller-manager hand out
	// per-node IPv6 subnets of /64 or smaller.
	minHostPrefix = 64
	// maxHostPrefix is the operator's limit (bits-2): a node subnet needs room
	// for at least a gateway and one pod.
	maxHostPrefix = 126
	// maxNodeMaskBits: kube-controller-manager refuses a node CIDR mask more
	// than 16 bits longer than the cluster CIDR's.
	maxNodeMaskBits = 16
)

// specialIPv6 are the ranges no pod or Service may be numbered from: a range
// that overlaps one would hand out ::1 or an IPv4-mapped address to a pod,
// or the loopback address to the kubernetes Service.
var specialIPv6 = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("::/8"), "reserved (unspecified, loopback, IPv4-mapped and -compatible, NAT64)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Reserved is a range something else in the cluster already uses.
type Reserved struct {
	Prefix netip.Prefix
	What   string // "OVN-Kubernetes join subnet (default)", "IPv4 cluster network"...
}

// OVN-Kubernetes' internal IPv6 subnets and the operator config fields that
// override them (operator.openshift.io networks/cluster
// spec.defaultNetwork.ovnKubernetesConfig...).
var ovnInternal = []struct {
	def   string
	what  string
	field []string
}{
	{"fd98::/64", "OVN-Kubernetes join subnet", []string{"ipv6", "internalJoinSubnet"}},
	{"fd97::/64", "OVN-Kubernetes transit switch subnet", []string{"ipv6", "internalTransitSwitchSubnet"}},
	{"fd69::/112", "OVN-Kubernetes masquerade subnet", []string{"gatewayConfig", "ipv6", "internalMasqueradeSubnet"}},
}

// Request is the IPv6 ranges to add, validated on their own.
type Request struct {
	ClusterNetwork netip.Prefix
	HostPrefix     int
	ServiceNetwork netip.Prefix
}

// ClusterEntry is the clusterNetwork entry to add, as the API spells it.
func (r Request) ClusterEntry() ClusterNetworkEntry {
	return ClusterNetworkEntry{CIDR: r.ClusterNetwork.String(), HostPrefix: int64(r.HostPrefix)}
}

// ClusterNetworkEntry is one spec.clusterNetwork entry of the OpenShift Network.
type ClusterNetworkEntry struct {
	CIDR       string `json:"cidr"`
	HostPrefix int64  `json:"hostPrefix"`
}

// ParseRequest checks the flags' values on their own: IPv6, canonical, sizes
// the components accept, no overlap between the two. Errors say what to use
// instead; callers turn them into usage errors.
func ParseRequest(clusterNetwork string, hostPrefix int, serviceNetwork string) (Request, error) {
	var r Request
	var err error
	if r.ClusterNetwork, err = parseIPv6Prefix("--cluster-network", clusterNetwork); err != nil {
		return r, err
	}
	if r.ServiceNetwork, err = parseIPv6Prefix("--service-network", serviceNetwork); err != nil {
		return r, err
	}
	r.HostPrefix = hostPrefix
	bits := r.ClusterNetwork.Bits()
	switch {
	case hostPrefix < minHostPrefix || hostPrefix > maxHostPrefix:
		return r, fmt.Errorf("--host-prefix %d: must be between %d and %d for IPv6 (each node gets a /%d or smaller from the cluster network)", hostPrefix, minHostPrefix, maxHostPrefix, minHostPrefix)
	case hostPrefix <= bits:
		return r, fmt.Errorf("--host-prefix %d must be longer than the cluster network's /%d, or there is only room for one node's subnet", hostPrefix, bits)
	}
	if sb := r.ServiceNetwork.Bits(); sb < minServicePrefix || sb > maxServicePrefix {
		return r, fmt.Errorf("--service-network %s: the prefix must be between /%d (the largest IPv6 service range kube-apiserver accepts) and /%d; e.g. %s", r.ServiceNetwork, minServicePrefix, maxServicePrefix, DefaultServiceNetwork)
	}
	if r.ClusterNetwork.Overlaps(r.ServiceNetwork) {
		return r, fmt.Errorf("--cluster-network %s and --service-network %s overlap: pick disjoint ranges", r.ClusterNetwork, r.ServiceNetwork)
	}
	return r, nil
}

// CheckNodeMask checks the kube-controller-manager's limit on the per-node
// mask (kubeadm and kind allocate node CIDRs there).
func (r Request) CheckNodeMask() error {
	if d := r.HostPrefix - r.ClusterNetwork.Bits(); d > maxNodeMaskBits {
		return fmt.Errorf("--host-prefix %d is %d bits longer than the cluster network's /%d; kube-controller-manager allows at most %d: use a cluster network of /%d or larger, or a shorter --host-prefix",
			r.HostPrefix, d, r.ClusterNetwork.Bits(), maxNodeMaskBits, r.HostPrefix-maxNodeMaskBits)
	}
	return nil
}

// CheckReserved rejects a request that overlaps a range in use.
func (r Request) CheckReserved(reserved []Reserved) error {
	for _, res := range reserved {
		for _, mine := range []struct {
			flag string
			p    netip.Prefix
		}{{"--cluster-network", r.ClusterNetwork}, {"--service-network", r.ServiceNetwork}} {
			if mine.p.Overlaps(res.Prefix) {
				return fmt.Errorf("%s %s overlaps the %s %s: pick another range", mine.flag, mine.p, res.What, res.Prefix)
			}
		}
	}
	return nil
}

// OVNReserved is OVN-Kubernetes' internal IPv6 subnets: the defaults, or the
// operator config's own values where it sets them (get reads a nested string
// of spec.defaultNetwork.ovnKubernetesConfig).
func OVNReserved(get func(field ...string) string) ([]Reserved, error) {
	var out []Reserved
	for _, o := range ovnInternal {
		what, value := o.what+" (default)", o.def
		if get != nil {
			custom := get(o.field...)
			if custom == "" && o.field[len(o.field)-1] == "internalJoinSubnet" {
				custom = get("v6InternalSubnet") // the older name of the join subnet
			}
			if custom != "" {
				what, value = o.what+" (operator config)", custom
			}
		}
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return nil, fmt.Errorf("the operator config's %s %q is not a CIDR: %w", o.what, value, err)
		}
		out = append(out, Reserved{Prefix: p.Masked(), What: what})
	}
	return out, nil
}

// ReservedFromCIDRs turns existing ranges (the IPv4 ones, say) into Reserved;
// unparsable ones are skipped, the API server validated them already.
func ReservedFromCIDRs(what string, cidrs []string) []Reserved {
	var out []Reserved
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, Reserved{Prefix: p.Masked(), What: what})
		}
	}
	return out
}

// ReservedFromAddresses turns node addresses into single-address ranges.
func ReservedFromAddresses(what string, addrs []string) []Reserved {
	var out []Reserved
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil && ip.Is6() && !ip.Is4In6() {
			out = append(out, Reserved{Prefix: netip.PrefixFrom(ip, 128), What: what + " " + a})
		}
	}
	return out
}

func parseIPv6Prefix(flag, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%s %q is not a CIDR (e.g. %s)", flag, s, exampleFor(flag))
	}
	if !p.Addr().Is6() || p.Addr().Is4In6() {
		return p, fmt.Errorf("%s %s is not an IPv6 range: the IPv4 ranges stay as they are, give the IPv6 one to add (e.g. %s)", flag, s, exampleFor(flag))
	}
	if p.Addr().Zone() != "" {
		return p, fmt.Errorf("%s %s: a range cannot carry a zone", flag, s)
	}
	if p.Masked() != p {
		return p, fmt.Errorf("%s %s has host bits set: did you mean %s?", flag, s, p.Masked())
	}
	for _, sp := range specialIPv6 {
		if p.Overlaps(sp.prefix) {
			return p, fmt.Errorf("%s %s overlaps the %s range %s: use a unique local range (fc00::/7) or a global one (e.g. %s)", flag, s, sp.what, sp.prefix, exampleFor(flag))
		}
	}
	return p, nil
}

func exampleFor(flag string) string {
	if flag == "--service-network" {
		return DefaultServiceNetwork
	}
	return DefaultClusterNetwork
}

// Family of a CIDR or address string: "IPv4", "IPv6" or "".
func Family(s string) string { return string(ipfamily.Of(s)) }

func itoa(i int) string { return strconv.Itoa(i) }
