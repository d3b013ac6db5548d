package e2e

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

const (
	kubeadmClusterConf = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16 # the CNI's range\n  serviceSubnet: 10.96.0.0/16\n"
	kubeProxyConf      = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: \"10.244.0.0/16\"\nmode: iptables\n"
)

// kubeadmControlPlane is what kubeadm leaves in the API: its
// ClusterConfiguration, kube-proxy's config and DaemonSet, the control
// plane's mirror pods with their flags, and the nodes.
func kubeadmControlPlane(t *testing.T, api *harness.APIServer, serviceRange, clusterCIDR string, ipv6 bool) {
	t.Helper()
	ctx := context.Background()
	kc := api.Kube
	for _, name := range []string{"kube-apiserver-cp-1", "kube-controller-manager-cp-1"} {
		_ = kc.CoreV1().Pods("kube-system").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	}
	staticPod(t, api, "kube-apiserver", "cp-1", "kube-apiserver", "--advertise-address=10.0.0.10", "--service-cluster-ip-range="+serviceRange)
	staticPod(t, api, "kube-controller-manager", "cp-1", "kube-controller-manager", "--allocate-node-cidrs=true",
		"--cluster-cidr="+clusterCIDR, "--service-cluster-ip-range="+serviceRange, "--node-cidr-mask-size-ipv4=24", "--node-cidr-mask-size-ipv6=64")
	for i, name := range []string{"cp-1", "worker-1"} {
		ips := []string{"10.0.0.1" + string(rune('0'+i))}
		if ipv6 {
			ips = append(ips, "2600:1f18:1::1"+string(rune('0'+i)))
		}
		n, err := kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if err := harness.CreateNodes(ctx, kc, []harness.NodeSpec{{Name: name, InternalIPs: ips}}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		n.Status.Addresses = nil
		for _, ip := range ips {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
		}
		if _, err := kc.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNetworkKubeadmConverts: on kubeadm, network --yes changes what the
// API holds (kubeadm-config's podSubnet and serviceSubnet, kube-proxy's
// clusterCIDR: each key's other bytes kept), lists the host-side changes
// and waits for them; without them it times out naming what the API does
// not show, with the ConfigMaps journalled. Once the admin has changed the
// hosts (the apiserver restarted with an IPv6 service range, the mirror
// pods' flags, the kubelets' --node-ip), a re-run verifies it and restarts
// kube-proxy once; --revert restores both ConfigMaps byte for byte. All of
// it as a user who has only dualstack-admin, none of its requests denied.
func TestNetworkKubeadmConverts(t *testing.T) {
	ctx := context.Background()
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16"})
	kc := api.Kube
	if err := harness.EnsureNamespace(ctx, kc, "kube-system", nil); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]map[string]string{
		"kubeadm-config": {"ClusterConfiguration": kubeadmClusterConf},
		"kube-proxy":     {"config.conf": kubeProxyConf, "kubeconfig.conf": "apiVersion: v1\nkind: Config\n"},
	} {
		if _, err := kc.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	labels := map[string]string{"k8s-app": "kube-proxy"}
	if _, err := kc.AppsV1().DaemonSets("kube-system").Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Labels: labels},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kube-proxy", Image: "registry.k8s.io/kube-proxy:v1.37.2"}}},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeadmControlPlane(t, api, "10.96.0.0/16", "10.244.0.0/16", false)
	dave := harness.TokenUser{Name: "dave", Token: "dave-token-kubeadm-0123456789"}
	bindRole(t, kc, loadClusterRole(t, adminRoleFile), dave.Name)
	asDave := func() (*harness.KubeFaultProxy, string) {
		proxy, err := harness.StartKubeFaultProxy(t, api.Config, harness.KubeFaultProxyOptions{RBACUsers: []harness.TokenUser{dave}})
		if err != nil {
			t.Fatal(err)
		}
		k, err := proxy.UserKubeconfig(t.TempDir(), dave)
		if err != nil {
			t.Fatal(err)
		}
		return proxy, k
	}
	proxy1, kcfg := asDave()
	cm := func(name, key string) string {
		c, err := kc.CoreV1().ConfigMaps("kube-system").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Data[key]
	}
	restartedAt := func() string {
		ds, err := kc.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ds.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"]
	}

	// The plan marks what this tool changes and shows the new texts.
	r := plugin(t, kcfg, nil, "network", "--dry-run=client", "-o", "json")
	n := parseNetwork(t, r)
	inAPI := 0
	for _, c := range n.Plan.Changes {
		if c.InAPI {
			inAPI++
		}
	}
	if r.Code != 0 || n.Outcome != "planned" || inAPI != 3 || len(n.Plan.Edits) != 2 || cm("kubeadm-config", "ClusterConfiguration") != kubeadmClusterConf {
		t.Fatalf("kubeadm plan: %d in the API, %d edits\n%s", inAPI, len(n.Plan.Edits), r)
	}

	// --yes before the hosts are changed: the API part is made, the wait
	// times out naming what is missing.
	r = plugin(t, kcfg, nil, "network", "--yes", "--timeout", "3s", "-o", "json")
	n = parseNetwork(t, r)
	if r.Code != 1 || n.Outcome != "timed-out" || !strings.Contains(n.Message, "2 of 2 nodes without both InternalIP families") ||
		!strings.Contains(n.Message, "kube-apiserver --service-cluster-ip-range") || !strings.Contains(n.Message, "network --revert --yes") {
		t.Fatalf("network --yes before the host-side changes:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "kube-apiserver: --service-cluster-ip-range 10.96.0.0/16 -> 10.96.0.0/16,fd02::/112") {
		t.Errorf("the host-side changes were not listed:\n%s", r.Stderr)
	}
	wantKubeadm := strings.Replace(strings.Replace(kubeadmClusterConf, "podSubnet: 10.244.0.0/16 #", "podSubnet: 10.244.0.0/16,fd01::/48 #", 1), "serviceSubnet: 10.96.0.0/16", "serviceSubnet: 10.96.0.0/16,fd02::/112", 1)
	wantProxy := strings.Replace(kubeProxyConf, `"10.244.0.0/16"`, `"10.244.0.0/16,fd01::/48"`, 1)
	if got := cm("kubeadm-config", "ClusterConfiguration"); got != wantKubeadm {
		t.Errorf("kubeadm-config:\n%s\nwant\n%s", got, wantKubeadm)
	}
	if got := cm("kube-proxy", "config.conf"); got != wantProxy {
		t.Errorf("kube-proxy:\n%s\nwant\n%s", got, wantProxy)
	}
	if restartedAt() != "" {
		t.Error("kube-proxy was restarted before the control plane had IPv6")
	}

	// The admin changes the hosts: the apiserver's flags (a restart on the
	// same etcd), the mirror pods, the kubelets' --node-ip.
	if err := api.Restart(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16,fd02::/112"}); err != nil {
		t.Fatal(err)
	}
	kc = api.Kube
	kubeadmControlPlane(t, api, "10.96.0.0/16,fd02::/112", "10.244.0.0/16,fd01::/48", true)
	proxy2, kcfg := asDave()
	r = plugin(t, kcfg, nil, "network", "--yes", "--timeout", "30s", "-o", "json")
	if n = parseNetwork(t, r); r.Code != 0 || n.Outcome != "converted" || !strings.Contains(n.Message, "restarted kube-system/kube-proxy") || restartedAt() == "" {
		t.Fatalf("network --yes after the host-side changes:\n%s", r)
	}
	if r := plugin(t, kcfg, nil, "network", "--yes", "-o", "json"); r.Code != 0 || parseNetwork(t, r).Outcome != "already-dual-stack" {
		t.Errorf("a second run:\n%s", r)
	}

	r = plugin(t, kcfg, nil, "network", "--revert", "--yes", "-o", "json")
	if n = parseNetwork(t, r); r.Code != 0 || n.Outcome != "reverted" || !strings.Contains(n.Message, "yours to take back") {
		t.Fatalf("network --revert on kubeadm:\n%s", r)
	}
	if cm("kubeadm-config", "ClusterConfiguration") != kubeadmClusterConf || cm("kube-proxy", "config.conf") != kubeProxyConf {
		t.Errorf("not restored byte for byte:\n%q\n%q", cm("kubeadm-config", "ClusterConfiguration"), cm("kube-proxy", "config.conf"))
	}
	for _, p := range []*harness.KubeFaultProxy{proxy1, proxy2} {
		for _, q := range p.Requests() {
			if q.Status == 403 {
				t.Errorf("denied as dualstack-admin: %s %s/%s", q.Key(), q.Namespace, q.Name)
			}
		}
	}
}
