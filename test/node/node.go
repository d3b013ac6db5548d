// Package node brings up a real container node on this machine for tests, as
// root: containerd (Debian's, started as a child process with its own root,
// state, socket and config under a temp dir), runc, a test bridge with the
// bridge CNI plugin and host-local IPAM (a range per family: IPv4-only first,
// IPv6 added later as a cluster's conversion would), and images built
// locally from binaries (a pause image, a static busybox image) imported
// with containerd's ctr. No registry is used.
//
// On it run the real Kubernetes node components as child processes
// (StartKubelet, StartKubeProxy, StartCoreDNS), built by Build from the test
// module's tool directives.
//
// Everything it creates stays on the machine: the bridge carries only the
// pod ranges and the host's gateway addresses on it, and iptables rules drop
// anything forwarded between the bridge and any other interface. Host
// forwarding is left as it is until kube-proxy starts (it needs it); then,
// when it was off, a rule drops everything forwarded but from the bridge to
// the bridge. What the components change on the host is recorded first and
// put back by the same cleanup. Teardown (Down, also from a signal) and the next
// run's leftover check share one cleanup path driven by a record in
// StateDir, written before each thing it names is created.
package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// Namespace is the containerd namespace the node uses: the CRI's.
	Namespace = "k8s.io"
	// IPv4Range and IPv6Range are the pod ranges of the node's bridge network.
	IPv4Range = "10.244.0.0/24"
	IPv6Range = "fd10:244::/64"
	// CNIBinDir is where Debian's containernetworking-plugins puts the plugins.
	CNIBinDir = "/usr/lib/cni"
	// BusyboxImage and PauseImage are the names the local images are imported as.
	BusyboxImageName = "kds.local/busybox:1.35"
	PauseImageName   = "kds.local/pause:kds"
	// BusyboxPath is the static busybox from Debian's busybox-static.
	BusyboxPath = "/usr/bin/busybox"
	// PausePackage is built (statically) into the pause image.
	PausePackage = "github.com/kubectl-dualstack/kubectl-dualstack/test/node/pause"
)

// Config tunes Up. The zero value is usable.
type Config struct {
	// Snapshotter is containerd's snapshotter: "overlayfs" (default) or "native".
	Snapshotter string
	// LockTimeout bounds the wait for another node on this machine (default 10m).
	LockTimeout time.Duration
	// Logf receives progress lines (default: discarded).
	Logf func(format string, args ...any)
	// NoImages skips building and importing the pause and busybox images.
	NoImages bool
	// NoSignalHandler leaves SIGINT/SIGTERM alone (by default Up tears the node
	// down on either, then lets the signal do what it would have done).
	NoSignalHandler bool
}

// Node is one node that is up. Its methods are safe for concurrent use.
type Node struct {
	ID          string // 8 hex digits, in every name the node creates
	Dir         string // temp dir: containerd root, state, socket, config, logs, CNI config, IPAM data, netns files
	Bridge      string // the test bridge, kds-<ID>
	Socket      string // containerd's gRPC socket
	Snapshotter string
	CNIConfDir  string // holds the node's one conflist (the CRI plugin's conf_dir)
	// CgroupRoot is the cgroup every container of the node goes under
	// (cgroupfs, in each hierarchy): ctr's --cgroup parent, a CRI pod's
	// cgroup_parent, a kubelet's --cgroup-root. Cleanup removes it.
	CgroupRoot string

	logf       func(string, ...any)
	lock       *os.File
	containerd *exec.Cmd
	exited     chan struct{}
	kubelet    *Kubelet
	kubeProxy  *KubeProxy
	coreDNS    *CoreDNS
	stopSig    func()

	mu     sync.Mutex
	rec    *record
	ranges []string
	// serviceCIDRs get a route in pods created after SetServiceCIDRs.
	serviceCIDRs []string
	execSeq      int
	forwarding   bool // PrepareKubeProxy ran
	down         bool
	downErr      error
}

// Missing lists what the node needs and this machine lacks (`make node-deps`
// installs it), or why it cannot run here.
func Missing() []string {
	var out []string
	if os.Geteuid() != 0 {
		out = append(out, "root (running as uid "+fmt.Sprint(os.Geteuid())+")")
	}
	for _, bin := range []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc", "iptables", "ip6tables", "ip", "unshare", "go", "curl", "getent", "ldd"} {
		if _, err := exec.LookPath(bin); err != nil {
			out = append(out, bin)
		}
	}
	for _, f := range []string{BusyboxPath, filepath.Join(CNIBinDir, "bridge"), filepath.Join(CNIBinDir, "host-local"), filepath.Join(CNIBinDir, "loopback")} {
		if _, err := os.Stat(f); err != nil {
			out = append(out, f)
		}
	}
	return out
}

