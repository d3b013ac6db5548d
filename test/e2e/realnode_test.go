package e2e

// A real node under the in-process kube-apiserver (issue 19): containerd,
// runc and the bridge CNI from test/node, and a real kubelet built from the
// same Kubernetes release as the API server. Pods here are real containers
// with the addresses the CNI gave them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/version"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/node"
)

type realNode struct {
	api     *harness.APIServer
	node    *node.Node
	kubelet *node.Kubelet
}

// upRealNode starts an API server (IPv4-only Service range, kubelets
// reached at their InternalIP), a node and its kubelet, and waits for the
// Node to be Ready.
func upRealNode(t *testing.T, ctx context.Context) *realNode {
	t.Helper()
	return upRealNodeWith(t, ctx, "10.96.0.0/16")
}

// upRealNodeWith is upRealNode with the API server's Service ranges and
// the cluster DNS addresses the kubelet gives pods.
func upRealNodeWith(t *testing.T, ctx context.Context, serviceCIDRs string, clusterDNS ...string) *realNode {
	t.Helper()
	if m := node.Missing(); len(m) > 0 {
		t.Skipf("a real node needs %s: run `make node-deps` as root", strings.Join(m, ", "))
	}
	api, err := harness.StartAPIServer(t, harness.APIServerOptions{
		ServiceCIDRs: serviceCIDRs,
		ExtraFlags:   []string{"--kubelet-preferred-address-types=InternalIP"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	// The kubelet reports the release the API server is built from (the
	// Makefile's KUBE_LDFLAGS, read back from this test binary).
	bin, err := node.Build(ctx, binDir, node.KubeletPackage, node.VersionLDFlags(version.Get().GitVersion))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubelet built in %s", time.Since(t0).Round(time.Millisecond))
	kernelBefore := kernelSettings(t)
	n, err := node.Up(ctx, node.Config{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Down(); err != nil {
			t.Error(err)
		}
		// What the kubelet changed outside the node's dir is put back.
		if after := kernelSettings(t); after != kernelBefore {
			t.Errorf("kernel settings after the node: %s; before: %s", after, kernelBefore)
		}
		if left, err := node.KubeChainsPresent(); err != nil || len(left) > 0 {
			t.Errorf("iptables chains left: %v (%v)", left, err)
		}
		if _, err := os.Stat(node.DevicePluginSocket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the kubelet's device plugin socket is left: %v", err)
		}
	})
	t0 = time.Now()
	k, err := n.StartKubelet(ctx, node.KubeletConfig{Binary: bin, Kubeconfig: api.Kubeconfig, ClusterDNS: clusterDNS})
	if err != nil {
		t.Fatal(err)
	}
	rn := &realNode{api: api, node: n, kubelet: k}
	if err := harness.WaitNodeReady(ctx, api.Kube, k, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("node %s Ready %s after the kubelet started", k.NodeName, time.Since(t0).Round(time.Millisecond))
	return rn
}

// kernelSettings reads the settings a kubelet and kube-proxy change.
func kernelSettings(t *testing.T) string {
	t.Helper()
	var out []string
	for _, k := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/all/route_localnet"} {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k+"="+strings.TrimSpace(string(b)))
	}
	return strings.Join(out, " ")
}

// sleeper is a busybox pod bound to the node (there is no scheduler).
func (rn *realNode) sleeper(ns, name string) *corev1.Pod {
	no := false
	var grace int64 = 1
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:                      rn.kubelet.NodeName,
			AutomountServiceAccountToken:  &no,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "main", Image: node.BusyboxImageName, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}

// runPod creates the pod and waits until it runs, returning it.
func runPod(t *testing.T, ctx context.Context, kc kubernetes.Interface, rn *realNode, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if _, err := kc.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	err := harness.WaitFor(ctx, time.Minute, "pod "+pod.Name+" running", func(ctx context.Context) (bool, error) {
		p, err := kc.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = p
		return p.Status.Phase == corev1.PodRunning && len(p.Status.PodIPs) > 0, nil
	})
	if err != nil {
		t.Fatalf("%v: %+v\nkubelet log:\n%s", err, got.Status, rn.kubelet.LogTail(30))
	}
	return got
}

func podAddrs(p *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// TestRealNodeKubeletRunsPods: a real kubelet registers the node and runs
// pods through containerd. Before the node's IPv6 range exists a pod gets
// one IPv4 address from 10.244.0.0/24; after it, a pod created anew gets
// both families, and the pod created before keeps its one (the known
// real-world fact the workloads phase exists for).
func TestRealNodeKubeletRunsPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rn := upRealNode(t, ctx)
	kc := rn.api.Kube
	if err := harness.EnsureNamespace(ctx, kc, "apps", nil); err != nil {
		t.Fatal(err)
	}
	v4, v6 := netip.MustParsePrefix(node.IPv4Range), netip.MustParsePrefix(node.IPv6Range)

	before := runPod(t, ctx, kc, rn, rn.sleeper("apps", "before"))
	if a := podAddrs(before); len(a) != 1 || !v4.Contains(a[0]) {
		t.Fatalf("pod before the IPv6 range: podIPs %v, want one address in %s", before.Status.PodIPs, v4)
	}
	t.Logf("pod before: %v", before.Status.PodIPs)

	if err := rn.node.AddIPv6Range(); err != nil {
		t.Fatal(err)
	}
	after := runPod(t, ctx, kc, rn, rn.sleeper("apps", "after"))
	if a := podAddrs(after); len(a) != 2 || !v4.Contains(a[0]) || !v6.Contains(a[1]) {
		t.Fatalf("pod after the IPv6 range: podIPs %v, want one in %s and one in %s", after.Status.PodIPs, v4, v6)
	}
	t.Logf("pod after: %v", after.Status.PodIPs)
	again, err := kc.CoreV1().Pods("apps").Get(ctx, "before", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Status.PodIPs) != 1 {
		t.Fatalf("the pod created before the IPv6 range now has %v; a running pod keeps its addresses", again.Status.PodIPs)
	}
}

// startControllerManager runs the real kube-controller-manager with the
// controllers a workload needs.
func startControllerManager(t *testing.T, ctx context.Context, rn *realNode) *harness.ControllerManager {
	t.Helper()
	bin, err := node.Build(ctx, binDir, harness.ControllerManagerPackage, node.VersionLDFlags(version.Get().GitVersion))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := harness.StartControllerManager(t, rn.api, bin, t.TempDir(), "deployment", "replicaset", "endpointslice", "disruption")
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// TestRealNodeWorkloadsRecreatesRealPods: the workloads command on real
// pods. A Deployment's pods (made by the real ReplicaSet controller, run
// by the kubelet) start IPv4-only; the node gets its IPv6 range, as a
// conversion gives it; `workloads` evicts them through the budget the real
// disruption controller keeps, and the Deployment's new pods come back
// from the CNI with 10.244.0.x and fd10:244::x, listed so by the real
// EndpointSlice controller.
func TestRealNodeWorkloadsRecreatesRealPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rn := upRealNode(t, ctx)
	cm := startControllerManager(t, ctx, rn)
	kc := rn.api.Kube
	const ns = "apps"
	if err := harness.EnsureNamespace(ctx, kc, ns, nil); err != nil {
		t.Fatal(err)
	}
	replicas := int32(2)
	tmpl := rn.sleeper(ns, "web")
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels}, Spec: tmpl.Spec},
		},
	}
	if _, err := kc.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	if _, err := kc.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: dep.Spec.Selector},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v4, v6 := netip.MustParsePrefix(node.IPv4Range), netip.MustParsePrefix(node.IPv6Range)

	// Two running pods, IPv4 only, and the budget's status from the
	// disruption controller.
	before := waitPods(t, ctx, rn, cm, ns, "app=web", 2, 1)
	for _, p := range before {
		if a := podAddrs(p); !v4.Contains(a[0]) {
			t.Fatalf("pod %s: podIPs %v, want one in %s", p.Name, p.Status.PodIPs, v4)
		}
	}
	if err := harness.WaitFor(ctx, time.Minute, "the budget's status", func(ctx context.Context) (bool, error) {
		p, err := kc.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.CurrentHealthy == 2 && p.Status.DisruptionsAllowed == 1, err
	}); err != nil {
		t.Fatalf("%v\nkube-controller-manager log:\n%s", err, cm.LogTail(20))
	}
	wantSlice(t, ctx, kc, ns, "web", before)

	if err := rn.node.AddIPv6Range(); err != nil {
		t.Fatal(err)
	}
	r := plugin(t, rn.api.Kubeconfig, nil, "workloads", "--include-namespaces", ns, "--yes", "--timeout", "3m", "-o", "json")
	w := parseWorkloads(t, r)
	t.Logf("workloads: outcome %q, %s", w.Outcome, w.Message)
	if r.Code != 0 {
		t.Fatalf("workloads:\n%s\nkubelet log:\n%s", r, rn.kubelet.LogTail(20))
	}
	after := waitPods(t, ctx, rn, cm, ns, "app=web", 2, 2)
	old := map[types.UID]bool{}
	for _, p := range before {
		old[p.UID] = true
	}
	for _, p := range after {
		a := podAddrs(p)
		if old[p.UID] || len(a) != 2 || !v4.Contains(a[0]) || !v6.Contains(a[1]) {
			t.Fatalf("after workloads, pod %s (re-created: %v) has podIPs %v; want a new pod with one address in %s and one in %s",
				p.Name, !old[p.UID], p.Status.PodIPs, v4, v6)
		}
		t.Logf("re-created pod %s: %v", p.Name, p.Status.PodIPs)
	}
	wantSlice(t, ctx, kc, ns, "web", after)
}

