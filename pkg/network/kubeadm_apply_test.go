package network

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

func TestEditScalar(t *testing.T) {
	for _, tc := range []struct {
		name, in, key string
		path          []string
		want, err     string
	}{
		{name: "plain, indented, other bytes kept", key: "podSubnet", path: []string{"networking", "podSubnet"},
			in:   "kind: ClusterConfiguration\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16 # pods\n  serviceSubnet: 10.96.0.0/12\n",
			want: "kind: ClusterConfiguration\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16,fd01::/48 # pods\n  serviceSubnet: 10.96.0.0/12\n"},
		{name: "double quotes kept", key: "clusterCIDR", path: []string{"clusterCIDR"},
			in: "clusterCIDR: \"10.244.0.0/16\"\nmode: iptables\n", want: "clusterCIDR: \"10.244.0.0/16,fd01::/48\"\nmode: iptables\n"},
		{name: "empty value", key: "clusterCIDR", path: []string{"clusterCIDR"},
			in: "clusterCIDR: \"\"\n", want: "clusterCIDR: \"10.244.0.0/16,fd01::/48\"\n"},
		{name: "CRLF", key: "clusterCIDR", path: []string{"clusterCIDR"},
			in: "mode: ipvs\r\nclusterCIDR: 10.244.0.0/16\r\n", want: "mode: ipvs\r\nclusterCIDR: 10.244.0.0/16,fd01::/48\r\n"},
		{name: "two lines", key: "clusterCIDR", path: []string{"clusterCIDR"},
			in: "clusterCIDR: a\nx:\n  clusterCIDR: b\n", err: "found 2 lines"},
		{name: "flow style", key: "podSubnet", path: []string{"networking", "podSubnet"},
			in: "networking: {podSubnet: 10.244.0.0/16}\n", err: "found 0 lines"},
		{name: "the key at another place", key: "podSubnet", path: []string{"networking", "podSubnet"},
			in: "networking:\n  dnsDomain: x\nother:\n  podSubnet: 10.244.0.0/16\n", err: "reads <nil>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value := "10.244.0.0/16,fd01::/48"
			got, err := editScalar(tc.in, tc.key, tc.path, value)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q (got %q)", err, tc.err, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v\nwant %q", got, err, tc.want)
			}
		})
	}
}

const (
	kubeadmConf = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/16\n"
	proxyConf   = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16\nmode: iptables\n"
)

// kubeadmWorld is a kubeadm cluster as the API shows it; dualServices says
// whether the apiserver gives Services an IPv6 address (its flags).
func kubeadmWorld(t *testing.T, dualServices *bool) *fake.Clientset {
	t.Helper()
	kc := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: KubeadmConfigMap, Namespace: "kube-system", UID: "u-kubeadm", ResourceVersion: "1"}, Data: map[string]string{KubeadmConfigKey: kubeadmConf}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: KubeProxyConfigMap, Namespace: "kube-system", UID: "u-proxy", ResourceVersion: "1"}, Data: map[string]string{KubeProxyConfigKey: proxyConf}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp-1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.10"}}}},
	)
	kc.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service).DeepCopy()
		svc.Spec.ClusterIPs = []string{"10.96.0.99"}
		if *dualServices {
			svc.Spec.ClusterIPs = append(svc.Spec.ClusterIPs, "fd02::99")
		}
		return true, svc, nil
	})
	return kc
}