// Up cleans what earlier killed runs left (or refuses, naming what it could
// not remove), then brings a node up. Call Down when done (t.Cleanup).
func Up(ctx context.Context, cfg Config) (n *Node, err error) {
	if m := Missing(); len(m) > 0 {
		return nil, fmt.Errorf("node: missing %s (make node-deps installs the packages)", strings.Join(m, ", "))
	}
	if cfg.Snapshotter == "" {
		cfg.Snapshotter = "overlayfs"
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = 10 * time.Minute
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	start := time.Now()
	lock, err := lockState(cfg.LockTimeout)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := cleanLeftovers(logf); err != nil {
		lock.Close()
		return nil, fmt.Errorf("node: refusing to start: %w", err)
	}

	idb := make([]byte, 4)
	if _, err := rand.Read(idb); err != nil {
		lock.Close()
		return nil, err
	}
	id := hex.EncodeToString(idb)
	dir := filepath.Join(os.TempDir(), "kds-node-"+id)
	n = &Node{
		ID:          id,
		Dir:         dir,
		Bridge:      "kds-" + id,
		Socket:      filepath.Join(dir, "containerd.sock"),
		Snapshotter: cfg.Snapshotter,
		CNIConfDir:  filepath.Join(dir, "net.d"),
		CgroupRoot:  "/kds-" + id,
		logf:        logf,
		lock:        lock,
		ranges:      []string{IPv4Range},
		rec: &record{
			ID: id, OwnerPID: os.Getpid(), Started: time.Now().UTC(), Dir: dir,
			Bridge: "kds-" + id, Cgroup: "/kds-" + id, Comment: "kds-" + id,
		},
	}
	// The record first: from here on, whatever happens, the next run (or
	// Down) finds and removes all of it.
	if err := n.rec.save(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	defer func() {
		if err != nil {
			if derr := n.Down(); derr != nil {
				err = fmt.Errorf("%w (and tearing down: %v)", err, derr)
			}
			n = nil
		}
	}()
	if !cfg.NoSignalHandler {
		n.handleSignals()
	}
	for _, d := range []string{dir, n.CNIConfDir, filepath.Join(dir, "netns"), filepath.Join(dir, "fifo"), filepath.Join(dir, "runc"), filepath.Join(dir, "cni-ipam")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return n, fmt.Errorf("node: %w", err)
		}
	}
	if err := n.setupNetwork(); err != nil {
		return n, fmt.Errorf("node: network: %w", err)
	}
	if err := n.startContainerd(ctx); err != nil {
		return n, fmt.Errorf("node: containerd: %w", err)
	}
	logf("node %s: containerd up (%s snapshotter, socket %s) in %s", id, n.Snapshotter, n.Socket, time.Since(start).Round(time.Millisecond))
	if !cfg.NoImages {
		t := time.Now()
		if err := n.importImages(ctx); err != nil {
			return n, fmt.Errorf("node: images: %w", err)
		}
		logf("node %s: images %s and %s built and imported in %s", id, PauseImageName, BusyboxImageName, time.Since(t).Round(time.Millisecond))
	}
	logf("node %s: up in %s", id, time.Since(start).Round(time.Millisecond))
	return n, nil
}

// Down stops everything and removes what the node created; it is safe to
// call more than once. The error names what could not be removed (the record
// stays, and the next Up tries again or refuses with that line).
func (n *Node) Down() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return n.downErr
	}
	n.down = true
	start := time.Now()
	if n.stopSig != nil {
		n.stopSig()
	}
	for _, p := range []*Process{n.coreDNS.process(), n.kubeProxy.process(), n.kubelet.process()} {
		if p != nil {
			p.Stop(10 * time.Second)
		}
	}
	if n.containerd != nil && n.containerd.Process != nil {
		n.containerd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
			n.containerd.Process.Kill()
			<-n.exited
		}
	}
	n.downErr = n.rec.cleanup()
	if n.downErr != nil {
		n.downErr = fmt.Errorf("node %s: teardown left: %v", n.ID, n.downErr)
	}
	n.lock.Close()
	n.logf("node %s: down in %s", n.ID, time.Since(start).Round(time.Millisecond))
	return n.downErr
}

