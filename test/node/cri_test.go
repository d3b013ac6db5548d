package node

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The CRI is what a kubelet talks to: these tests drive containerd's CRI
// plugin with the node's config (local pause image, the node's CNI config
// and cgroup root) the way a kubelet does, without a kubelet.

type criClient struct {
	rt cri.RuntimeServiceClient
}

func dialCRI(socket string) (*criClient, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &criClient{rt: cri.NewRuntimeServiceClient(conn)}, nil
}

type criPod struct {
	id     string
	config *cri.PodSandboxConfig
	ips    []netip.Addr // status.network: ip, then additional_ips
}

// runPod runs a pod sandbox (the pause container in a new network namespace
// wired by the CNI config) under the node's cgroup root.
func (c *criClient) runPod(ctx context.Context, n *Node, name string) (*criPod, error) {
	logDir := filepath.Join(n.Dir, "pods", name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	cfg := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		Hostname:     name,
		LogDirectory: logDir,
		Linux:        &cri.LinuxPodSandboxConfig{CgroupParent: n.CgroupRoot + "/" + name},
	}
	r, err := c.rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return nil, fmt.Errorf("RunPodSandbox: %w", err)
	}
	st, err := c.rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: r.PodSandboxId})
	if err != nil {
		return nil, fmt.Errorf("PodSandboxStatus: %w", err)
	}
	if st.Status.State != cri.PodSandboxState_SANDBOX_READY {
		return nil, fmt.Errorf("sandbox %s is %v", r.PodSandboxId, st.Status.State)
	}
	pod := &criPod{id: r.PodSandboxId, config: cfg}
	ips := []string{st.Status.GetNetwork().GetIp()}
	for _, a := range st.Status.GetNetwork().GetAdditionalIps() {
		ips = append(ips, a.GetIp())
	}
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("sandbox %s address %q: %w", r.PodSandboxId, s, err)
		}
		pod.ips = append(pod.ips, a)
	}
	return pod, nil
}

// runContainer creates and starts a container from the image in the pod.
func (c *criClient) runContainer(ctx context.Context, pod *criPod, name, image string, cmd ...string) (string, error) {
	r, err := c.rt.CreateContainer(ctx, &cri.CreateContainerRequest{
		PodSandboxId: pod.id,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: name},
			Image:    &cri.ImageSpec{Image: image},
			Command:  cmd,
			LogPath:  name + ".log",
			Linux:    &cri.LinuxContainerConfig{},
		},
		SandboxConfig: pod.config,
	})
	if err != nil {
		return "", fmt.Errorf("CreateContainer: %w", err)
	}
	if _, err := c.rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: r.ContainerId}); err != nil {
		return "", fmt.Errorf("StartContainer: %w", err)
	}
	return r.ContainerId, nil
}

func (c *criClient) exec(ctx context.Context, id string, cmd ...string) (string, error) {
	r, err := c.rt.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil {
		return "", err
	}
	if r.ExitCode != 0 {
		return string(r.Stdout), fmt.Errorf("%v exited %d: %s", cmd, r.ExitCode, r.Stderr)
	}
	return string(r.Stdout), nil
}

func TestNodeCRIPodGetsBothFamilies(t *testing.T) {
	requireNode(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := upNode(t, ctx)
	if err := n.AddIPv6Range(); err != nil {
		t.Fatal(err)
	}
	c, err := dialCRI(n.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.rt.Version(ctx, &cri.VersionRequest{}); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("CRI: %s %s, API %s", v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)
	}
	st, err := c.rt.Status(ctx, &cri.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range st.Status.Conditions {
		if !cond.Status {
			t.Fatalf("CRI condition %s is false: %s %s", cond.Type, cond.Reason, cond.Message)
		}
	}

	t0 := time.Now()
	pod, err := c.runPod(ctx, n, "pod1")
	if err != nil {
		t.Fatalf("%v\ncontainerd log:\n%s", err, n.ContainerdLog(20))
	}
	t.Logf("pod sandbox %.12s ready in %s with %v", pod.id, time.Since(t0).Round(time.Millisecond), pod.ips)
	v4, v6 := netip.MustParsePrefix(IPv4Range), netip.MustParsePrefix(IPv6Range)
	if len(pod.ips) != 2 || !v4.Contains(pod.ips[0]) || !v6.Contains(pod.ips[1]) {
		t.Fatalf("pod got %v, want one address in %s, then one in %s", pod.ips, v4, v6)
	}
	// The pod's network namespace is under containerd's state dir, not /run/netns.
	if exists("/run/netns") {
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "cni-") {
				t.Errorf("a CRI netns in /run/netns: %s", e.Name())
			}
		}
	}

	t0 = time.Now()
	id, err := c.runContainer(ctx, pod, "sleep", BusyboxImageName, "sleep", "3600")
	if err != nil {
		t.Fatalf("%v\ncontainerd log:\n%s", err, n.ContainerdLog(20))
	}
	t.Logf("container %.12s started in the pod in %s", id, time.Since(t0).Round(time.Millisecond))
	out, err := c.exec(ctx, id, "ip", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range pod.ips {
		if !strings.Contains(out, " "+a.String()+"/") {
			t.Errorf("the container does not see the pod's %s on eth0: %s", a, out)
		}
	}
	// A pod and a ctr container on the same bridge reach each other per family.
	other, err := n.Run(ctx, "c1", BusyboxImageName, "sleep", "3600")
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range []int{4, 6} {
		to, _ := other.Addr(fam)
		flag := fmt.Sprintf("-%d", fam)
		var err error
		for i := 0; i < 5; i++ {
			if out, err = c.exec(ctx, id, "ping", flag, "-c", "1", "-W", "1", to.String()); err == nil {
				break
			}
		}
		if err != nil || !strings.Contains(out, "1 packets received") {
			t.Errorf("pod -> c1 %s: %v %s", to, err, out)
		} else {
			t.Logf("pod -> c1 %s: reply", to)
		}
	}
	// Every socket the node's processes listen on in the host's network
	// namespace is on loopback: here the CRI's streaming server (exec,
	// attach, port-forward), which containerd starts with its CRI plugin.
	pids, err := n.rec.processes()
	if err != nil {
		t.Fatal(err)
	}
	ls := listeners(t, pids)
	t.Logf("listening: %v", ls)
	if len(ls) == 0 {
		t.Error("no listener found: the CRI streaming server should be one")
	}
	for _, l := range ls {
		_, addr, _ := strings.Cut(l, " ")
		if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("the node listens on %s, not on loopback", l)
		}
	}
	t.Logf("CRI test body %s", time.Since(start).Round(time.Millisecond))
}
