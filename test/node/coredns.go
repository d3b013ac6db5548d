package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// BuildCoreDNS builds the node's CoreDNS (test/node/coredns, a module of
// its own) into dir, once per process.
func BuildCoreDNS(ctx context.Context, dir string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("node: cannot find the coredns module's directory")
	}
	src := filepath.Join(filepath.Dir(file), "coredns")
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[src]; ok {
		return p, nil
	}
	out := filepath.Join(dir, "coredns")
	if b, err := run(ctx, "go", "-C", src, "build", "-o", out, "."); err != nil {
		return "", fmt.Errorf("building CoreDNS: %v %s", err, b)
	}
	buildCache[src] = out
	return out, nil
}

// CoreDNS is the cluster DNS of the node: CoreDNS's kubernetes plugin
// answering from the API server, a child process listening on port 53 of
// the bridge's gateway addresses (a family each), where a kube-dns Service
// without selector points (ClusterDNSEndpoints). Names outside the cluster
// domain get no answer: nothing is forwarded off the machine.
type CoreDNS struct {
	Addrs []string // ip:53 it listens on
	*Process
}

// StartCoreDNS runs CoreDNS with kubeconfig's context for the cluster
// domain (and the reverse zones), on the bridge's addresses of the ranges
// the node has now.
func (n *Node) StartCoreDNS(ctx context.Context, binary, kubeconfig, kubeContext, domain string) (*CoreDNS, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.coreDNS != nil {
		return nil, errors.New("node: CoreDNS is started already")
	}
	var hosts, addrs []string
	for _, r := range n.ranges {
		hosts = append(hosts, gatewayOf(r))
		addrs = append(addrs, net.JoinHostPort(gatewayOf(r), "53"))
	}
	corefile := fmt.Sprintf(`.:53 {
    bind %s
    errors
    log
    cache 5
    kubernetes %s in-addr.arpa ip6.arpa {
        kubeconfig %s %s
    }
}
`, strings.Join(hosts, " "), domain, kubeconfig, kubeContext)
	dir := filepath.Join(n.Dir, "coredns")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(path, []byte(corefile), 0o600); err != nil {
		return nil, err
	}
	proc, err := StartProcess("CoreDNS", filepath.Join(n.Dir, "coredns.log"), dir, binary, "-conf", path)
	if err != nil {
		return nil, err
	}
	c := &CoreDNS{Addrs: addrs, Process: proc}
	n.coreDNS = c
	// Serving once it listens on every address over TCP (UDP comes with it).
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		for {
			if gone, log := c.Exited(); gone {
				return c, fmt.Errorf("node: CoreDNS exited: %s", log)
			}
			conn, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				return c, fmt.Errorf("node: CoreDNS not listening on %s after 30s: %s", a, c.LogTail(20))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	n.logf("node %s: CoreDNS serving %s on %s", n.ID, domain, strings.Join(addrs, ", "))
	return c, nil
}

// StopCoreDNS stops the node's CoreDNS (to start it again on the
// addresses the node has now, as a conversion reconfigures the cluster DNS).
func (n *Node) StopCoreDNS() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.coreDNS == nil {
		return errors.New("node: CoreDNS is not running")
	}
	n.coreDNS.Stop(5 * time.Second)
	n.coreDNS = nil
	return nil
}
