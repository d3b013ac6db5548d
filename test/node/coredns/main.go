// Command coredns is CoreDNS with only the plugins the test node's cluster
// DNS uses (bind, errors, log, cache, kubernetes), in its own module so that
// CoreDNS's dependencies never move the versions the test module (and its
// in-process kube-apiserver) builds with.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

// The plugin chain, in CoreDNS's own order (its plugin.cfg).
func init() {
	dnsserver.Directives = []string{"bind", "errors", "log", "cache", "kubernetes"}
}

func main() { coremain.Run() }
