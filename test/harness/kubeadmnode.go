package harness

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/version"
	"k8s.io/kubernetes/pkg/capabilities"
	"k8s.io/kubernetes/test/utils/ktesting"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/node"
)

// The ranges of the kubeadm-like cluster on the real node: IPv4 first, the
// IPv6 ones those a conversion adds (the node's pod range, fd10:244::/64,
// is inside KubeadmPods6).
const (
	KubeadmServices4 = "10.96.0.0/16"
	KubeadmServices6 = "fd11::/108"
	KubeadmPods4     = "10.244.0.0/16"
	KubeadmPods6     = "fd10:244::/56"
	// KubeadmDNS is the cluster DNS Service's IPv4 address (kube-dns).
	KubeadmDNS = "10.96.0.10"
)

// kubeProxyKubeconfig is where the kube-proxy DaemonSet's pods read the API
// server's kubeconfig: its directory on the host, mounted.
const kubeProxyKubeconfig = "/etc/kds-api/kubeconfig"

// KubeadmNodeOptions tunes StartKubeadmNode.
type KubeadmNodeOptions struct {
	// BinDir is where the Kubernetes components are built.
	BinDir string
	// Logf receives progress lines (default: tb.Logf).
	Logf func(format string, args ...any)
	// DNS adds CoreDNS as the cluster DNS (kube-system/kube-dns) and imports
	// validate's images (curl, go-httpbin), for `validate --no-mesh`.
	DNS bool
	// NoSignalHandler leaves SIGINT/SIGTERM to the caller (node.Config).
	NoSignalHandler bool
}

// KubeadmNode is a kubeadm-like cluster, IPv4-only, on one real node: the
// in-process kube-apiserver; the node (test/node) with a real kubelet;
// the real kube-controller-manager and kube-scheduler as child processes;
// kube-proxy as kubeadm runs it, a DaemonSet whose config is the
// kube-proxy ConfigMap; kubeadm's kubeadm-config; and the control plane's
// static pods, whose mirror pods carry the flags the tool reads.
//
// The static pods stand in for the components: the kubelet runs them (a
// busybox that sleeps, its command the component's flags) and mirrors them
// in the API, but the API server is the one in this process and the
// controllers are the child processes, run with the same ranges.
// ConvertHosts makes, as an admin does, what a conversion needs on the
// hosts.
type KubeadmNode struct {
	API               *APIServer
	Node              *node.Node
	Kubelet           *node.Kubelet
	ControllerManager *ControllerManager
	Scheduler         *ControllerManager
	CoreDNS           *node.CoreDNS

	tb       ktesting.TB
	opts     KubeadmNodeOptions
	bins     map[string]string
	coreDNS  string
	hostSide bool
}