// handleSignals tears the node down on SIGINT/SIGTERM/SIGHUP, then re-raises
// the signal with its default action.
func (n *Node) handleSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	var once sync.Once
	n.stopSig = func() { once.Do(func() { signal.Stop(ch); close(done) }) }
	go func() {
		select {
		case sig := <-ch:
			fmt.Fprintf(os.Stderr, "node %s: %v: tearing down\n", n.ID, sig)
			if err := n.Down(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
			signal.Reset(sig)
			syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		case <-done:
		}
	}()
}

// update changes the record and saves it; the caller holds n.mu.
func (n *Node) update(f func(r *record)) error {
	f(n.rec)
	return n.rec.save()
}

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(append(out, stderr.Bytes()...)))
	}
	return out, nil
}

// ---- network: bridge, CNI config, iptables guard rules

// setupNetwork creates the bridge with the IPv4 gateway address, writes the
// IPv4-only CNI config and adds the guard rules. The bridge plugin runs with
// isGateway false because with true it turns on the host's forwarding
// (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding); the node puts the
// gateway addresses on the bridge itself.
func (n *Node) setupNetwork() error {
	for _, args := range [][]string{
		{"link", "add", n.Bridge, "type", "bridge"},
		{"link", "set", n.Bridge, "up"},
		{"addr", "add", gatewayOf(IPv4Range) + "/24", "dev", n.Bridge},
	} {
		if _, err := run(context.Background(), "ip", args...); err != nil {
			return err
		}
	}
	// Nothing forwarded from the bridge to another interface, or to it from
	// another: pods reach each other and the host, never beyond.
	for _, tool := range iptablesTools {
		for _, rule := range [][]string{
			{"-i", n.Bridge, "!", "-o", n.Bridge},
			{"!", "-i", n.Bridge, "-o", n.Bridge},
		} {
			args := append([]string{"-w", "-t", "filter", "-I", "FORWARD", "1"}, rule...)
			args = append(args, "-m", "comment", "--comment", n.rec.Comment, "-j", "DROP")
			if _, err := run(context.Background(), tool, args...); err != nil {
				return err
			}
		}
	}
	return n.writeCNIConfig()
}

// AddIPv6Range adds the IPv6 pod range to the bridge network, as a cluster's
// conversion to dual-stack does: the bridge gets the IPv6 gateway address and
// the CNI config a second host-local range. Containers created before keep
// their one family; new ones get both.
func (n *Node) AddIPv6Range() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.ranges {
		if r == IPv6Range {
			return nil
		}
	}
	if _, err := run(context.Background(), "ip", "addr", "add", gatewayOf(IPv6Range)+"/64", "dev", n.Bridge, "nodad"); err != nil {
		return err
	}
	n.ranges = append(n.ranges, IPv6Range)
	return n.writeCNIConfig()
}

// Ranges returns the pod ranges in the CNI config, IPv4 first.
func (n *Node) Ranges() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.ranges...)
}

// gatewayOf returns the first address of a range (10.244.0.1, fd10:244::1).
func gatewayOf(cidr string) string {
	return netip.MustParsePrefix(cidr).Masked().Addr().Next().String()
}

const cniVersion = "1.0.0"

// bridgePlugin is the one plugin of the node's network.
func (n *Node) bridgePlugin() map[string]any {
	var ranges [][]map[string]string
	for _, r := range n.ranges {
		ranges = append(ranges, []map[string]string{{"subnet": r, "gateway": gatewayOf(r)}})
	}
	ipam := map[string]any{
		"type":    "host-local",
		"dataDir": filepath.Join(n.Dir, "cni-ipam"),
		"ranges":  ranges,
	}
	if routes := n.serviceRoutes(); len(routes) > 0 {
		ipam["routes"] = routes
	}
	return map[string]any{
		"type":        "bridge",
		"bridge":      n.Bridge,
		"isGateway":   false,
		"ipMasq":      false,
		"hairpinMode": true,
		"ipam":        ipam,
	}
}

