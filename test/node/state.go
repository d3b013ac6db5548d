package node

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StateDir holds one record per node that is up (or was, when its run was
// killed) and the lock that lets one node at a time exist on the machine. It
// is a fixed location so that a later run finds what a killed run left.
const StateDir = "/run/kubectl-dualstack-node"

// record lists everything a run creates on the machine outside its own
// process. Each entry is written before the thing it names is created, so a
// run killed at any point leaves a record that covers what it made.
type record struct {
	ID        string    `json:"id"`
	OwnerPID  int       `json:"ownerPID"`
	Started   time.Time `json:"started"`
	Dir       string    `json:"dir"`    // temp dir: containerd root/state/socket, runc root, CNI config and IPAM, netns files
	Bridge    string    `json:"bridge"` // the test bridge
	Cgroup    string    `json:"cgroup"` // cgroup parent of every container, e.g. /kds-1a2b3c4d (in each v1 hierarchy and the unified one)
	Comment   string    `json:"iptablesComment,omitempty"`
	Netns     []string  `json:"netns,omitempty"` // netns bind-mount files (inside Dir)
	Container []string  `json:"containers,omitempty"`
	// Containerd is the PID of the containerd child process, for the record
	// reader's information; cleanup finds processes by what they reference
	// (Dir, the cgroup, the netns), not by a PID that may have been reused.
	Containerd int `json:"containerdPID,omitempty"`
	Kubelet    int `json:"kubeletPID,omitempty"`
	KubeProxy  int `json:"kubeProxyPID,omitempty"`
	// Sysctls are the kernel settings a kubelet changes, as they were
	// before it started (restored by cleanup).
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// KubeChains is set before a kubelet (or kube-proxy) starts: they make
	// iptables chains named KUBE-* in the host's tables, which cleanup
	// removes with the rules that jump to them. A node starts these
	// components only when no KUBE-* chain exists (KubeChainsPresent).
	KubeChains bool `json:"kubeChains,omitempty"`
	// DevicePluginSocket is the kubelet's device plugin socket, at a fixed
	// path outside Dir.
	DevicePluginSocket string `json:"devicePluginSocket,omitempty"`
}

func (r *record) path() string { return filepath.Join(StateDir, r.ID+".json") }

// save writes the record atomically (write + rename).
func (r *record) save() error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.path() + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, r.path())
}

