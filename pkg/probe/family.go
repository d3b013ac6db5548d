// Package probe is validate's proof of dual-stack and probe's ad-hoc
// debugging: the scenario it builds in a namespace, the checks it runs once
// per IP family (exec curl and name lookups in a pod, DNS and HTTP from the
// workstation), and how results are judged. A check passes only when the
// thing it names was observed; a lost result is INCONCLUSIVE, never PASS.
package probe

import (
	"strings"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
)

// Family is an IP family, spelled as Kubernetes spells ipFamilies.
type Family string

const (
	IPv4 Family = "IPv4"
	IPv6 Family = "IPv6"
)

// Families are both, IPv4 first, the order every report uses.
var Families = []Family{IPv4, IPv6}

// CurlFlag is curl's option that forces the family.
func (f Family) CurlFlag() string {
	if f == IPv6 {
		return "-6"
	}
	return "-4"
}

// Network is the Go dial network for the family.
func (f Family) Network() string {
	if f == IPv6 {
		return "tcp6"
	}
	return "tcp4"
}

// RecordType is the DNS record that holds the family's addresses.
func (f Family) RecordType() string {
	if f == IPv6 {
		return "AAAA"
	}
	return "A"
}

// Has reports whether s is an address of the family (IPv4-mapped IPv6
// addresses count as IPv4: they are what a resolver invents, not AAAA data).
func (f Family) Has(s string) bool {
	if strings.Contains(s, "/") {
		return false // an address, not a CIDR
	}
	return ipfamily.Of(s) == ipfamily.Family(f)
}

// Pick returns the addresses of the family among ips.
func (f Family) Pick(ips []string) []string {
	var out []string
	for _, ip := range ips {
		if f.Has(ip) {
			out = append(out, ip)
		}
	}
	return out
}
