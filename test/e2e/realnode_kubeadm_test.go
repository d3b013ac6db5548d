package e2e

// The kubeadm path on the real node (issue 19): the network phase's API
// side, the host-side flag changes made as an admin makes them, and the
// real kube-proxy DaemonSet restarted by the tool with the IPv6 cluster
// CIDR, then the Services and pods converted.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/node"
)

// TestRealNodeKubeadmConverts: the kubeadm path with the real node.
// kube-proxy runs as kubeadm's DaemonSet (pods made by the real DaemonSet
// controller, placed by the real scheduler, run by the kubelet with the
// host's iptables in its image), its config in the kube-proxy ConfigMap
// with the IPv4 cluster CIDR only; the control plane's flags are in the
// kubelet's mirror pods. `network --yes` edits the two ConfigMaps and
// times out on what the hosts have not done, kube-proxy untouched; the
// test then makes the host-side changes as an admin does (the pod
// network's IPv6 range in the CNI, the API server restarted with an IPv6
// Service range, the manifests' flags, the kubelet restarted with its
// IPv6 --node-ip), and `network --yes` sees them and restarts kube-proxy:
// a new pod, whose rules now know the IPv6 cluster CIDR (ip6tables'
// rule for traffic from the cluster's pods, -s fd10:244::/56, as the pod
// before wrote iptables' with -s 10.244.0.0/16). `services` and
// `workloads` then give the app a dual-stack Service and pods with both
// families.
func TestRealNodeKubeadmConverts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if m := node.Missing(); len(m) > 0 {
		t.Skipf("a real node needs %s: run `make node-deps` as root", strings.Join(m, ", "))
	}
	kernelBefore := kernelSettings(t)
	t.Cleanup(func() { // after the node's own cleanup, registered later
		if after := kernelSettings(t); after != kernelBefore {
			t.Errorf("kernel settings after the node: %s; before: %s", after, kernelBefore)
		}
		if left, err := node.KubeChainsPresent(); err != nil || len(left) > 0 {
			t.Errorf("iptables chains left: %v (%v)", left, err)
		}
	})
	k, err := harness.StartKubeadmNode(ctx, t, harness.KubeadmNodeOptions{BinDir: binDir})
	if err != nil {
		t.Fatal(err)
	}
	rn := &realNode{api: k.API, node: k.Node, kubelet: k.Kubelet}
	kc := k.API.Kube
	proxy1, err := k.KubeProxyPod(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-proxy pod %s running", proxy1.Name)

	// The app: a Deployment's pod behind a Service with an external address
	// per family on the bridge and externalTrafficPolicy Local, whose
	// rules use kube-proxy's cluster CIDR per family ("pod traffic for ...
	// external destinations": traffic from the cluster's pods).
	const ns = "apps"
	if err := harness.EnsureNamespace(ctx, kc, ns, nil); err != nil {
		t.Fatal(err)
	}
	one := int32(1)
	tmpl := rn.sleeper(ns, "edge")
	tmpl.Spec.NodeName = ""
	tmpl.Spec.Containers[0].Command = []string{"sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"}
	if _, err := kc.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels}, Spec: tmpl.Spec}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: tmpl.Labels, ExternalIPs: []string{"10.244.0.200", "fd10:244::c8"},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := waitPods(t, ctx, rn, k.ControllerManager, ns, "app=edge", 1, 1)
	localRule := func(tool, cidr string) error {
		return harness.WaitFor(ctx, time.Minute, tool+"'s rule for traffic from "+cidr+" to apps/edge's external addresses", func(ctx context.Context) (bool, error) {
			out, err := exec.CommandContext(ctx, tool+"-save", "-t", "nat").Output()
			if err != nil {
				return false, err
			}
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "pod traffic for apps/edge:http external destinations") && strings.Contains(l, "-s "+cidr+" ") {
					return true, nil
				}
			}
			return false, nil
		})
	}
	if err := localRule("iptables", harness.KubeadmPods4); err != nil {
		t.Fatalf("%v\nkube-proxy log:\n%s", err, kubectlLogs(t, rn, proxy1))
	}

	// The plan: what this tool changes in the API, and the new texts.
	network := []string{"network", "--cluster-network", harness.KubeadmPods6, "--service-network", harness.KubeadmServices6}
	r := plugin(t, rn.api.Kubeconfig, nil, append(network, "--dry-run=client", "-o", "json")...)
	n := parseNetwork(t, r)
	inAPI := 0
	for _, c := range n.Plan.Changes {
		if c.InAPI {
			inAPI++
		}
	}
	if r.Code != 0 || n.Outcome != "planned" || inAPI == 0 || len(n.Plan.Edits) != 2 {
		t.Fatalf("kubeadm plan on the real node: %d changes in the API, %d edits:\n%s", inAPI, len(n.Plan.Edits), r)
	}

	// --yes before the hosts change: the ConfigMaps are edited, the wait
	// times out naming the node and the apiserver, kube-proxy untouched.
	r = plugin(t, rn.api.Kubeconfig, nil, append(network, "--yes", "--timeout", "5s", "-o", "json")...)
	n = parseNetwork(t, r)
	if r.Code != 1 || n.Outcome != "timed-out" || !strings.Contains(n.Message, rn.kubelet.NodeName+": kubelet --node-ip") ||
		!strings.Contains(n.Message, "kube-apiserver --service-cluster-ip-range") {
		t.Fatalf("network --yes before the host-side changes:\n%s", r)
	}
	conf, err := kc.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("clusterCIDR: %q", harness.KubeadmPods4+","+harness.KubeadmPods6); !strings.Contains(conf.Data["config.conf"], want) {
		t.Fatalf("kube-proxy's config.conf has no %s:\n%s", want, conf.Data["config.conf"])
	}
	if p, err := k.KubeProxyPod(ctx, ""); err != nil || p.UID != proxy1.UID {
		t.Fatalf("kube-proxy was restarted before the hosts had IPv6 (%v; pod %v, was %s)", err, p, proxy1.Name)
	}

	// The admin's host-side changes.
	if err := k.ConvertHosts(ctx); err != nil {
		t.Fatal(err)
	}
	kc = k.API.Kube
	rn.kubelet = k.Kubelet

	// The tool sees the hosts' changes and restarts kube-proxy: a new pod,
	// which reads the new clusterCIDR.
	r = plugin(t, rn.api.Kubeconfig, nil, append(network, "--yes", "--timeout", "2m", "-o", "json")...)
	if n = parseNetwork(t, r); r.Code != 0 || n.Outcome != "converted" || !strings.Contains(n.Message, "restarted kube-system/kube-proxy") {
		t.Fatalf("network --yes after the host-side changes:\n%s\nkubelet log:\n%s", r, rn.kubelet.LogTail(20))
	}
	// and names the pods that still have one family: the app's.
	var conv struct {
		IPv4OnlyPods []struct {
			Namespace string `json:"namespace"`
			Pods      int    `json:"pods"`
		} `json:"ipv4OnlyPods"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &conv); err != nil || len(conv.IPv4OnlyPods) != 1 || conv.IPv4OnlyPods[0].Namespace != ns || conv.IPv4OnlyPods[0].Pods != 1 {
		t.Errorf("network's converted result names IPv4-only pods %+v (%v); want %s (1):\n%s", conv.IPv4OnlyPods, err, ns, r.Stdout)
	}
	proxy2, err := k.KubeProxyPod(ctx, string(proxy1.UID))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-proxy pod %s replaced by %s", proxy1.Name, proxy2.Name)

	// The app's Service and pods.
	if r := plugin(t, rn.api.Kubeconfig, nil, "services", "--include-namespaces", ns, "--yes", "-o", "json"); r.Code != 0 {
		t.Fatalf("services --yes:\n%s", r)
	}
	svc, err := kc.CoreV1().Services(ns).Get(ctx, "edge", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.ClusterIPs) != 2 || !netip.MustParsePrefix(harness.KubeadmServices6).Contains(netip.MustParseAddr(svc.Spec.ClusterIPs[1])) {
		t.Fatalf("apps/edge after services: ClusterIPs %v, want a second one in %s", svc.Spec.ClusterIPs, harness.KubeadmServices6)
	}
	if r := plugin(t, rn.api.Kubeconfig, nil, "workloads", "--include-namespaces", ns, "--yes", "--timeout", "3m", "-o", "json"); r.Code != 0 {
		t.Fatalf("workloads --yes:\n%s\nkubelet log:\n%s", r, rn.kubelet.LogTail(20))
	}
	after := waitPods(t, ctx, rn, k.ControllerManager, ns, "app=edge", 1, 2)
	if after[0].UID == before[0].UID {
		t.Fatalf("workloads did not re-create apps/edge's pod %s", before[0].Name)
	}
	v6 := netip.MustParsePrefix(node.IPv6Range)
	if a := podAddrs(after[0]); !v6.Contains(a[1]) {
		t.Fatalf("re-created pod %s: podIPs %v, want one in %s", after[0].Name, after[0].Status.PodIPs, v6)
	}
	t.Logf("apps/edge: ClusterIPs %v, pod %s %v", svc.Spec.ClusterIPs, after[0].Name, after[0].Status.PodIPs)
	// The new kube-proxy tells the cluster's IPv6 pods by the CIDR the
	// tool added.
	if err := localRule("ip6tables", harness.KubeadmPods6); err != nil {
		t.Fatalf("%v\nkube-proxy log:\n%s", err, kubectlLogs(t, rn, proxy2))
	}
}

// kubectlLogs returns the pod's log through the API server and the
// kubelet's server.
func kubectlLogs(t *testing.T, rn *realNode, p *corev1.Pod) string {
	t.Helper()
	r := runCmd(t, rn.api.Kubeconfig, nil, "kubectl", "logs", "-n", p.Namespace, p.Name, "--tail", "60")
	return r.Stdout + r.Stderr
}