// writeCNIConfig writes the conflist (what containerd's CRI plugin reads from
// CNIConfDir) for the current ranges.
func (n *Node) writeCNIConfig() error {
	b, err := json.MarshalIndent(map[string]any{
		"cniVersion": cniVersion,
		"name":       n.Bridge, // kds-<ID>: also what libcni names its cache files after
		"plugins":    []any{n.bridgePlugin()},
	}, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(n.CNIConfDir, "10-kds.conflist")
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// cni runs one CNI plugin binary the way a runtime does.
func cni(ctx context.Context, command, containerID, netns, ifname string, conf map[string]any) ([]byte, error) {
	b, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	plugin := filepath.Join(CNIBinDir, conf["type"].(string))
	cmd := exec.CommandContext(ctx, plugin)
	cmd.Env = append(os.Environ(),
		"CNI_COMMAND="+command, "CNI_CONTAINERID="+containerID, "CNI_NETNS="+netns,
		"CNI_IFNAME="+ifname, "CNI_PATH="+CNIBinDir)
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("CNI %s %s: %v: %s %s", conf["type"], command, err, bytes.TrimSpace(out), bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// ---- containerd

func (n *Node) containerdConfig() string {
	d := n.Dir
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
temp = %[3]q
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %[4]q

[ttrpc]
  address = %[5]q

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[cgroup]
  path = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %[6]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[7]q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  systemd_cgroup = false
  # This machine has no CAP_SYS_RESOURCE, so no process may lower an
  # oom_score_adj; the CRI would set -998 on a sandbox and runc fail.
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[8]q
    conf_dir = %[9]q
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = %[10]q
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[11]q
`,
		filepath.Join(d, "root"), filepath.Join(d, "state"), filepath.Join(d, "tmp"),
		n.Socket, n.Socket+".ttrpc", filepath.Join(d, "opt"),
		PauseImageName, CNIBinDir, n.CNIConfDir, n.Snapshotter, filepath.Join(d, "runc"))
}

func (n *Node) startContainerd(ctx context.Context) error {
	cfgPath := filepath.Join(n.Dir, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(n.containerdConfig()), 0o600); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(n.Dir, "tmp"), 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(n.Dir, "containerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command("containerd", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// containerd dies with this process; its shims and containers do not
	// (by design), which is why cleanup finds them by what they reference.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	n.containerd = cmd
	n.exited = make(chan struct{})
	go func() { cmd.Wait(); close(n.exited) }()
	n.mu.Lock()
	err = n.update(func(r *record) { r.Containerd = cmd.Process.Pid })
	n.mu.Unlock()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-n.exited:
			return fmt.Errorf("containerd exited: %s", tail(logPath, 20))
		default:
		}
		if _, err := n.Ctr(ctx, "version"); err == nil {
			return n.checkPlugins(ctx)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("not serving after 30s: %v; log: %s", err, tail(logPath, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkPlugins fails unless the plugins the node relies on loaded: the
// tasks service (ctr run), the CRI (a kubelet's runtime) and the snapshotter.
func (n *Node) checkPlugins(ctx context.Context) error {
	out, err := n.Ctr(ctx, "plugins", "ls")
	if err != nil {
		return err
	}
	want := map[string]bool{"tasks": false, "cri": false, n.Snapshotter: false, "task": false}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		// TYPE ID PLATFORMS STATUS
		if len(f) >= 3 && f[len(f)-1] == "ok" {
			if _, ok := want[f[1]]; ok {
				want[f[1]] = true
			}
		}
	}
	var missing []string
	for id, ok := range want {
		if !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("plugins not loaded: %s; log: %s", strings.Join(missing, ", "), tail(filepath.Join(n.Dir, "containerd.log"), 20))
	}
	return nil
}

// Ctr runs containerd's ctr against the node (its socket, namespace k8s.io).
func (n *Node) Ctr(ctx context.Context, args ...string) (string, error) {
	out, err := run(ctx, "ctr", append([]string{"-a", n.Socket, "-n", Namespace}, args...)...)
	return string(out), err
}

// ContainerdLog returns the last lines of containerd's log.
func (n *Node) ContainerdLog(lines int) string {
	return tail(filepath.Join(n.Dir, "containerd.log"), lines)
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// ---- images

func (n *Node) importImages(ctx context.Context) error {
	pauseBin := filepath.Join(n.Dir, "pause")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", pauseBin, PausePackage)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v: %s", PausePackage, err, out)
	}
	applets, err := run(ctx, BusyboxPath, "--list")
	if err != nil {
		return err
	}
	pause, err := PauseImage(PauseImageName, pauseBin)
	if err != nil {
		return err
	}
	busybox, err := BusyboxImage(BusyboxImageName, BusyboxPath, strings.Fields(string(applets)))
	if err != nil {
		return err
	}
	for _, img := range []*Image{pause, busybox} {
		if err := n.Import(ctx, img); err != nil {
			return err
		}
	}
	return nil
}

// Import writes the image as an OCI archive and imports it with ctr.
func (n *Node) Import(ctx context.Context, img *Image) error {
	f, err := os.CreateTemp(n.Dir, "image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := img.WriteArchive(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, err := n.Ctr(ctx, "images", "import", "--snapshotter", n.Snapshotter, f.Name()); err != nil {
		return err
	}
	out, err := n.Ctr(ctx, "images", "ls", "-q")
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(out) {
		if name == img.Name {
			return nil
		}
	}
	return fmt.Errorf("imported %s but containerd lists only %q", img.Name, strings.Fields(out))
}

// ---- containers

// Container is a container running in its own network namespace on the
// node's bridge network.
type Container struct {
	Name  string
	ID    string
	Netns string         // the netns bind-mount file
	IPs   []netip.Prefix // what the CNI plugin assigned on eth0
	node  *Node
}

// Run starts a container from image in a new network namespace wired by the
// CNI plugins (loopback, then the bridge with the node's current ranges), as
// a runtime does for a pod sandbox, with args as its command.
func (n *Node) Run(ctx context.Context, name, image string, args ...string) (*Container, error) {
	n.mu.Lock()
	if n.down {
		n.mu.Unlock()
		return nil, errors.New("node is down")
	}
	c := &Container{Name: name, ID: "kds-" + n.ID + "-" + name, Netns: filepath.Join(n.Dir, "netns", name), node: n}
	err := n.update(func(r *record) {
		r.Netns = append(r.Netns, c.Netns)
		r.Container = append(r.Container, c.ID)
	})
	plugin := n.bridgePlugin()
	n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.Netns, nil, 0o600); err != nil {
		return nil, err
	}
	if _, err := run(ctx, "unshare", "--net="+c.Netns, "true"); err != nil {
		return nil, err
	}
	if _, err := cni(ctx, "ADD", c.ID, c.Netns, "lo", map[string]any{"cniVersion": cniVersion, "name": "lo", "type": "loopback"}); err != nil {
		return nil, err
	}
	plugin["cniVersion"], plugin["name"] = cniVersion, n.Bridge
	out, err := cni(ctx, "ADD", c.ID, c.Netns, "eth0", plugin)
	if err != nil {
		return nil, err
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("CNI result %s: %w", out, err)
	}
	for _, ip := range res.IPs {
		p, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			return nil, fmt.Errorf("CNI result %s: %w", out, err)
		}
		c.IPs = append(c.IPs, p)
	}
	runArgs := []string{"run", "--detach", "--null-io",
		"--snapshotter", n.Snapshotter,
		"--runc-root", filepath.Join(n.Dir, "runc"),
		"--cgroup", n.CgroupRoot + "/" + c.ID,
		"--with-ns", "network:" + c.Netns,
		"--fifo-dir", filepath.Join(n.Dir, "fifo"),
		image, c.ID}
	if _, err := n.Ctr(ctx, append(runArgs, args...)...); err != nil {
		return nil, err
	}
	return c, nil
}

// Addr returns the container's address of one family (4 or 6).
func (c *Container) Addr(family int) (netip.Addr, bool) {
	for _, p := range c.IPs {
		if (family == 4) == p.Addr().Is4() {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// Exec runs a command in the running container and returns its stdout.
func (c *Container) Exec(ctx context.Context, args ...string) (string, error) {
	n := c.node
	n.mu.Lock()
	n.execSeq++
	execID := fmt.Sprintf("exec-%d", n.execSeq)
	n.mu.Unlock()
	return n.Ctr(ctx, append([]string{"task", "exec", "--exec-id", execID, "--fifo-dir", filepath.Join(n.Dir, "fifo"), c.ID}, args...)...)
}

// Remove stops and deletes the container, releases its addresses (CNI DEL)
// and its network namespace.
func (c *Container) Remove(ctx context.Context) error {
	n := c.node
	n.Ctr(ctx, "task", "kill", "--signal", "SIGKILL", c.ID)
	var err error
	for i := 0; i < 50; i++ {
		if _, err = n.Ctr(ctx, "task", "delete", "--force", c.ID); err == nil || strings.Contains(err.Error(), "not found") {
			err = nil
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	if _, err := n.Ctr(ctx, "containers", "delete", c.ID); err != nil {
		return err
	}
	n.mu.Lock()
	plugin := n.bridgePlugin()
	n.mu.Unlock()
	plugin["cniVersion"], plugin["name"] = cniVersion, n.Bridge
	if _, err := cni(ctx, "DEL", c.ID, c.Netns, "eth0", plugin); err != nil {
		return err
	}
	if err := syscall.Unmount(c.Netns, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", c.Netns, err)
	}
	return os.Remove(c.Netns)
}