// waitPods waits until the selector matches exactly n running pods with
// families addresses each, and returns them.
func waitPods(t *testing.T, ctx context.Context, rn *realNode, cm *harness.ControllerManager, ns, selector string, n, families int) []*corev1.Pod {
	t.Helper()
	var got []*corev1.Pod
	var last string
	err := harness.WaitFor(ctx, 2*time.Minute, fmt.Sprintf("%d running pods %s with %d address(es)", n, selector, families), func(ctx context.Context) (bool, error) {
		l, err := rn.api.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		got = got[:0]
		var states []string
		for i := range l.Items {
			p := &l.Items[i]
			states = append(states, fmt.Sprintf("%s %s %v deleting=%v", p.Name, p.Status.Phase, p.Status.PodIPs, p.DeletionTimestamp != nil))
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && len(p.Status.PodIPs) == families {
				got = append(got, p)
			}
		}
		last = strings.Join(states, "; ")
		return len(got) == n && len(l.Items) == n, nil
	})
	if err != nil {
		t.Fatalf("%v; pods: %s\nkube-controller-manager log:\n%s\nkubelet log:\n%s", err, last, cm.LogTail(15), rn.kubelet.LogTail(15))
	}
	return got
}

// wantSlice checks that the Service's EndpointSlices (the real controller's)
// list exactly the pods' addresses, per family.
func wantSlice(t *testing.T, ctx context.Context, kc kubernetes.Interface, ns, svc string, pods []*corev1.Pod) {
	t.Helper()
	want := map[string]bool{}
	for _, p := range pods {
		for _, ip := range p.Status.PodIPs {
			if netip.MustParseAddr(ip.IP).Is4() { // an IPv4-only Service: IPv4 slices
				want[ip.IP] = true
			}
		}
	}
	var have map[string]bool
	err := harness.WaitFor(ctx, time.Minute, "the EndpointSlices of "+svc, func(ctx context.Context) (bool, error) {
		l, err := kc.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + svc})
		if err != nil {
			return false, err
		}
		have = map[string]bool{}
		for _, s := range l.Items {
			for _, e := range s.Endpoints {
				for _, a := range e.Addresses {
					have[a] = true
				}
			}
		}
		return maps.Equal(have, want), nil
	})
	if err != nil {
		t.Fatalf("%v: have %v, want %v", err, have, want)
	}
}

