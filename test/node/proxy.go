package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// KubeProxyPackage is the kube-proxy the node runs (a tool directive in
// test/go.mod, like the kubelet).
const KubeProxyPackage = "k8s.io/kubernetes/cmd/kube-proxy"

// forwardingSysctls are what Service routing needs on the host: a pod's
// packet to a ClusterIP reaches the host through the bridge, is DNATed to
// a pod and forwarded back out of it. route_localnet is listed because
// kube-proxy may set it; it is configured not to.
var forwardingSysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv6/conf/all/forwarding",
	"net/ipv4/conf/all/route_localnet",
}

// KubeProxyConfig tunes StartKubeProxy.
type KubeProxyConfig struct {
	// Binary is the kube-proxy to run (Build(ctx, dir, KubeProxyPackage)).
	Binary string
	// Kubeconfig is the file with the API server and credentials.
	Kubeconfig string
}

// KubeProxy is the node's kube-proxy, a child process.
type KubeProxy struct{ *Process }

// SetServiceCIDRs gives pods created from now on a route to each Service
// range of a family they have an address in, through the bridge's gateway
// address: a ClusterIP is reached through the host, where kube-proxy's
// rules translate it. Pods created before keep their routes.
func (n *Node) SetServiceCIDRs(cidrs ...string) error {
	for _, c := range cidrs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("node: service CIDR: %w", err)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.serviceCIDRs = append([]string(nil), cidrs...)
	return n.writeCNIConfig()
}

// serviceRoutes are the CNI routes for the Service ranges whose family has
// a pod range; the caller holds n.mu.
func (n *Node) serviceRoutes() []map[string]string {
	var out []map[string]string
	for _, c := range n.serviceCIDRs {
		is4 := netip.MustParsePrefix(c).Addr().Is4()
		for _, r := range n.ranges {
			if netip.MustParsePrefix(r).Addr().Is4() == is4 {
				out = append(out, map[string]string{"dst": c, "gw": gatewayOf(r)})
			}
		}
	}
	return out
}

// PrepareKubeProxy readies the host for a kube-proxy that runs in a pod
// (a DaemonSet's, hostNetwork and privileged, from KubeProxyImage): what
// StartKubeProxy does before it starts one as a child process. The host
// forwards from then on, but only between the bridge's ports: when
// forwarding was off before, a rule tagged with the run's comment drops
// every other forwarded packet, so the machine routes nothing it did not
// before. The kernel settings are recorded first and the KUBE-* chains
// removed at the end, as for a kubelet.
func (n *Node) PrepareKubeProxy(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.prepareForwarding(ctx)
}

// prepareForwarding is PrepareKubeProxy with n.mu held; a second call does
// nothing.
func (n *Node) prepareForwarding(ctx context.Context) error {
	if n.forwarding {
		return nil
	}
	if err := n.claimHost(forwardingSysctls, "kube-proxy"); err != nil {
		return err
	}
	if n.rec.Sysctls["net/ipv4/ip_forward"] == "0" || n.rec.Sysctls["net/ipv6/conf/all/forwarding"] == "0" {
		for _, tool := range iptablesTools {
			args := []string{"-w", "-t", "filter", "-I", "FORWARD", "1", "!", "-i", n.Bridge, "!", "-o", n.Bridge,
				"-m", "comment", "--comment", n.rec.Comment, "-j", "DROP"}
			if _, err := run(ctx, tool, args...); err != nil {
				return err
			}
		}
	}
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile("/proc/sys/"+k, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("node: %s: %w", k, err)
		}
	}
	n.forwarding = true
	return nil
}

// StartKubeProxy starts kube-proxy for the node as a child process, with
// KubeProxyConfiguration's settings for the node's pod ranges, after
// PrepareKubeProxy's host changes.
func (n *Node) StartKubeProxy(ctx context.Context, cfg KubeProxyConfig) (*KubeProxy, error) {
	if cfg.Binary == "" || cfg.Kubeconfig == "" {
		return nil, errors.New("node: kube-proxy needs its binary and a kubeconfig")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.kubeProxy != nil {
		return nil, errors.New("node: kube-proxy is started already")
	}
	if err := n.prepareForwarding(ctx); err != nil {
		return nil, err
	}

	dir := filepath.Join(n.Dir, "kube-proxy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	clusterCIDRs := strings.Join(n.ranges, ",")
	conf := KubeProxyConfiguration(cfg.Kubeconfig, clusterCIDRs)
	confPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	proc, err := StartProcess("kube-proxy", filepath.Join(n.Dir, "kube-proxy.log"), "", cfg.Binary, "--config", confPath, "--hostname-override", n.NodeName(), "--v", "2")
	if err != nil {
		return nil, err
	}
	p := &KubeProxy{proc}
	n.kubeProxy = p
	if err := n.update(func(r *record) { r.KubeProxy = proc.Pid() }); err != nil {
		return p, err
	}
	n.logf("node %s: kube-proxy started (pid %d, cluster CIDRs %s)", n.ID, proc.Pid(), clusterCIDRs)
	return p, nil
}

// KubeProxyConfiguration is the configuration the node's kube-proxy runs
// with (a file for StartKubeProxy, the kube-proxy ConfigMap's config.conf
// for a DaemonSet), for the cluster CIDRs given (comma-separated, as
// kubeadm writes them). iptables mode; only on loopback, no health or
// metrics server. It masquerades all Service traffic (masqueradeAll): the
// backend answers the host, which undoes the translation; without it a
// reply between two pods on the same bridge would skip the host (no
// br_netfilter here). Localhost NodePorts are off (they need
// route_localnet), and conntrack limits and timeouts are left as they are.
func KubeProxyConfiguration(kubeconfig, clusterCIDRs string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %[1]q
mode: iptables
clusterCIDR: %[2]q
bindAddress: 127.0.0.1
healthzBindAddress: ""
metricsBindAddress: ""
iptables:
  masqueradeAll: true
  localhostNodePorts: false
  syncPeriod: 5s
  minSyncPeriod: 0s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, kubeconfig, clusterCIDRs)
}
