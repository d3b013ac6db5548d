package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// KubeletPackage is the kubelet the node runs, built from the test module
// (a tool directive in test/go.mod keeps its dependencies there, at the
// release the in-process kube-apiserver is built from).
const KubeletPackage = "k8s.io/kubernetes/cmd/kubelet"

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
)

// Build compiles a package of the test module (its go.mod's tool
// directives) into a binary under dir, once per process and package; later
// calls return the same path. Go's build cache makes a rebuild a link.
// ldflags go to the linker (a release's version, as the Makefile sets it for
// the kube-apiserver: VersionLDFlags).
func Build(ctx context.Context, dir, pkg, ldflags string) (string, error) {
	return build(ctx, dir, pkg, ldflags, false)
}

// BuildStatic is Build without cgo: a binary an image can hold alone.
func BuildStatic(ctx context.Context, dir, pkg string) (string, error) {
	return build(ctx, dir, pkg, "-s -w", true)
}

func build(ctx context.Context, dir, pkg, ldflags string, static bool) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		return p, nil
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", ldflags, "-o", out, pkg)
	if static {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v %s", pkg, err, b)
	}
	buildCache[pkg] = out
	return out, nil
}

// VersionLDFlags are the linker flags that make a Kubernetes component
// report version (v1.37.2), as a release build does.
func VersionLDFlags(version string) string {
	major, minor, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	return fmt.Sprintf("-X k8s.io/component-base/version.gitVersion=%s -X k8s.io/component-base/version.gitMajor=%s -X k8s.io/component-base/version.gitMinor=%s", version, major, minor)
}

// DevicePluginSocket is where a kubelet serves device plugins: a fixed path,
// whatever its --root-dir.
const DevicePluginSocket = "/var/lib/kubelet/device-plugins/kubelet.sock"

// kubeletSysctls are the kernel settings a kubelet sets at start when they
// differ (its setupKernelTunables, with protectKernelDefaults false). They
// are global, so the node records what they were and puts them back.
var kubeletSysctls = []string{
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
}

// KubeletConfig tunes StartKubelet.
type KubeletConfig struct {
	// Binary is the kubelet to run (Build(ctx, dir, KubeletPackage)).
	Binary string
	// Kubeconfig is the file with the API server and the credentials the
	// kubelet registers the node with. Empty: a standalone kubelet, which
	// runs only the static pods in Kubelet.ManifestDir.
	Kubeconfig string
	// ClusterDNS is the cluster DNS Service's addresses (pods' resolv.conf),
	// ClusterDomain its domain (default cluster.local).
	ClusterDNS    []string
	ClusterDomain string
	// NodeIPs are the node's addresses (default: the bridge's IPv4 gateway
	// address; add the IPv6 one after AddIPv6Range for a dual-stack node).
	NodeIPs []string
}

// Kubelet is the node's kubelet, a child process.
type Kubelet struct {
	NodeName string
	// Address is where its server (logs, exec, port-forward) listens: the
	// bridge's IPv4 gateway address and a free port. The API server reaches
	// it there, as the node's InternalIP.
	Address string
	// ManifestDir is its static pod path: a pod manifest written there runs.
	ManifestDir string
	*Process
}

// NodeName is the name the node registers as: kds-<ID>.
func (n *Node) NodeName() string { return "kds-" + n.ID }

