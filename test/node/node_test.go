package node

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestMain(m *testing.M) {
	start := time.Now()
	code := m.Run()
	if binDirPath != "" {
		os.RemoveAll(binDirPath)
	}
	if os.Getenv(helperEnv) == "" {
		fmt.Printf("node tests: %s in all\n", time.Since(start).Round(time.Millisecond))
	}
	os.Exit(code)
}

func requireNode(t *testing.T) {
	t.Helper()
	if m := Missing(); len(m) > 0 {
		t.Skipf("a real node needs %s: run `make node-deps` as root", strings.Join(m, ", "))
	}
}

// upNode brings a node up for the test and tears it down after it, checking
// that nothing of it is left on the machine.
func upNode(t *testing.T, ctx context.Context) *Node {
	t.Helper()
	// KDS_NODE_SNAPSHOTTER=native runs the tests on containerd's other snapshotter.
	n, err := Up(ctx, Config{Logf: t.Logf, Snapshotter: os.Getenv("KDS_NODE_SNAPSHOTTER")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rec := *n.rec
		tasks := rec.tasks() // read from containerd's state before it goes
		if err := n.Down(); err != nil {
			t.Error(err)
		}
		assertGone(t, &rec, tasks)
	})
	return n
}

// assertGone checks that nothing a run created is left: processes, mounts,
// bridge, iptables rules, cgroups, shim sockets, the temp dir, the record.
func assertGone(t *testing.T, r *record, tasks []task) {
	t.Helper()
	if len(tasks) == 0 {
		tasks = r.tasks()
	}
	if pids, err := r.processes(); err != nil || len(pids) > 0 {
		t.Errorf("processes of run %s left: %v %v", r.ID, pids, err)
	}
	if mps, err := mountsUnder(r.Dir); err != nil || len(mps) > 0 {
		t.Errorf("mounts of run %s left: %v %v", r.ID, mps, err)
	}
	if linkExists(r.Bridge) {
		t.Errorf("bridge %s left", r.Bridge)
	}
	if rules, err := taggedRules(r.Comment); err != nil || len(rules) > 0 {
		t.Errorf("iptables rules of run %s left: %v %v", r.ID, rules, err)
	}
	for _, root := range cgroupRoots() {
		if _, err := os.Stat(filepath.Join(root, r.Cgroup)); err == nil {
			t.Errorf("cgroup %s left", filepath.Join(root, r.Cgroup))
		}
	}
	for _, tk := range tasks {
		if p := shimSocketPath(filepath.Join(r.Dir, "containerd.sock"), tk.ns, tk.id); exists(p) {
			t.Errorf("shim socket %s (task %s) left", p, tk.id)
		}
	}
	if files := r.cniCacheFiles(tasks); len(files) > 0 {
		t.Errorf("CNI cache files left: %v", files)
	}
	if r.KubeChains {
		if left, err := KubeChainsPresent(); err != nil || len(left) > 0 {
			t.Errorf("the kubelet's iptables chains left: %v %v", left, err)
		}
	}
	for k, v := range r.Sysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err != nil || strings.TrimSpace(string(b)) != v {
			t.Errorf("kernel setting %s is %q, was %q before the kubelet (%v)", k, strings.TrimSpace(string(b)), v, err)
		}
	}
	if r.DevicePluginSocket != "" && exists(r.DevicePluginSocket) {
		t.Errorf("the kubelet's socket %s left", r.DevicePluginSocket)
	}
	for _, p := range []string{r.Dir, r.path()} {
		if exists(p) {
			t.Errorf("%s left", p)
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

var inetRE = regexp.MustCompile(`inet6? ([0-9a-f.:]+/[0-9]+) .*scope global`)

// addrsInside lists the global addresses on eth0 as the container sees them.
func addrsInside(t *testing.T, ctx context.Context, c *Container) []netip.Prefix {
	t.Helper()
	out, err := c.Exec(ctx, "ip", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	var got []netip.Prefix
	for _, m := range inetRE.FindAllStringSubmatch(out, -1) {
		got = append(got, netip.MustParsePrefix(m[1]))
	}
	return got
}

// ping sends one echo request from c to addr and reports whether a reply
// came, retrying for a few seconds (neighbour discovery on a new link).
func ping(ctx context.Context, c *Container, addr netip.Addr, tries int) error {
	fam := "-4"
	if addr.Is6() {
		fam = "-6"
	}
	var err error
	for i := 0; i < tries; i++ {
		var out string
		out, err = c.Exec(ctx, "ping", fam, "-c", "1", "-W", "1", addr.String())
		if err == nil && strings.Contains(out, "1 packets received") {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("no reply: %s", out)
		}
	}
	return err
}

func TestNodeContainersGetAnAddressPerRangeAndReachEachOther(t *testing.T) {
	requireNode(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := upNode(t, ctx)
	upTook := time.Since(start)

	v4 := netip.MustParsePrefix(IPv4Range)
	v6 := netip.MustParsePrefix(IPv6Range)

	// While the node is up, its guard rules are in place (4: two per family).
	if rules, err := taggedRules(n.rec.Comment); err != nil || len(rules) != 4 {
		t.Fatalf("guard rules: %v %v", rules, err)
	}

	// IPv4-only: the first container gets one 10.244.0.x address.
	t0 := time.Now()
	c1, err := n.Run(ctx, "c1", BusyboxImageName, "sleep", "3600")
	if err != nil {
		t.Fatalf("run c1: %v\ncontainerd log:\n%s", err, n.ContainerdLog(30))
	}
	t.Logf("c1 (IPv4-only network) started in %s: CNI gave %v", time.Since(t0).Round(time.Millisecond), c1.IPs)
	if len(c1.IPs) != 1 || !v4.Contains(c1.IPs[0].Addr()) {
		t.Fatalf("c1 got %v, want one address in %s", c1.IPs, v4)
	}
	if got := addrsInside(t, ctx, c1); len(got) != 1 || got[0] != c1.IPs[0] {
		t.Fatalf("inside c1 eth0 has %v, want %v", got, c1.IPs)
	}

	// The conversion: an IPv6 range is added; new containers get both.
	if err := n.AddIPv6Range(); err != nil {
		t.Fatal(err)
	}
	var cs []*Container
	for _, name := range []string{"c2", "c3"} {
		t0 := time.Now()
		c, err := n.Run(ctx, name, BusyboxImageName, "sleep", "3600")
		if err != nil {
			t.Fatalf("run %s: %v\ncontainerd log:\n%s", name, err, n.ContainerdLog(30))
		}
		t.Logf("%s (dual-stack network) started in %s: CNI gave %v", name, time.Since(t0).Round(time.Millisecond), c.IPs)
		a4, ok4 := c.Addr(4)
		a6, ok6 := c.Addr(6)
		if len(c.IPs) != 2 || !ok4 || !ok6 || !v4.Contains(a4) || !v6.Contains(a6) {
			t.Fatalf("%s got %v, want one address in %s and one in %s", name, c.IPs, v4, v6)
		}
		inside := addrsInside(t, ctx, c)
		if fmt.Sprint(inside) != fmt.Sprint(c.IPs) {
			t.Fatalf("inside %s eth0 has %v, want %v", name, inside, c.IPs)
		}
		cs = append(cs, c)
	}
	c2, c3 := cs[0], cs[1]

	// Each family, both ways, between the two dual-stack containers.
	t0 = time.Now()
	for _, pair := range [][2]*Container{{c2, c3}, {c3, c2}} {
		for _, fam := range []int{4, 6} {
			to, _ := pair[1].Addr(fam)
			if err := ping(ctx, pair[0], to, 5); err != nil {
				t.Errorf("%s -> %s (%s) IPv%d: %v", pair[0].Name, pair[1].Name, to, fam, err)
			} else {
				t.Logf("%s -> %s %s: reply", pair[0].Name, pair[1].Name, to)
			}
		}
	}
	// The container from before the conversion still reaches IPv4, and keeps
	// its one family: it has no IPv6 address and no route to the new range.
	c2v4, _ := c2.Addr(4)
	c2v6, _ := c2.Addr(6)
	if err := ping(ctx, c1, c2v4, 5); err != nil {
		t.Errorf("c1 -> c2 %s: %v", c2v4, err)
	}
	if got := addrsInside(t, ctx, c1); len(got) != 1 {
		t.Errorf("c1 after the conversion has %v, want its one IPv4 address", got)
	}
	if err := ping(ctx, c1, c2v6, 1); err == nil {
		t.Errorf("c1 (created before the IPv6 range) reached %s over IPv6", c2v6)
	}
	t.Logf("pings took %s", time.Since(t0).Round(time.Millisecond))

	// Removing a container releases its address and its network namespace.
	if err := c1.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(c1.Netns) {
		t.Errorf("netns %s still there after Remove", c1.Netns)
	}
	if exists(filepath.Join(n.Dir, "cni-ipam", n.Bridge, c1.IPs[0].Addr().String())) {
		t.Errorf("host-local still holds %s after Remove", c1.IPs[0].Addr())
	}
	t.Logf("node up in %s; test body %s", upTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

const helperEnv = "KDS_NODE_KILLED_RUN_HELPER"

// TestNodeKilledRunHelper is the run that TestNodeKilledRunIsCleanedByTheNext
// SIGKILLs: it brings a node up with a container running, says READY, waits.
func TestNodeKilledRunHelper(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process of TestNodeKilledRunIsCleanedByTheNext")
	}
	ctx := context.Background()
	// "kill": the parent SIGKILLs it; "term": it tears down on SIGTERM.
	n, err := Up(ctx, Config{NoSignalHandler: os.Getenv(helperEnv) == "kill", Snapshotter: os.Getenv("KDS_NODE_SNAPSHOTTER")})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	if err := n.AddIPv6Range(); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	c, err := n.Run(ctx, "c1", BusyboxImageName, "sleep", "3600")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	// And a pod sandbox through the CRI, as a kubelet would make it.
	cc, err := dialCRI(n.Socket)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	pod, err := cc.runPod(ctx, n, "pod1")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	// And a kubelet (standalone: there is no API server here) running a
	// static pod: its iptables chains, kernel settings and socket, and a pod
	// of its own, are left too when the run is killed.
	if bin := os.Getenv(kubeletEnv); bin != "" {
		k, err := n.StartKubelet(ctx, KubeletConfig{Binary: bin})
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		if err := runStaticPod(ctx, k, cc, "static1"); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
	}
	// And the host made ready for kube-proxy's pod: forwarding on (its
	// settings recorded first) and, when it was off, the rule that keeps
	// it to the bridge.
	if err := n.PrepareKubeProxy(ctx); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("READY %s %s pod %s\n", n.ID, c.IPs, pod.ips)
	select {}
}

// kubeletEnv passes the kubelet binary the parent built to the helper run.
const kubeletEnv = "KDS_NODE_KUBELET"

// kubeletBinary builds the kubelet once per test process (a link, when
// the e2e tests built it already).
func kubeletBinary(t *testing.T, ctx context.Context) string {
	t.Helper()
	t0 := time.Now()
	bin, err := Build(ctx, binDir(t), KubeletPackage, VersionLDFlags("v1.37.2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubelet built in %s", time.Since(t0).Round(time.Millisecond))
	return bin
}

var (
	binDirOnce sync.Once
	binDirPath string
	binDirErr  error
)

// binDir is a directory for built binaries that lives as long as the test
// process (removed by TestMain).
func binDir(t *testing.T) string {
	binDirOnce.Do(func() { binDirPath, binDirErr = os.MkdirTemp("", "kds-node-bin-") })
	if binDirErr != nil {
		t.Fatal(binDirErr)
	}
	return binDirPath
}

// runStaticPod writes a static pod manifest for the kubelet and waits until
// containerd's CRI runs its container.
func runStaticPod(ctx context.Context, k *Kubelet, cc *criClient, name string) error {
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %s
    imagePullPolicy: Never
    command: ["sleep", "3600"]
`, name, BusyboxImageName)
	if err := os.WriteFile(filepath.Join(k.ManifestDir, name+".yaml"), []byte(manifest), 0o644); err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if gone, log := k.Exited(); gone {
			return fmt.Errorf("the kubelet exited: %s", log)
		}
		r, err := cc.rt.ListContainers(ctx, &cri.ListContainersRequest{Filter: &cri.ContainerFilter{
			State:         &cri.ContainerStateValue{State: cri.ContainerState_CONTAINER_RUNNING},
			LabelSelector: map[string]string{"io.kubernetes.pod.name": name + "-" + k.NodeName},
		}})
		if err == nil && len(r.Containers) > 0 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("static pod %s not running after 90s; kubelet log:\n%s", name, k.LogTail(20))
}

// startHelper runs TestNodeKilledRunHelper in a child process (mode "kill"
// or "term") and returns once its node is up with a container running.
func startHelper(t *testing.T, ctx context.Context, mode, kubelet string) (*exec.Cmd, string) {
	t.Helper()
	start := time.Now()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNodeKilledRunHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, kubeletEnv+"="+kubelet)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "READY" {
			t.Logf("helper run: %s (after %s)", line, time.Since(start).Round(time.Millisecond))
			return cmd, f[1]
		}
		if strings.HasPrefix(line, "ERROR") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper run: %s", line)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("helper run ended without READY: %v", sc.Err())
	return nil, ""
}

// diedOf checks that the helper ended by the signal.
func diedOf(t *testing.T, cmd *exec.Cmd, sig syscall.Signal) {
	t.Helper()
	werr := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != sig {
		t.Fatalf("helper did not die of %v: %v", sig, werr)
	}
}

func readRecord(t *testing.T, id string) *record {
	t.Helper()
	rs, err := readRecords()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no record of run %s in %s", id, StateDir)
	return nil
}

func TestNodeKilledRunIsCleanedByTheNext(t *testing.T) {
	requireNode(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cmd, id := startHelper(t, ctx, "kill", kubeletBinary(t, ctx))
	// Killed in the middle: no deferred cleanup, no signal handler.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	diedOf(t, cmd, syscall.SIGKILL)

	// What it left: the record, the bridge, the rules, the cgroup, mounts, the
	// shim's socket, and live processes (containerd dies with its parent; the
	// shim and the container do not).
	r := readRecord(t, id)
	time.Sleep(200 * time.Millisecond) // containerd's death signal
	pids, _ := r.processes()
	mps, _ := mountsUnder(r.Dir)
	rules, _ := taggedRules(r.Comment)
	tasks := r.tasks()
	var shims []string
	for _, tk := range tasks {
		if p := shimSocketPath(filepath.Join(r.Dir, "containerd.sock"), tk.ns, tk.id); exists(p) {
			shims = append(shims, p)
		}
	}
	cniCache := r.cniCacheFiles(tasks)
	chains, _ := KubeChainsPresent()
	var changed []string
	for k, v := range r.Sysctls {
		if b, _ := os.ReadFile("/proc/sys/" + k); strings.TrimSpace(string(b)) != v {
			changed = append(changed, k)
		}
	}
	t.Logf("the killed run %s left: processes %v, mounts %v, bridge %s present=%v, %d iptables rules, %d tasks, shim sockets %v, CNI cache %v, the kubelet's chains %v, kernel settings changed %v, its socket present=%v",
		id, pids, mps, r.Bridge, linkExists(r.Bridge), len(rules), len(tasks), shims, cniCache, chains, changed, exists(r.DevicePluginSocket))
	// A ctr container, a CRI pod sandbox and the kubelet's static pod (its
	// sandbox and container): four tasks, three shims (a pod's containers
	// share its sandbox's), and the CRI's CNI cache (each pod's eth0 on
	// kds-<id>, its lo on cni-loopback); the kubelet's chains, the kernel
	// settings it changed, and its socket.
	if len(pids) == 0 || len(mps) == 0 || !linkExists(r.Bridge) || len(rules) == 0 || len(tasks) != 4 || len(shims) != 3 || len(cniCache) != 4 ||
		len(chains) == 0 || len(changed) == 0 || !exists(r.DevicePluginSocket) {
		t.Fatalf("expected a killed run to leave processes, mounts, its bridge, rules, four tasks, three shim sockets, four CNI cache files, the kubelet's chains, changed kernel settings and its socket; the test proves nothing otherwise")
	}
	// PrepareKubeProxy's part: the forwarding settings recorded, on now.
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		b, _ := os.ReadFile("/proc/sys/" + k)
		if _, ok := r.Sysctls[k]; !ok || strings.TrimSpace(string(b)) != "1" {
			t.Fatalf("the killed run's record has %s=%q, and it is %q now; want it recorded and on", k, r.Sysctls[k], strings.TrimSpace(string(b)))
		}
	}

	// The next run cleans all of it and comes up.
	t0 := time.Now()
	n := upNode(t, ctx)
	t.Logf("the next run came up, cleaning first, in %s", time.Since(t0).Round(time.Millisecond))
	assertGone(t, r, tasks)
	c, err := n.Run(ctx, "c1", BusyboxImageName, "sleep", "3600")
	if err != nil {
		t.Fatalf("run after cleaning: %v", err)
	}
	if a, ok := c.Addr(4); !ok || !netip.MustParsePrefix(IPv4Range).Contains(a) {
		t.Fatalf("after cleaning, c1 got %v", c.IPs)
	}
	t.Logf("killed-run test body %s", time.Since(start).Round(time.Millisecond))
}

func TestNodeTearsDownOnSIGTERM(t *testing.T) {
	requireNode(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, id := startHelper(t, ctx, "term", kubeletBinary(t, ctx))
	r := readRecord(t, id)
	tasks := r.tasks()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	diedOf(t, cmd, syscall.SIGTERM)
	// Its own handler removed everything; no later run needed.
	assertGone(t, r, tasks)
	t.Logf("SIGTERM test body %s", time.Since(start).Round(time.Millisecond))
}

// writeRecord puts a record in StateDir as a dead run would have left it.
func writeRecord(t *testing.T, r *record) {
	t.Helper()
	lock, err := lockState(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	b, _ := json.Marshal(r)
	if err := os.WriteFile(r.path(), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(r.path()) })
}

func wantRefusal(t *testing.T, r *record, words ...string) {
	t.Helper()
	n, err := Up(context.Background(), Config{Logf: t.Logf, NoImages: true})
	if err == nil {
		n.Down()
		t.Fatal("Up started with a leftover it could not remove")
	}
	msg := err.Error()
	t.Logf("Up: %s", msg)
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "refusing to start") {
		t.Errorf("want one line that refuses, got %q", msg)
	}
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("want the refusal to name %q, got %q", w, msg)
		}
	}
	if !exists(r.path()) {
		t.Errorf("the record of what could not be removed is gone")
	}
}

// A leftover that cannot be removed makes Up refuse with one line naming it,
// and the record stays for the next try. Here: the run's dir holds an
// immutable file (chattr +i), which not even root can delete.
func TestNodeRefusesWhenLeftoversCannotBeRemoved(t *testing.T) {
	requireNode(t)
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("needs chattr (e2fsprogs)")
	}
	const id = "0000dead"
	dir := filepath.Join(os.TempDir(), "kds-node-"+id)
	stuck := filepath.Join(dir, "stuck")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stuck, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chattr", "+i", stuck).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Skipf("chattr +i on %s: %v %s (the file system does not do immutable files)", os.TempDir(), err, out)
	}
	t.Cleanup(func() {
		exec.Command("chattr", "-i", stuck).Run()
		os.RemoveAll(dir)
	})
	r := &record{ID: id, OwnerPID: 999999, Started: time.Now().UTC(), Dir: dir, Bridge: "kds-" + id, Cgroup: "/kds-" + id, Comment: "kds-" + id}
	writeRecord(t, r)
	wantRefusal(t, r, id, "dir "+dir, "operation not permitted")
}

// A record that names something the node would never have created (an
// interface not called kds-<id>, say) is not acted on: Up refuses.
func TestNodeRefusesARecordNamingForeignThings(t *testing.T) {
	requireNode(t)
	const id = "0000beef"
	r := &record{ID: id, OwnerPID: 999999, Started: time.Now().UTC(), Dir: filepath.Join(os.TempDir(), "kds-node-"+id), Bridge: "eth0"}
	writeRecord(t, r)
	wantRefusal(t, r, r.path(), `bridge "eth0"`, "not touching")
}

// One node at a time on a machine: a second Up waits for the first to go
// down, and gives up with a clear error after its LockTimeout.
func TestNodeOneAtATime(t *testing.T) {
	requireNode(t)
	ctx := context.Background()
	n := upNode(t, ctx)
	start := time.Now()
	second, err := Up(ctx, Config{LockTimeout: 500 * time.Millisecond, NoImages: true})
	if err == nil {
		second.Down()
		t.Fatal("a second node came up while the first was up")
	}
	if !strings.Contains(err.Error(), "another test node holds") || time.Since(start) < 500*time.Millisecond {
		t.Fatalf("second Up after %s: %v", time.Since(start), err)
	}
	t.Logf("second Up: %v", err)
	// Once the first is down, the next one comes up.
	if err := n.Down(); err != nil {
		t.Fatal(err)
	}
	third, err := Up(ctx, Config{LockTimeout: 5 * time.Second, NoImages: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := *third.rec
	if err := third.Down(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, &rec, nil)
}

// listeners returns the TCP and UDP sockets the processes listen on (TCP in
// LISTEN state, UDP bound), as "proto addr:port".
func listeners(t *testing.T, pids []int) []string {
	t.Helper()
	inodes := map[string]bool{}
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && strings.HasPrefix(l, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
			}
		}
	}
	var out []string
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile("/proc/net/" + proto)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) < 10 || !inodes[f[9]] || (strings.HasPrefix(proto, "tcp") && f[3] != "0A") {
				continue
			}
			out = append(out, proto+" "+procNetAddr(t, f[1]))
		}
	}
	return out
}

// procNetAddr decodes /proc/net/tcp's "0100007F:1F90" (little-endian words).
func procNetAddr(t *testing.T, s string) string {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(hexPort, 16, 16)
	raw, err := hex.DecodeString(hexIP)
	if err != nil {
		t.Fatalf("bad address %q", s)
	}
	for i := 0; i+4 <= len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)).String()
}
