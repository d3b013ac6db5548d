package plugin

import (
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
)

// DNSServerEnv is the environment variable every --dns-server defaults
// to (the sandbox's env file sets it to its DNS server for the load
// balancer names).
const DNSServerEnv = "KUBECTL_DUALSTACK_DNS_SERVER"

// IngressServiceHelp is --ingress-service's help on every command.
const IngressServiceHelp = "The ingress gateway Service as namespace/name (default: the Service labelled istio=ingressgateway)"

// DefaultCurlImage is validate's sleep pod: UBI 9 minimal has sleep, curl
// and getent and runs as non-root; pinned to a minor release stream so the
// proof does not change under the user with :latest.
const DefaultCurlImage = "registry.access.redhat.com/ubi9/ubi-minimal:9.6"

// addDNSServerFlag adds --dns-server, the same name, format and default
// on every command that resolves names; what says what is resolved.
func addDNSServerFlag(f *pflag.FlagSet, p *string, what string) {
	f.StringVar(p, "dns-server", os.Getenv(DNSServerEnv),
		"Resolve "+what+" with this DNS server, host or host:port (port 53 by default), instead of the system resolver (default $"+DNSServerEnv+")")
}

// validateDNSServer accepts host or host:port ("" is the system resolver).
func validateDNSServer(s string) error {
	if s == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.Trim(s, "[]"), "53"
	}
	if host == "" || strings.ContainsAny(host, " /") || port == "" {
		return cli.Usagef("--dns-server must be host or host:port (e.g. 10.0.0.2 or 10.0.0.2:53), got %q", s)
	}
	return nil
}

// resolver resolves with server ("" the system resolver).
func resolver(server string) *net.Resolver { return probe.NewResolver(server) }
