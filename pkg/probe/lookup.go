package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// LookupCommand resolves name in a pod with the pod's own resolver
// (/etc/hosts, then cluster DNS with the namespace's search path), the way
// the application would, for one family.
func LookupCommand(f Family, name string) []string {
	db := "ahostsv4"
	if f == IPv6 {
		db = "ahostsv6"
	}
	return []string{"getent", db, name}
}

// ParseLookup reads getent's ahosts output and keeps the family's
// addresses; getent exits 2 when the name has no address at all.
func ParseLookup(f Family, res ExecResult) (addrs []string, notFound bool) {
	if res.ExitCode == 2 {
		return nil, true
	}
	sc := bufio.NewScanner(strings.NewReader(res.Stdout))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && f.Has(fields[0]) && !slices.Contains(addrs, fields[0]) {
			addrs = append(addrs, fields[0])
		}
	}
	return addrs, len(addrs) == 0
}

// InPodLookup resolves name in a pod; an error means the result was lost.
func InPodLookup(ctx context.Context, e Execer, target PodRef, f Family, name string) ([]string, ExecResult, error) {
	res, err := e.Exec(ctx, target.Namespace, target.Name, target.Container, LookupCommand(f, name))
	if err != nil {
		return nil, res, err
	}
	if res.ExitCode != 0 && res.ExitCode != 2 {
		return nil, res, fmt.Errorf("getent exited %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	addrs, _ := ParseLookup(f, res)
	return addrs, res, nil
}

// NewResolver returns the workstation's resolver, or one that asks only
// server (host:port, or a bare address on port 53) when it is set.
func NewResolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(strings.Trim(server, "[]"), "53")
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: 3 * time.Second}
			return d.DialContext(ctx, network, server)
		},
	}
}

// LookupFamily asks resolver for the family's records of host (A or AAAA
// only, so a missing AAAA is not hidden behind an A answer).
func LookupFamily(ctx context.Context, r *net.Resolver, f Family, host string) ([]string, error) {
	network := "ip4"
	if f == IPv6 {
		network = "ip6"
	}
	ips, err := r.LookupIP(ctx, network, host)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		// With --dns-server the Dial override asks that server, but the
		// error would name the system's: name none rather than the wrong one.
		dnsErr.Server = ""
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ip := range ips {
		if s := ip.String(); f.Has(s) {
			out = append(out, s)
		}
	}
	return out, nil
}