// TestRealNodeServiceAndDNSPerFamily: a ClusterIP per family, routed by the
// real kube-proxy (iptables mode) to a real pod through the EndpointSlices
// of the real controller, asked from another pod with kubectl exec (the API
// server, the kubelet's server and containerd's streaming, all real); and
// the Service's name answered by CoreDNS per family (A and AAAA, the real
// ClusterIPs), over the cluster DNS Service's IPv4 and IPv6 addresses.
func TestRealNodeServiceAndDNSPerFamily(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dnsIPs := []string{"10.96.0.10", "fd11::a"}
	rn := upRealNodeWith(t, ctx, "10.96.0.0/16,fd11::/108", dnsIPs...)
	if err := rn.node.AddIPv6Range(); err != nil {
		t.Fatal(err)
	}
	if err := rn.node.SetServiceCIDRs("10.96.0.0/16", "fd11::/108"); err != nil {
		t.Fatal(err)
	}
	cm := startControllerManager(t, ctx, rn)
	bin, err := node.Build(ctx, binDir, node.KubeProxyPackage, node.VersionLDFlags(version.Get().GitVersion))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := rn.node.StartKubeProxy(ctx, node.KubeProxyConfig{Binary: bin, Kubeconfig: rn.api.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	kc := rn.api.Kube
	dnsBin, err := node.BuildCoreDNS(ctx, binDir)
	if err != nil {
		t.Fatal(err)
	}
	coredns, err := rn.node.StartCoreDNS(ctx, dnsBin, rn.api.Kubeconfig, "sandbox", "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	kubeDNS(t, ctx, kc, dnsIPs, coredns.Addrs)
	const ns = "apps"
	if err := harness.EnsureNamespace(ctx, kc, ns, nil); err != nil {
		t.Fatal(err)
	}
	server := rn.sleeper(ns, "web")
	server.Spec.Containers[0].Command = []string{"sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"}
	runPod(t, ctx, kc, rn, server)
	runPod(t, ctx, kc, rn, rn.sleeper(ns, "client"))
	policy := corev1.IPFamilyPolicyRequireDualStack
	svc, err := kc.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, IPFamilyPolicy: &policy,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.ClusterIPs) != 2 {
		t.Fatalf("service web got ClusterIPs %v", svc.Spec.ClusterIPs)
	}
	// busybox's nc, not its wget: the static wget crashes (SIGSEGV) in a root
	// with nothing but busybox, where nc speaks HTTP/1.0 well enough.
	for _, ip := range svc.Spec.ClusterIPs {
		url := "http://" + net.JoinHostPort(ip, "80") + "/"
		var r result
		err := harness.WaitFor(ctx, time.Minute, "an answer from "+url, func(ctx context.Context) (bool, error) {
			if gone, log := kp.Exited(); gone {
				return false, fmt.Errorf("kube-proxy exited: %s", log)
			}
			r = runCmd(t, rn.api.Kubeconfig, nil, "kubectl", "exec", "-n", ns, "client", "--",
				"sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 "$0" 80`, ip)
			return r.Code == 0 && strings.HasPrefix(r.Stdout, "HTTP/1.") && strings.Contains(strings.SplitN(r.Stdout, "\n", 2)[0], " 200 "), nil
		})
		if err != nil {
			t.Fatalf("%v\nlast try:\n%s\nkube-proxy log:\n%s\ncontroller-manager log:\n%s", err, r, kp.LogTail(15), cm.LogTail(10))
		}
		_, body, _ := strings.Cut(r.Stdout, "\r\n\r\n")
		if got := strings.TrimSpace(body); got != "web" {
			t.Fatalf("%s answered %q, want the web pod's hostname:\n%s", url, got, r.Stdout)
		}
		t.Logf("client -> %s: 200, %q", url, strings.TrimSpace(body))
	}

	// The Service's name, per family, from the cluster DNS over each of its
	// addresses.
	const name = "web.apps.svc.cluster.local"
	for _, server := range dnsIPs {
		for i, typ := range []string{"A", "AAAA"} {
			var r result
			err := harness.WaitFor(ctx, 30*time.Second, typ+" "+name+" from "+server, func(ctx context.Context) (bool, error) {
				r = runCmd(t, rn.api.Kubeconfig, nil, "kubectl", "exec", "-n", ns, "client", "--", "nslookup", "-type="+typ, name, server)
				return r.Code == 0 && strings.Contains(r.Stdout, "Address: "+svc.Spec.ClusterIPs[i]), nil
			})
			if err != nil {
				t.Fatalf("%v\nlast try:\n%s\nCoreDNS log:\n%s", err, r, coredns.LogTail(10))
			}
			t.Logf("%s %s from %s: %s", typ, name, server, svc.Spec.ClusterIPs[i])
		}
	}
	// And through the pod's own resolv.conf (the kubelet's clusterDNS).
	if r := runCmd(t, rn.api.Kubeconfig, nil, "kubectl", "exec", "-n", ns, "client", "--", "cat", "/etc/resolv.conf"); r.Code != 0 ||
		!strings.Contains(r.Stdout, "nameserver "+dnsIPs[0]) || !strings.Contains(r.Stdout, "search apps.svc.cluster.local") {
		t.Fatalf("the client's resolv.conf:\n%s", r)
	}
	// (busybox's nslookup asks every search domain and exits 1 when one has
	// no such name, even after the first answered.)
	if r := runCmd(t, rn.api.Kubeconfig, nil, "kubectl", "exec", "-n", ns, "client", "--", "nslookup", "-type=AAAA", "web"); !strings.Contains(r.Stdout, "Name:\tweb.apps.svc.cluster.local\nAddress: "+svc.Spec.ClusterIPs[1]) {
		t.Fatalf("AAAA web through the pod's search path:\n%s", r)
	}
}

// kubeDNS makes kube-system/kube-dns: a dual-stack Service at ips with no
// selector, and an EndpointSlice per family naming the node's CoreDNS.
func kubeDNS(t *testing.T, ctx context.Context, kc kubernetes.Interface, ips, endpoints []string) {
	t.Helper()
	if err := harness.EnsureNamespace(ctx, kc, "kube-system", nil); err != nil {
		t.Fatal(err)
	}
	policy := corev1.IPFamilyPolicyRequireDualStack
	if _, err := kc.CoreV1().Services("kube-system").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system"},
		Spec: corev1.ServiceSpec{ClusterIP: ips[0], ClusterIPs: ips, IPFamilyPolicy: &policy, Ports: []corev1.ServicePort{
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
			{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ep := range endpoints {
		if _, err := kc.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, harness.DNSEndpointSlice(ep), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRealNodeValidateProvesTheNetwork: `validate --no-mesh` on the real
// node, with images built here (curl and getent from this machine, go-httpbin)
// and every component real: the scheduler places its pods, the kubelet runs
// them, kube-proxy routes its Services, CoreDNS answers their names. With
// the node's pod network still IPv4-only it fails on IPv6 and names the
// cause; once the node has its IPv6 range it passes, and the report holds
// the real addresses.
func TestRealNodeValidateProvesTheNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dnsIPs := []string{"10.96.0.10", "fd11::a"}
	rn := upRealNodeWith(t, ctx, "10.96.0.0/16,fd11::/108", dnsIPs...)
	if err := rn.node.SetServiceCIDRs("10.96.0.0/16", "fd11::/108"); err != nil {
		t.Fatal(err)
	}
	bins := map[string]string{}
	for _, pkg := range []string{harness.ControllerManagerPackage, harness.SchedulerPackage, node.KubeProxyPackage} {
		b, err := node.Build(ctx, binDir, pkg, node.VersionLDFlags(version.Get().GitVersion))
		if err != nil {
			t.Fatal(err)
		}
		bins[pkg] = b
	}
	httpbin, err := node.BuildStatic(ctx, binDir, "github.com/mccutchen/go-httpbin/v2/cmd/go-httpbin")
	if err != nil {
		t.Fatal(err)
	}
	if err := rn.node.ImportValidateImages(ctx, httpbin); err != nil {
		t.Fatal(err)
	}
	dnsBin, err := node.BuildCoreDNS(ctx, binDir)
	if err != nil {
		t.Fatal(err)
	}
	// The namespace controller too (validate deletes its namespace at the
	// end), and node lifecycle (it takes away the not-ready taint the
	// kubelet registers the node with, or nothing is scheduled).
	if _, err := harness.StartControllerManager(t, rn.api, bins[harness.ControllerManagerPackage], t.TempDir(),
		"deployment", "replicaset", "endpointslice", "disruption", "namespace", "serviceaccount", "nodelifecycle"); err != nil {
		t.Fatal(err)
	}
	sched, err := harness.StartScheduler(t, rn.api, bins[harness.SchedulerPackage], t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rn.node.StartKubeProxy(ctx, node.KubeProxyConfig{Binary: bins[node.KubeProxyPackage], Kubeconfig: rn.api.Kubeconfig}); err != nil {
		t.Fatal(err)
	}

	validate := func() (result, validateJSON) {
		r := plugin(t, rn.api.Kubeconfig, nil, "validate", "--no-mesh", "--checks", "pod-ips,service-ips,curl-service,dns-service",
			"--curl-image", node.CurlImageName, "--httpbin-image", node.HTTPBinImageName, "--timeout", "90s", "-o", "json")
		var v validateJSON
		if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
			t.Fatalf("validate -o json is not JSON: %v\n%s\nkube-scheduler log:\n%s\nkubelet log:\n%s", err, r, sched.LogTail(20), rn.kubelet.LogTail(20))
		}
		return r, v
	}

	// Before: the pod network has no IPv6 range. (CoreDNS listens on the
	// IPv4 gateway only, as a cluster DNS of an IPv4 cluster would.)
	coredns, err := rn.node.StartCoreDNS(ctx, dnsBin, rn.api.Kubeconfig, "sandbox", "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	kubeDNS(t, ctx, rn.api.Kube, dnsIPs, coredns.Addrs)
	r, v := validate()
	t.Logf("validate before the IPv6 range: exit %d, %+v", r.Code, v.Summary)
	for _, c := range v.Checks {
		t.Logf("  %s %s %s: %s", c.Name, c.Family, c.Status, c.Message)
	}
	want := map[string]string{
		"pod-ips/IPv4": "PASS", "service-ips/IPv4": "PASS", "curl-service/IPv4": "PASS", "dns-service/IPv4": "PASS",
		"pod-ips/IPv6": "FAIL", "service-ips/IPv6": "PASS", "curl-service/IPv6": "FAIL", "dns-service/IPv6": "PASS",
	}
	if r.Code != 1 || !maps.Equal(v.verdicts(), want) || !strings.Contains(v.message("pod-ips/IPv6"), "no IPv6 pod IP") {
		t.Fatalf("validate before the IPv6 range: want exit 1 with %v:\n%s", want, r)
	}
	// The addresses in the report are the real ones.
	v4, v6 := netip.MustParsePrefix(node.IPv4Range), netip.MustParsePrefix(node.IPv6Range)
	realAddrs := func(key string, in ...netip.Prefix) {
		t.Helper()
		msg := v.message(key)
		n := 0
		for _, w := range strings.FieldsFunc(msg, func(r rune) bool { return r == ' ' || r == ',' || r == ';' || r == '(' || r == ')' }) {
			if a, err := netip.ParseAddr(w); err == nil {
				n++
				if !slices.ContainsFunc(in, func(p netip.Prefix) bool { return p.Contains(a) }) {
					t.Errorf("%s names %s, not in %v: %q", key, a, in, msg)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s names no address: %q", key, msg)
		}
	}
	svc4, svc6 := netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd11::/108")
	realAddrs("pod-ips/IPv4", v4)
	realAddrs("service-ips/IPv4", svc4)
	realAddrs("service-ips/IPv6", svc6)
	realAddrs("dns-service/IPv4", svc4)
	realAddrs("dns-service/IPv6", svc6)

	// The conversion's node side: the pod range gets IPv6, and the cluster
	// DNS listens on it too. validate re-deploys its pods, which get both.
	if err := rn.node.AddIPv6Range(); err != nil {
		t.Fatal(err)
	}
	if err := rn.node.StopCoreDNS(); err != nil {
		t.Fatal(err)
	}
	coredns, err = rn.node.StartCoreDNS(ctx, dnsBin, rn.api.Kubeconfig, "sandbox", "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rn.api.Kube.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, harness.DNSEndpointSlice(coredns.Addrs[1]), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r, v = validate()
	t.Logf("validate after the IPv6 range: exit %d, %+v", r.Code, v.Summary)
	for _, c := range v.Checks {
		t.Logf("  %s %s %s: %s", c.Name, c.Family, c.Status, c.Message)
	}
	if r.Code != 0 || v.Summary.Fail != 0 || v.Summary.Pass != 8 {
		t.Fatalf("validate after the IPv6 range: want exit 0 and 8 PASS:\n%s", r)
	}
	realAddrs("pod-ips/IPv4", v4)
	realAddrs("pod-ips/IPv6", v6)
	realAddrs("curl-service/IPv4", v4, svc4)
	realAddrs("curl-service/IPv6", v6, svc6)
	realAddrs("dns-service/IPv6", svc6)
}