// lockState takes the machine-wide node lock (flock on StateDir/lock),
// waiting up to timeout. The kernel drops it when the holder dies, so a killed
// run never blocks a later one.
func lockState(timeout time.Duration) (*os.File, error) {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(StateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another test node holds %s for more than %s", f.Name(), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readRecords returns the records in StateDir (the caller holds the lock, so
// every one of them belongs to a run that is no longer alive, or to itself).
func readRecords() ([]*record, error) {
	matches, err := filepath.Glob(filepath.Join(StateDir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*record
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		r := &record{}
		if err := json.Unmarshal(b, r); err != nil || r.ID == "" || r.path() != m {
			return nil, fmt.Errorf("unreadable node record %s (remove it by hand after checking what it names): %v", m, err)
		}
		if err := r.valid(); err != nil {
			return nil, fmt.Errorf("node record %s %v: not touching what it names (check and remove it by hand)", m, err)
		}
		out = append(out, r)
	}
	return out, nil
}

var idRE = regexp.MustCompile(`^[0-9a-f]{8}$`)

// valid checks that everything a record names carries the run's ID, as Up
// names things, so that cleaning a damaged or foreign record can never
// remove anything else (a directory, an interface, a cgroup, rules).
func (r *record) valid() error {
	k := "kds-" + r.ID
	switch {
	case !idRE.MatchString(r.ID):
		return fmt.Errorf("has id %q, not 8 hex digits", r.ID)
	case !filepath.IsAbs(r.Dir) || filepath.Clean(r.Dir) != r.Dir || filepath.Base(r.Dir) != "kds-node-"+r.ID:
		return fmt.Errorf("names dir %q, not an absolute .../kds-node-%s", r.Dir, r.ID)
	case r.Bridge != "" && r.Bridge != k:
		return fmt.Errorf("names bridge %q, not %s", r.Bridge, k)
	case r.Cgroup != "" && r.Cgroup != "/"+k:
		return fmt.Errorf("names cgroup %q, not /%s", r.Cgroup, k)
	case r.Comment != "" && r.Comment != k:
		return fmt.Errorf("names iptables comment %q, not %s", r.Comment, k)
	}
	for _, ns := range r.Netns {
		if filepath.Dir(ns) != filepath.Join(r.Dir, "netns") {
			return fmt.Errorf("names netns %q outside %s/netns", ns, r.Dir)
		}
	}
	for _, c := range r.Container {
		if !strings.HasPrefix(c, k+"-") {
			return fmt.Errorf("names container %q, not %s-...", c, k)
		}
	}
	return nil
}

// cleanLeftovers removes what earlier, dead runs left. It returns one line
// naming what it could not remove.
func cleanLeftovers(logf func(string, ...any)) error {
	recs, err := readRecords()
	if err != nil {
		return err
	}
	for _, r := range recs {
		start := time.Now()
		if err := r.cleanup(); err != nil {
			return fmt.Errorf("leftovers of an earlier test node run (%s, pid %d, started %s) that could not be removed: %v",
				r.ID, r.OwnerPID, r.Started.Format(time.RFC3339), err)
		}
		logf("node: removed the leftovers of an earlier run %s (pid %d, started %s) in %s",
			r.ID, r.OwnerPID, r.Started.Format(time.RFC3339), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// cleanup removes everything the record names, in an order that works
// whatever state the run was left in, and the record itself last. It is the
// one teardown path: Down uses it too.
func (r *record) cleanup() error {
	var errs []string
	fail := func(what string, err error) { errs = append(errs, what+": "+err.Error()) }

	// 1. Processes: containerd, its shims and ctr (they name Dir), container
	// processes (they live in the run's cgroup), anything left in its netns.
	if err := r.killProcesses(10 * time.Second); err != nil {
		fail("processes", err)
	}
	// 1b. The kernel settings a kubelet changed, and the container log
	// links it makes in a fixed place.
	if len(r.Sysctls) > 0 {
		if err := restoreSysctls(r.Sysctls); err != nil {
			fail("kernel settings", err)
		}
	}
	if err := r.removeContainerLogLinks(); err != nil {
		fail("container log links", err)
	}
	// 2. Mounts under Dir: container rootfs (overlay), netns bind mounts.
	if err := unmountUnder(r.Dir); err != nil {
		fail("mounts", err)
	}
	// 3. The bridge (the veth pairs went with their network namespaces).
	if r.Bridge != "" {
		if err := deleteLink(r.Bridge); err != nil {
			fail("bridge "+r.Bridge, err)
		}
	}
	// 4. iptables rules tagged with the run's comment.
	if r.Comment != "" {
		if err := deleteTaggedRules(r.Comment); err != nil {
			fail("iptables rules "+r.Comment, err)
		}
	}
	// 4b. The chains Kubernetes components made, and the kubelet's socket
	// outside Dir.
	if r.KubeChains {
		if err := deleteKubeChains(); err != nil {
			fail("iptables KUBE-* chains", err)
		}
	}
	if r.DevicePluginSocket != "" {
		if err := os.Remove(r.DevicePluginSocket); err != nil && !errors.Is(err, os.ErrNotExist) {
			fail("device plugin socket", err)
		}
		removeIfEmpty(filepath.Dir(r.DevicePluginSocket), filepath.Dir(filepath.Dir(r.DevicePluginSocket)))
	}
	// 5. cgroups.
	if r.Cgroup != "" {
		if err := removeCgroups(r.Cgroup); err != nil {
			fail("cgroup "+r.Cgroup, err)
		}
	}
	// 6. What containerd and libcni keep outside Dir, for every task the run
	// had (ctr's, recorded, and the CRI's pod sandboxes and containers, found
	// in containerd's state): shim sockets, and CNI result caches.
	tasks := r.tasks()
	for _, t := range tasks {
		p := shimSocketPath(filepath.Join(r.Dir, "containerd.sock"), t.ns, t.id)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			fail("shim socket "+p, err)
		}
	}
	removeIfEmpty("/run/containerd/s", "/run/containerd")
	if err := r.removeCNICache(tasks); err != nil {
		fail("CNI cache", err)
	}
	// 7. The temp dir.
	if r.Dir != "" && len(errs) == 0 {
		if err := os.RemoveAll(r.Dir); err != nil {
			fail("dir "+r.Dir, err)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	if err := os.Remove(r.path()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

type task struct{ ns, id string }

// tasks lists the run's task IDs: the recorded containers and every task
// containerd has a bundle for in its state dir.
func (r *record) tasks() []task {
	seen := map[task]bool{}
	var out []task
	add := func(t task) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, id := range r.Container {
		add(task{Namespace, id})
	}
	if r.Dir != "" {
		bundles, _ := filepath.Glob(filepath.Join(r.Dir, "state", "io.containerd.runtime.v2.task", "*", "*"))
		for _, b := range bundles {
			add(task{filepath.Base(filepath.Dir(b)), filepath.Base(b)})
		}
	}
	return out
}

// CNICacheDir is where libcni (in containerd's CRI) caches each attachment's
// result, as <network>-<container ID>-<ifname>; containerd 1.6 has no setting
// to move it.
const CNICacheDir = "/var/lib/cni/results"

// cniCacheFiles lists the cache files of the run: its network is named after
// it (kds-<ID>), the CRI's loopback network is not, so those go by task ID.
func (r *record) cniCacheFiles(tasks []task) []string {
	var out []string
	if r.Bridge != "" {
		m, _ := filepath.Glob(filepath.Join(CNICacheDir, r.Bridge+"-*"))
		out = append(out, m...)
	}
	for _, t := range tasks {
		p := filepath.Join(CNICacheDir, "cni-loopback-"+t.id+"-lo")
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func (r *record) removeCNICache(tasks []task) error {
	for _, p := range r.cniCacheFiles(tasks) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	removeIfEmpty(CNICacheDir, filepath.Dir(CNICacheDir))
	return nil
}

func removeIfEmpty(dirs ...string) {
	for _, d := range dirs {
		os.Remove(d) // fails (and is meant to) when not empty
	}
}

// killProcesses SIGKILLs every process that belongs to the run, until none
// is left or the timeout passes.
func (r *record) killProcesses(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := r.processes()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still running after %s: pids %v", timeout, pids)
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *record) processes() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var nsInodes []uint64
	for _, ns := range r.Netns {
		var st syscall.Stat_t
		if syscall.Stat(ns, &st) == nil && isNsfs(ns) {
			nsInodes = append(nsInodes, st.Ino)
		}
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == 1 {
			continue
		}
		if r.ownsProcess(pid, nsInodes) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func (r *record) ownsProcess(pid int, nsInodes []uint64) bool {
	base := "/proc/" + strconv.Itoa(pid)
	if zombie(base) {
		// Dead already (it left its cgroups and namespaces); its new parent,
		// PID 1 here, reaps it in its own time.
		return false
	}
	if r.Dir != "" {
		if cmd, err := os.ReadFile(base + "/cmdline"); err == nil && bytes.Contains(cmd, []byte(r.Dir+"/")) {
			return true
		}
	}
	if r.Cgroup != "" {
		if cg, err := os.ReadFile(base + "/cgroup"); err == nil {
			for _, line := range strings.Split(string(cg), "\n") {
				// "4:memory:/kds-1a2b3c4d/kds-1a2b3c4d-c1"
				if i := strings.LastIndexByte(line, ':'); i >= 0 {
					p := line[i+1:]
					if p == r.Cgroup || strings.HasPrefix(p, r.Cgroup+"/") {
						return true
					}
				}
			}
		}
	}
	if len(nsInodes) > 0 {
		var st syscall.Stat_t
		if syscall.Stat(base+"/ns/net", &st) == nil {
			for _, ino := range nsInodes {
				if st.Ino == ino {
					return true
				}
			}
		}
	}
	return false
}

func zombie(procDir string) bool {
	b, err := os.ReadFile(procDir + "/stat")
	if err != nil {
		return true // gone
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// isNsfs reports whether path is a bind-mounted namespace file (and not the
// empty placeholder file left after an unmount).
func isNsfs(path string) bool {
	var fs syscall.Statfs_t
	if syscall.Statfs(path, &fs) != nil {
		return false
	}
	const nsfsMagic = 0x6e736673
	return fs.Type == nsfsMagic
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, sc.Err()
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unmountUnder(dir string) error {
	if dir == "" {
		return nil
	}
	for attempt := 0; ; attempt++ {
		mps, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		if attempt == 5 {
			return fmt.Errorf("still mounted: %s", strings.Join(mps, ", "))
		}
		for _, mp := range mps {
			if err := syscall.Unmount(mp, 0); err != nil {
				syscall.Unmount(mp, syscall.MNT_DETACH)
			}
		}
	}
}

// linkExists reports whether a network interface of that name exists.
func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func deleteLink(name string) error {
	if !linkExists(name) {
		return nil
	}
	if out, err := exec.Command("ip", "link", "delete", name).CombinedOutput(); err != nil && linkExists(name) {
		return fmt.Errorf("ip link delete %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// iptablesTools are the front ends whose rules a run tags; the Debian
// default is the nf_tables backend of both.
var iptablesTools = []string{"iptables", "ip6tables"}

// taggedRules lists, per tool and table, the -D commands that remove every
// rule carrying the comment.
func taggedRules(comment string) ([][]string, error) {
	var out [][]string
	err := eachRule(func(tool, table, line string) error {
		if !strings.HasPrefix(line, "-A ") || !hasComment(line, comment) {
			return nil
		}
		args, err := splitRule(line[3:])
		if err != nil {
			return err
		}
		out = append(out, append([]string{tool, "-w", "-t", table, "-D"}, args...))
		return nil
	})
	return out, err
}

// eachRule calls f with every line `-S` prints (chains and rules) of every
// table of both front ends on this machine.
func eachRule(f func(tool, table, line string) error) error {
	for _, tool := range iptablesTools {
		if _, err := exec.LookPath(tool); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			b, err := exec.Command(tool, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue // a table this kernel does not have
			}
			for _, line := range strings.Split(string(b), "\n") {
				if err := f(tool, table, line); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func hasComment(rule, comment string) bool {
	return strings.Contains(rule, "--comment "+comment+" ") || strings.HasSuffix(rule, "--comment "+comment) ||
		strings.Contains(rule, `--comment "`+comment+`"`)
}

// splitRule splits an iptables -S rule into arguments (it quotes with "").
func splitRule(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQuote, have = !inQuote, true
		case c == '\\' && inQuote && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == ' ' && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unbalanced quote in iptables rule %q", s)
	}
	if have {
		args = append(args, cur.String())
	}
	return args, nil
}

func deleteTaggedRules(comment string) error {
	rules, err := taggedRules(comment)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if out, err := exec.Command(r[0], r[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(r, " "), err, bytes.TrimSpace(out))
		}
	}
	if left, err := taggedRules(comment); err != nil || len(left) > 0 {
		return fmt.Errorf("%d rule(s) still there after deleting (%v)", len(left), err)
	}
	return nil
}

// kubeChainPrefix names the chains kubelet and kube-proxy make.
const kubeChainPrefix = "KUBE-"

// kubeChains lists, per front end and table, the KUBE-* chains and the
// rules (as -S prints them) that jump to one from a built-in chain.
func kubeChains() (chains map[[3]string]bool, jumps [][]string, err error) {
	chains = map[[3]string]bool{}
	err = eachRule(func(tool, table, line string) error {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "-N" && strings.HasPrefix(f[1], kubeChainPrefix):
			chains[[3]string{tool, table, f[1]}] = true
		case len(f) >= 2 && f[0] == "-A" && !strings.HasPrefix(f[1], kubeChainPrefix) && strings.Contains(line, " -j "+kubeChainPrefix):
			args, err := splitRule(line[3:])
			if err != nil {
				return err
			}
			jumps = append(jumps, append([]string{tool, "-w", "-t", table, "-D"}, args...))
		}
		return nil
	})
	return chains, jumps, err
}

// KubeChainsPresent names the KUBE-* chains on this machine (kubelet's or
// kube-proxy's): a node starts neither while any exists, since it could
// not tell them from its own when it cleans up.
func KubeChainsPresent() ([]string, error) {
	chains, _, err := kubeChains()
	var out []string
	for c := range chains {
		out = append(out, c[0]+" -t "+c[1]+" "+c[2])
	}
	sort.Strings(out)
	return out, err
}

// deleteKubeChains removes the rules that jump to KUBE-* chains from
// built-in ones, then flushes every KUBE-* chain, then deletes them.
func deleteKubeChains() error {
	chains, jumps, err := kubeChains()
	if err != nil {
		return err
	}
	var cmds [][]string
	cmds = append(cmds, jumps...)
	for c := range chains {
		cmds = append(cmds, []string{c[0], "-w", "-t", c[1], "-F", c[2]})
	}
	for c := range chains {
		cmds = append(cmds, []string{c[0], "-w", "-t", c[1], "-X", c[2]})
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, bytes.TrimSpace(out))
		}
	}
	if left, err := KubeChainsPresent(); err != nil || len(left) > 0 {
		return fmt.Errorf("still there after deleting: %v (%v)", left, err)
	}
	return nil
}

// cgroupRoots are the mounted cgroup hierarchies (cgroup v1 controllers,
// named hierarchies and the unified one).
func cgroupRoots() []string {
	var roots []string
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.Index(line, " - ")
		if i < 0 {
			continue
		}
		after := strings.Fields(line[i+3:])
		if len(after) == 0 || (after[0] != "cgroup" && after[0] != "cgroup2") {
			continue
		}
		fields := strings.Fields(line[:i])
		if len(fields) >= 5 {
			roots = append(roots, unescapeMountinfo(fields[4]))
		}
	}
	return roots
}

// removeCgroups removes the cgroup directory rel (and its children, deepest
// first) from every hierarchy; its processes must be gone already.
func removeCgroups(rel string) error {
	var errs []string
	for _, root := range cgroupRoots() {
		dir := filepath.Join(root, rel)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		var dirs []string
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			var err error
			for try := 0; try < 20; try++ {
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(50 * time.Millisecond) // a just-killed task may still be leaving it
			}
			if err != nil {
				errs = append(errs, d+": "+err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, ", "))
	}
	return nil
}

// shimSocketPath is where containerd 1.6 puts a task's shim socket: under
// /run/containerd/s whatever its state dir, named by a hash of containerd's
// address, the namespace and the task ID (runtime/v2/shim SocketAddress). A
// SIGKILLed shim leaves it behind.
func shimSocketPath(grpcAddress, ns, id string) string {
	d := sha256.Sum256([]byte(filepath.Join(grpcAddress, ns, id)))
	return fmt.Sprintf("/run/containerd/s/%x", d)
}

// ContainerLogsDir is where a kubelet links each container's log (a fixed
// path in the kubelet), named <pod>_<namespace>_<container>-<ID>.log.
const ContainerLogsDir = "/var/log/containers"

// removeContainerLogLinks removes the links in ContainerLogsDir that point
// into the run's Dir, and the directory when that leaves it empty.
func (r *record) removeContainerLogLinks() error {
	if r.Dir == "" {
		return nil
	}
	entries, err := os.ReadDir(ContainerLogsDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		p := filepath.Join(ContainerLogsDir, e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, r.Dir+"/") {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	removeIfEmpty(ContainerLogsDir)
	return nil
}