// StartKubeadmNode brings the cluster up and returns once the node is
// Ready, the mirror pods show the control plane's flags and kube-proxy's
// pod runs. tb's cleanups take all of it down.
func StartKubeadmNode(ctx context.Context, tb ktesting.TB, opts KubeadmNodeOptions) (*KubeadmNode, error) {
	if opts.Logf == nil {
		opts.Logf = tb.Logf
	}
	k := &KubeadmNode{tb: tb, opts: opts, bins: map[string]string{}}
	// --allow-privileged sets a process-wide setting once: the first API
	// server this process started decided it. Clear it so that this one's
	// flag holds, and again at the end for the next one's.
	capabilities.ResetForTest()
	tb.Cleanup(capabilities.ResetForTest)
	api, err := StartAPIServer(tb, k.apiOptions(KubeadmServices4))
	if err != nil {
		return nil, err
	}
	k.API = api
	t0 := time.Now()
	for _, pkg := range []string{node.KubeletPackage, ControllerManagerPackage, SchedulerPackage, node.KubeProxyPackage} {
		b, err := node.Build(ctx, opts.BinDir, pkg, node.VersionLDFlags(version.Get().GitVersion))
		if err != nil {
			return nil, err
		}
		k.bins[pkg] = b
	}
	if opts.DNS {
		if k.coreDNS, err = node.BuildCoreDNS(ctx, opts.BinDir); err != nil {
			return nil, err
		}
	}
	opts.Logf("kubeadm node: components built in %s", time.Since(t0).Round(time.Millisecond))
	n, err := node.Up(ctx, node.Config{Logf: opts.Logf, NoSignalHandler: opts.NoSignalHandler})
	if err != nil {
		return nil, err
	}
	k.Node = n
	tb.Cleanup(func() {
		if err := n.Down(); err != nil {
			tb.Error(err)
		}
	})
	if err := n.SetServiceCIDRs(KubeadmServices4); err != nil {
		return nil, err
	}
	if err := k.startKubelet(ctx, node.IPv4Range); err != nil {
		return nil, err
	}
	if err := n.ImportKubeProxyImage(ctx, k.bins[node.KubeProxyPackage]); err != nil {
		return nil, err
	}
	if opts.DNS {
		httpbin, err := node.BuildStatic(ctx, opts.BinDir, "github.com/mccutchen/go-httpbin/v2/cmd/go-httpbin")
		if err != nil {
			return nil, err
		}
		if err := n.ImportValidateImages(ctx, httpbin); err != nil {
			return nil, err
		}
	}
	if err := n.PrepareKubeProxy(ctx); err != nil {
		return nil, err
	}
	if err := k.startControllers(); err != nil {
		return nil, err
	}

	// What kubeadm leaves in the API.
	kc := api.Kube
	if err := EnsureNamespace(ctx, kc, "kube-system", nil); err != nil {
		return nil, err
	}
	if filepath.Base(api.Kubeconfig) != filepath.Base(kubeProxyKubeconfig) {
		return nil, fmt.Errorf("the API server's kubeconfig is %s; kube-proxy's pods read %s", api.Kubeconfig, kubeProxyKubeconfig)
	}
	for name, data := range map[string]map[string]string{
		"kubeadm-config": {"ClusterConfiguration": kubeadmClusterConfiguration(KubeadmPods4, KubeadmServices4)},
		"kube-proxy":     {"config.conf": node.KubeProxyConfiguration(kubeProxyKubeconfig, KubeadmPods4)},
	} {
		if _, err := kc.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	if err := k.writeManifests(KubeadmServices4, KubeadmPods4); err != nil {
		return nil, err
	}
	if err := k.waitMirrorPods(ctx, KubeadmServices4); err != nil {
		return nil, err
	}
	if _, err := kc.AppsV1().DaemonSets("kube-system").Create(ctx, kubeProxyDaemonSet(filepath.Dir(api.Kubeconfig)), metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if _, err := k.KubeProxyPod(ctx, ""); err != nil {
		return nil, err
	}
	if opts.DNS {
		if err := k.startCoreDNS(ctx); err != nil {
			return nil, err
		}
	}
	opts.Logf("kubeadm node: up in %s, IPv4-only", time.Since(t0).Round(time.Millisecond))
	return k, nil
}

// kubeadmClusterConfiguration is kubeadm-config's ClusterConfiguration with
// the given ranges.
func kubeadmClusterConfiguration(pods, services string) string {
	return "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: " + pods + "\n  serviceSubnet: " + services + "\n"
}

func (k *KubeadmNode) apiOptions(services string) APIServerOptions {
	// The API server reaches the kubelet at its InternalIP (logs, exec), and
	// allows privileged containers (kube-proxy's, as kubeadm's does). Its
	// shutdown, when ConvertHosts restarts it, waits for open requests up to
	// the request timeout: 15s rather than a minute (kube-proxy's pod keeps
	// its watches open until the tool restarts it).
	return APIServerOptions{ServiceCIDRs: services, ExtraFlags: []string{"--kubelet-preferred-address-types=InternalIP", "--allow-privileged=true", "--request-timeout=15s"}}
}

// startKubelet starts the kubelet with the bridge's gateway addresses of
// the given ranges as its --node-ip, and waits for the node to be Ready.
func (k *KubeadmNode) startKubelet(ctx context.Context, ranges ...string) error {
	var ips []string
	for _, r := range ranges {
		ips = append(ips, netip.MustParsePrefix(r).Masked().Addr().Next().String())
	}
	kl, err := k.Node.StartKubelet(ctx, node.KubeletConfig{Binary: k.bins[node.KubeletPackage], Kubeconfig: k.API.Kubeconfig,
		ClusterDNS: []string{KubeadmDNS}, NodeIPs: ips})
	if err != nil {
		return err
	}
	k.Kubelet = kl
	return WaitNodeReady(ctx, k.API.Kube, kl, ips)
}

// WaitNodeReady waits until the kubelet's Node is Ready and reports ips as
// its InternalIPs (any, when ips is empty), or the kubelet exits.
func WaitNodeReady(ctx context.Context, kc kubernetes.Interface, kl *node.Kubelet, ips []string) error {
	var exited, state string
	err := WaitFor(ctx, 2*time.Minute, "node "+kl.NodeName+" Ready", func(ctx context.Context) (bool, error) {
		if gone, log := kl.Exited(); gone {
			exited = log
			return true, nil
		}
		nd, err := kc.CoreV1().Nodes().Get(ctx, kl.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		var have []string
		for _, a := range nd.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				have = append(have, a.Address)
			}
		}
		ready := false
		for _, c := range nd.Status.Conditions {
			ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
		}
		state = fmt.Sprintf("ready %v, InternalIPs %v", ready, have)
		return ready && (len(ips) == 0 || strings.Join(have, ",") == strings.Join(ips, ",")), nil
	})
	if exited != "" {
		return fmt.Errorf("the kubelet exited: %s", exited)
	}
	if err != nil {
		return fmt.Errorf("%v (%s; want InternalIPs %v)\nkubelet log:\n%s", err, state, ips, kl.LogTail(40))
	}
	return nil
}

// startControllers runs the controller manager (the controllers a
// kubeadm cluster's workloads and kube-proxy need) and the scheduler.
func (k *KubeadmNode) startControllers() error {
	cm, err := StartControllerManager(k.tb, k.API, k.bins[ControllerManagerPackage], k.tb.TempDir(),
		"daemonset", "deployment", "replicaset", "endpointslice", "disruption", "namespace", "serviceaccount", "nodelifecycle")
	if err != nil {
		return err
	}
	sched, err := StartScheduler(k.tb, k.API, k.bins[SchedulerPackage], k.tb.TempDir())
	if err != nil {
		return err
	}
	k.ControllerManager, k.Scheduler = cm, sched
	return nil
}

// controlPlaneManifest is a static pod standing in for a control-plane
// component: kubeadm's labels, the component's flags as its command, a
// busybox that sleeps as what it runs.
func controlPlaneManifest(component string, flags ...string) string {
	cmd := []string{`"sh"`, `"-c"`, `"exec sleep 86400"`, fmt.Sprintf("%q", component)}
	for _, f := range flags {
		cmd = append(cmd, fmt.Sprintf("%q", f))
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  namespace: kube-system
  labels:
    component: %[1]s
    tier: control-plane
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: %[1]s
    image: %[2]s
    imagePullPolicy: Never
    command: [%[3]s]
`, component, node.BusyboxImageName, strings.Join(cmd, ", "))
}

// writeManifests writes the control plane's static pods with these ranges.
func (k *KubeadmNode) writeManifests(services, pods string) error {
	for comp, flags := range map[string][]string{
		"kube-apiserver": {"--advertise-address=" + netip.MustParsePrefix(node.IPv4Range).Addr().Next().String(), "--service-cluster-ip-range=" + services},
		"kube-controller-manager": {"--allocate-node-cidrs=true", "--cluster-cidr=" + pods, "--service-cluster-ip-range=" + services,
			"--node-cidr-mask-size-ipv4=24", "--node-cidr-mask-size-ipv6=64"},
	} {
		if err := os.WriteFile(filepath.Join(k.Kubelet.ManifestDir, comp+".yaml"), []byte(controlPlaneManifest(comp, flags...)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// mirrorFlag returns a flag of a control-plane component's mirror pod.
func (k *KubeadmNode) mirrorFlag(ctx context.Context, component, flag string) string {
	l, err := k.API.Kube.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "component=" + component})
	if err != nil || len(l.Items) != 1 {
		return fmt.Sprintf("(%d mirror pods, %v)", len(l.Items), err)
	}
	for _, a := range l.Items[0].Spec.Containers[0].Command {
		if v, ok := strings.CutPrefix(a, "--"+flag+"="); ok {
			return v
		}
	}
	return ""
}

// waitMirrorPods waits until both mirror pods show the Service range.
func (k *KubeadmNode) waitMirrorPods(ctx context.Context, services string) error {
	if err := WaitFor(ctx, 2*time.Minute, "the mirror pods with --service-cluster-ip-range="+services, func(ctx context.Context) (bool, error) {
		return k.mirrorFlag(ctx, "kube-apiserver", "service-cluster-ip-range") == services &&
			k.mirrorFlag(ctx, "kube-controller-manager", "service-cluster-ip-range") == services, nil
	}); err != nil {
		return fmt.Errorf("%v: kube-apiserver's %q, kube-controller-manager's %q\nkubelet log:\n%s", err,
			k.mirrorFlag(ctx, "kube-apiserver", "service-cluster-ip-range"), k.mirrorFlag(ctx, "kube-controller-manager", "service-cluster-ip-range"), k.Kubelet.LogTail(20))
	}
	return nil
}

// kubeProxyDaemonSet is kubeadm's kube-proxy DaemonSet on the node's image:
// host network, privileged, its config from the kube-proxy ConfigMap, the
// API server's kubeconfig from the host directory kubeconfigDir (the
// harness rewrites the file when the API server restarts).
func kubeProxyDaemonSet(kubeconfigDir string) *appsv1.DaemonSet {
	labels := map[string]string{"k8s-app": "kube-proxy"}
	privileged, no := true, false
	var grace int64 = 1
	dirType := corev1.HostPathDirectory
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system", Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork:                   true,
					AutomountServiceAccountToken:  &no,
					TerminationGracePeriodSeconds: &grace,
					Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{
						Name: "kube-proxy", Image: node.KubeProxyImageName, ImagePullPolicy: corev1.PullNever,
						Command: []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)", "--v=2"},
						Env: []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{
							FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
						SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "kube-proxy", MountPath: "/var/lib/kube-proxy"},
							{Name: "api", MountPath: filepath.Dir(kubeProxyKubeconfig), ReadOnly: true},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "kube-proxy", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: "kube-proxy"}}}},
						{Name: "api", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
							Path: kubeconfigDir, Type: &dirType}}},
					},
				},
			},
		},
	}
}

// KubeProxyPod waits for the one kube-proxy pod, running and not the one
// with UID not, and returns it.
func (k *KubeadmNode) KubeProxyPod(ctx context.Context, not string) (*corev1.Pod, error) {
	var got *corev1.Pod
	var states []string
	err := WaitFor(ctx, 2*time.Minute, "a running kube-proxy pod", func(ctx context.Context) (bool, error) {
		l, err := k.API.Kube.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-proxy"})
		if err != nil {
			return false, err
		}
		got, states = nil, nil
		for i := range l.Items {
			p := &l.Items[i]
			states = append(states, fmt.Sprintf("%s %s deleting=%v", p.Name, p.Status.Phase, p.DeletionTimestamp != nil))
			if string(p.UID) != not && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				got = p
			}
		}
		return got != nil && len(l.Items) == 1, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%v: %v\nkube-controller-manager log:\n%s\nkube-scheduler log:\n%s\nkubelet log:\n%s", err, states,
			k.ControllerManager.LogTail(15), k.Scheduler.LogTail(10), k.Kubelet.LogTail(20))
	}
	return got, nil
}

// startCoreDNS runs CoreDNS on the bridge addresses of the node's ranges
// and points kube-system/kube-dns at it: the Service (IPv4 KubeadmDNS, as
// kubeadm makes it; a second family when the conversion gave it one) with
// an EndpointSlice per address, as CoreDNS's own pods would have.
func (k *KubeadmNode) startCoreDNS(ctx context.Context) error {
	if k.CoreDNS != nil {
		if err := k.Node.StopCoreDNS(); err != nil {
			return err
		}
	}
	c, err := k.Node.StartCoreDNS(ctx, k.coreDNS, k.API.Kubeconfig, "sandbox", "cluster.local")
	if err != nil {
		return err
	}
	k.CoreDNS = c
	kc := k.API.Kube
	if _, err := kc.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{}); err != nil {
		if _, err := kc.CoreV1().Services("kube-system").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}},
			Spec: corev1.ServiceSpec{ClusterIP: KubeadmDNS, Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
			}},
		}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for _, ep := range c.Addrs {
		s := DNSEndpointSlice(ep)
		if _, err := kc.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, s.Name, metav1.GetOptions{}); err == nil {
			continue
		}
		if _, err := kc.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// DNSEndpointSlice is kube-dns's EndpointSlice of ep's family (ip:port),
// naming CoreDNS at ep.
func DNSEndpointSlice(ep string) *discoveryv1.EndpointSlice {
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	dns, dnsTCP, port := "dns", "dns-tcp", int32(53)
	host, _, _ := net.SplitHostPort(ep)
	family, suffix := discoveryv1.AddressTypeIPv4, "ipv4"
	if netip.MustParseAddr(host).Is6() {
		family, suffix = discoveryv1.AddressTypeIPv6, "ipv6"
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns-" + suffix, Namespace: "kube-system", Labels: map[string]string{
			discoveryv1.LabelServiceName: "kube-dns", discoveryv1.LabelManagedBy: "kubectl-dualstack-e2e"}},
		AddressType: family,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &dns, Protocol: &udp, Port: &port}, {Name: &dnsTCP, Protocol: &tcp, Port: &port}},
	}
}

// ConvertHosts makes the host-side changes of a conversion that the
// network phase lists and waits for, as an admin makes them: the pod
// network gets its IPv6 range (the CNI config, the bridge's gateway
// address) and pods a route to the IPv6 Service range; the API server
// restarts with the IPv6 Service range (on the same etcd: a new port and
// credentials, the same kubeconfig file), and with it everything that
// talks to it; the static pods' manifests get both ranges; the kubelet
// restarts with its IPv6 --node-ip; CoreDNS listens on the IPv6 address
// too. kube-proxy is left to the tool (its ConfigMap, its restart).
func (k *KubeadmNode) ConvertHosts(ctx context.Context) error {
	if k.hostSide {
		return nil
	}
	t0 := time.Now()
	if err := k.Node.AddIPv6Range(); err != nil {
		return err
	}
	if err := k.Node.SetServiceCIDRs(KubeadmServices4, KubeadmServices6); err != nil {
		return err
	}
	// What talks to the API server stops first (its shutdown waits for
	// their requests), but kube-proxy's pod.
	k.ControllerManager.Stop(10 * time.Second)
	k.Scheduler.Stop(10 * time.Second)
	if err := k.Node.StopKubelet(); err != nil {
		return err
	}
	if k.CoreDNS != nil {
		if err := k.Node.StopCoreDNS(); err != nil {
			return err
		}
		k.CoreDNS = nil
	}
	t1 := time.Now()
	if err := k.API.Restart(k.tb, k.apiOptions(KubeadmServices4+","+KubeadmServices6)); err != nil {
		return err
	}
	k.opts.Logf("kubeadm node: the API server restarted with %s,%s in %s", KubeadmServices4, KubeadmServices6, time.Since(t1).Round(time.Millisecond))
	t1 = time.Now()
	if err := k.writeManifests(KubeadmServices4+","+KubeadmServices6, KubeadmPods4+","+KubeadmPods6); err != nil {
		return err
	}
	if err := k.startKubelet(ctx, node.IPv4Range, node.IPv6Range); err != nil {
		return err
	}
	k.opts.Logf("kubeadm node: the kubelet restarted with both --node-ip, Ready in %s", time.Since(t1).Round(time.Millisecond))
	if err := k.startControllers(); err != nil {
		return err
	}
	if err := k.waitMirrorPods(ctx, KubeadmServices4+","+KubeadmServices6); err != nil {
		return err
	}
	if k.opts.DNS {
		if err := k.startCoreDNS(ctx); err != nil {
			return err
		}
	}
	k.hostSide = true
	k.opts.Logf("kubeadm node: host-side changes made in %s", time.Since(t0).Round(time.Millisecond))
	return nil
}