// StartKubelet starts a kubelet for the node against the API server in
// cfg.Kubeconfig; it returns once the kubelet runs (the Node object may not
// exist yet: wait for it to be Ready). Down stops it and restores the kernel
// settings it changed.
func (n *Node) StartKubelet(ctx context.Context, cfg KubeletConfig) (*Kubelet, error) {
	if cfg.Binary == "" {
		return nil, errors.New("node: a kubelet needs its binary")
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if len(cfg.NodeIPs) == 0 {
		cfg.NodeIPs = []string{gatewayOf(IPv4Range)}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.kubelet != nil {
		return nil, errors.New("node: the kubelet is started already")
	}
	if err := n.claimHost(kubeletSysctls, "a kubelet"); err != nil {
		return nil, err
	}
	if err := n.update(func(r *record) { r.DevicePluginSocket = DevicePluginSocket }); err != nil {
		return nil, err
	}

	// The kubelet wants its cgroup root in every hierarchy before it starts
	// (the record names it already, so cleanup removes it).
	for _, root := range cgroupRoots() {
		if err := os.MkdirAll(filepath.Join(root, n.CgroupRoot), 0o755); err != nil {
			return nil, fmt.Errorf("node: cgroup %s: %w", n.CgroupRoot, err)
		}
	}
	dir := filepath.Join(n.Dir, "kubelet")
	for _, d := range []string{dir, filepath.Join(dir, "manifests"), filepath.Join(dir, "pki"), filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\noptions ndots:1\n"), 0o644); err != nil {
		return nil, err
	}
	host := gatewayOf(IPv4Range)
	port, err := freePort(host)
	if err != nil {
		return nil, fmt.Errorf("node: a port for the kubelet: %w", err)
	}
	conf := n.kubeletConfig(cfg, dir, host, port, resolv)
	confPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	args := []string{
		"--config", confPath,
		"--root-dir", filepath.Join(dir, "root"),
		"--cert-dir", filepath.Join(dir, "pki"),
		"--hostname-override", n.NodeName(),
		"--node-ip", strings.Join(cfg.NodeIPs, ","),
		"--v", "2",
	}
	if cfg.Kubeconfig != "" {
		args = append(args, "--kubeconfig", cfg.Kubeconfig)
	}
	proc, err := StartProcess("kubelet", filepath.Join(n.Dir, "kubelet.log"), "", cfg.Binary, args...)
	if err != nil {
		return nil, err
	}
	k := &Kubelet{NodeName: n.NodeName(), Address: net.JoinHostPort(host, strconv.Itoa(port)),
		ManifestDir: filepath.Join(dir, "manifests"), Process: proc}
	n.kubelet = k
	if err := n.update(func(r *record) { r.Kubelet = proc.Pid() }); err != nil {
		return k, err
	}
	n.logf("node %s: kubelet started (pid %d, server %s)", n.ID, proc.Pid(), k.Address)
	return k, nil
}

// kubeletConfig renders the KubeletConfiguration: cgroupfs under the node's
// cgroup, containerd's CRI, the server on the bridge address only (anonymous
// and allowed everything: the test API server has no client certificate for
// kubelets, and only the host and the node's pods reach the bridge), no
// read-only port, no eviction or image GC to speak of (the machine's disk is
// not the test's business), and what a machine without CAP_SYS_RESOURCE and
// with cgroup v1 needs.
func (n *Node) kubeletConfig(cfg KubeletConfig, dir, host string, port int, resolv string) string {
	var dns strings.Builder
	for _, a := range cfg.ClusterDNS {
		fmt.Fprintf(&dns, "\n  - %q", a)
	}
	clusterDNS := "[]"
	if dns.Len() > 0 {
		clusterDNS = dns.String()
	}
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]q
port: %[2]d
readOnlyPort: 0
healthzPort: 0
enableServer: true
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
  x509:
    clientCAFile: ""
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: %[3]q
cgroupDriver: cgroupfs
cgroupRoot: %[4]q
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
protectKernelDefaults: false
staticPodPath: %[5]q
podLogsDir: %[6]q
volumePluginDir: %[7]q
resolvConf: %[8]q
clusterDomain: %[9]q
clusterDNS: %[10]s
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "0%%"
  nodefs.inodesFree: "0%%"
  imagefs.available: "0%%"
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
syncFrequency: 10s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
nodeStatusReportFrequency: 30s
`, host, port, "unix://"+n.Socket, n.CgroupRoot,
		filepath.Join(dir, "manifests"), filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins"),
		resolv, cfg.ClusterDomain, clusterDNS)
}

// freePort asks the kernel for a free TCP port on host.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// claimHost is what a Kubernetes component (who names it) needs before it
// starts on the host: no KUBE-* chains but the node's own (it removes them
// all at the end), and the kernel settings in keys recorded as they are, so
// cleanup puts them back whatever the component changes. The caller holds
// n.mu.
func (n *Node) claimHost(keys []string, who string) error {
	if !n.rec.KubeChains {
		if present, err := KubeChainsPresent(); err != nil {
			return fmt.Errorf("node: listing iptables chains: %w", err)
		} else if len(present) > 0 {
			return fmt.Errorf("node: refusing to start %s: this machine has Kubernetes iptables chains already (%s); a kubelet or kube-proxy runs here, or ran and left them: remove them first", who, strings.Join(present, ", "))
		}
	}
	saved := map[string]string{}
	for k, v := range n.rec.Sysctls {
		saved[k] = v
	}
	for _, k := range keys {
		if _, ok := saved[k]; ok {
			continue // recorded before an earlier component changed it
		}
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			return fmt.Errorf("node: reading %s: %w", k, err)
		}
		saved[k] = strings.TrimSpace(string(b))
	}
	return n.update(func(r *record) { r.Sysctls, r.KubeChains = saved, true })
}

// restoreSysctls puts back the kernel settings recorded before a kubelet
// started.
func restoreSysctls(saved map[string]string) error {
	var errs []string
	for k, v := range saved {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err == nil && strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			errs = append(errs, k+": "+err.Error())
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// StopKubelet stops the node's kubelet; its pods keep running, as they do
// when an admin restarts a kubelet. StartKubelet starts it again with the
// same directories (and the flags given then: a new --node-ip, a new
// kubeconfig), and it takes its pods back.
func (n *Node) StopKubelet() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.kubelet == nil {
		return errors.New("node: the kubelet is not running")
	}
	n.kubelet.Stop(10 * time.Second)
	n.kubelet = nil
	return nil
}