// TestConvertKubeadmUpdatesTheAPIWaitsAndReverts: the ConfigMaps are
// edited (journalled) and the command waits for the host-side changes; a
// time-out names what is missing; once the hosts are changed a re-run
// finishes and restarts kube-proxy; revert restores the text byte for byte.
func TestConvertKubeadmUpdatesTheAPIWaitsAndReverts(t *testing.T) {
	defer func(p time.Duration) { pollEvery = p }(pollEvery)
	pollEvery = 10 * time.Millisecond
	ctx := context.Background()
	dual := false
	kc := kubeadmWorld(t, &dual)
	store := journal.NewStore(kc, "", "")
	var log bytes.Buffer
	req, err := ParseRequest(DefaultClusterNetwork, DefaultHostPrefix, DefaultServiceNetwork)
	if err != nil {
		t.Fatal(err)
	}
	ov := &Overlay{Kube: kc, Journal: store, Request: req, DryRun: cli.DryRunNone, Timeout: 200 * time.Millisecond, Command: "kubectl dualstack", Log: &log,
		Confirm: func(context.Context, string, string) error { return nil }}
	nodes := func() []corev1.Node {
		l, _ := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return l.Items
	}
	cm := func(name, key string) string {
		c, _ := kc.CoreV1().ConfigMaps("kube-system").Get(ctx, name, metav1.GetOptions{})
		return c.Data[key]
	}
	res := &Result{Cluster: platform.Info{Kind: platform.Kubeadm}}
	err = ov.ConvertKubeadm(ctx, res, nodes())
	if err == nil || res.Outcome != OutcomeTimedOut || !strings.Contains(res.Message, "cp-1: kubelet --node-ip") || !strings.Contains(res.Message, "kube-apiserver --service-cluster-ip-range") {
		t.Fatalf("before the host-side changes: %v\n%+v", err, res)
	}
	if got := cm(KubeadmConfigMap, KubeadmConfigKey); got != strings.Replace(strings.Replace(kubeadmConf, "10.244.0.0/16", "10.244.0.0/16,fd01::/48", 1), "10.96.0.0/16", "10.96.0.0/16,fd02::/112", 1) {
		t.Errorf("kubeadm-config after: %q", got)
	}
	if got := cm(KubeProxyConfigMap, KubeProxyConfigKey); got != strings.Replace(proxyConf, "10.244.0.0/16", "10.244.0.0/16,fd01::/48", 1) {
		t.Errorf("kube-proxy after: %q", got)
	}
	if !strings.Contains(log.String(), "kubelet: --node-ip 10.0.0.10 -> 10.0.0.10,<IPv6 of cp-1>") {
		t.Errorf("the host-side changes were not listed:\n%s", log.String())
	}
	ds, _ := kc.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if ds.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] != "" {
		t.Error("kube-proxy was restarted before the control plane had IPv6")
	}

	// The admin makes the host-side changes; the re-run's plan reads the
	// ConfigMaps as already done and only waits.
	dual = true
	n, _ := kc.CoreV1().Nodes().Get(ctx, "cp-1", metav1.GetOptions{})
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "2600:1f18::10"})
	if _, err := kc.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod made before the conversion, IPv4-only: the converted result
	// names its namespace.
	if _, err := kc.CoreV1().Pods("apps").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "apps"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.244.1.5"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	res = &Result{Cluster: platform.Info{Kind: platform.Kubeadm}}
	if err := ov.ConvertKubeadm(ctx, res, nodes()); err != nil || res.Outcome != OutcomeConverted {
		t.Fatalf("after the host-side changes: %v %+v", err, res)
	}
	if !res.PodsChecked || len(res.IPv4OnlyPods) != 1 || res.IPv4OnlyPods[0] != (NamespacePods{Namespace: "apps", Pods: 1}) {
		t.Errorf("IPv4-only pods after the conversion: checked %v, %+v; want apps (1)", res.PodsChecked, res.IPv4OnlyPods)
	}
	ds, _ = kc.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if ds.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Error("kube-proxy was not restarted")
	}

	// Once done, a re-run verifies and changes nothing (no second restart).
	at := ds.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"]
	ds.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = "earlier"
	if _, err := kc.AppsV1().DaemonSets("kube-system").Update(ctx, ds, metav1.UpdateOptions{}); err != nil || at == "" {
		t.Fatal(err)
	}
	res = &Result{Cluster: platform.Info{Kind: platform.Kubeadm}}
	if err := ov.ConvertKubeadm(ctx, res, nodes()); err != nil || res.Outcome != OutcomeAlreadyDualStack || !strings.Contains(res.Message, "gives Services both families") {
		t.Fatalf("re-run: %v %+v", err, res)
	}
	if ds, _ = kc.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{}); ds.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] != "earlier" {
		t.Error("a re-run restarted kube-proxy again")
	}

	res = &Result{Cluster: platform.Info{Kind: platform.Kubeadm}}
	if err := ov.RevertKubeadm(ctx, res); err != nil || res.Outcome != OutcomeReverted {
		t.Fatalf("revert: %v %+v", err, res)
	}
	if cm(KubeadmConfigMap, KubeadmConfigKey) != kubeadmConf || cm(KubeProxyConfigMap, KubeProxyConfigKey) != proxyConf {
		t.Errorf("not restored byte for byte:\n%q\n%q", cm(KubeadmConfigMap, KubeadmConfigKey), cm(KubeProxyConfigMap, KubeProxyConfigKey))
	}
	res = &Result{}
	if err := ov.RevertKubeadm(ctx, res); err != nil || res.Outcome != OutcomeNothingToRevert {
		t.Errorf("second revert: %v %+v", err, res)
	}
}

// TestConvertKubeadmDryRunAndKindChangeNothing: a client dry run and kind
// only plan; the plan marks what the tool would change.
func TestConvertKubeadmDryRunAndKindChangeNothing(t *testing.T) {
	ctx := context.Background()
	dual := false
	kc := kubeadmWorld(t, &dual)
	req, _ := ParseRequest(DefaultClusterNetwork, DefaultHostPrefix, DefaultServiceNetwork)
	for _, kind := range []platform.Kind{platform.Kubeadm, platform.KindKind} {
		ov := &Overlay{Kube: kc, Journal: journal.NewStore(kc, "", ""), Request: req, DryRun: cli.DryRunClient, Command: "kubectl dualstack", Log: &bytes.Buffer{}}
		if kind == platform.KindKind {
			ov.DryRun = cli.DryRunNone
		}
		res := &Result{Cluster: platform.Info{Kind: kind}}
		if err := ov.ConvertKubeadm(ctx, res, nil); err != nil || res.Outcome != OutcomePlanned {
			t.Fatalf("%s: %v %+v", kind, err, res)
		}
		inAPI := 0
		for _, c := range res.Plan.Changes {
			if c.InAPI {
				inAPI++
			}
		}
		if want := map[platform.Kind]int{platform.Kubeadm: 3, platform.KindKind: 0}[kind]; inAPI != want || len(res.Plan.Edits) != min(want, 2) {
			t.Errorf("%s: %d changes in the API, %d edits", kind, inAPI, len(res.Plan.Edits))
		}
	}
	for _, a := range kc.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" {
			t.Errorf("a plan wrote: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}
