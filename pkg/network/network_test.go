package network

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		cluster string
		host    int
		service string
		err     string // "" = valid
	}{
		{"fd01::/48", 64, "fd02::/112", ""},
		{"fd10::/56", 64, "fd20::/108", ""},
		{"fd10::/56", 120, "fd20::/120", ""},
		// A /32 with /64 node subnets is fine for OpenShift; the 16-bit
		// node-mask limit is kube-controller-manager's (CheckNodeMask).
		{"2001:db8::/32", 64, "fd02::/112", ""},
		{"10.128.0.0/14", 64, "fd02::/112", "not an IPv6 range"},
		{"::ffff:10.0.0.0/104", 120, "fd02::/112", "not an IPv6 range"},
		{"fd01::", 64, "fd02::/112", "is not a CIDR"},
		{"fd01::1/48", 64, "fd02::/112", "did you mean fd01::/48"},
		{"fd01::/48", 63, "fd02::/112", "between 64 and 126"},
		{"fd01::/48", 127, "fd02::/112", "between 64 and 126"},
		{"fd01::/64", 64, "fd02::/112", "must be longer than the cluster network's /64"},
		{"fd01::/48", 64, "fd02::/107", "between /108"},
		{"fd01::/48", 64, "fd02::/121", "between /108"},
		{"fd01::/48", 64, "172.30.0.0/16", "not an IPv6 range"},
		{"fd01::/48", 64, "fd01:0:0:1::/112", "overlap"},
	} {
		_, err := ParseRequest(tc.cluster, tc.host, tc.service)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s/%d %s: %v", tc.cluster, tc.host, tc.service, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s/%d %s: %v, want %q", tc.cluster, tc.host, tc.service, err, tc.err)
		}
	}
}

func TestCheckNodeMask(t *testing.T) {
	r, _ := ParseRequest("fd01::/48", 64, "fd02::/112")
	if err := r.CheckNodeMask(); err != nil {
		t.Fatal(err)
	}
	r, _ = ParseRequest("fd01::/40", 64, "fd02::/112")
	if err := r.CheckNodeMask(); err == nil || !strings.Contains(err.Error(), "at most 16") {
		t.Fatalf("24 bits: %v", err)
	}
}

func TestCheckReserved(t *testing.T) {
	defaults, err := OVNReserved(nil)
	if err != nil {
		t.Fatal(err)
	}
	custom, err := OVNReserved(func(f ...string) string {
		if strings.Join(f, ".") == "v6InternalSubnet" {
			return "fd55::/64" // the older field name still counts
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cluster, service string
		reserved         []Reserved
		err              string
	}{
		{"fd01::/48", "fd02::/112", defaults, ""},
		{"fd98::/48", "fd02::/112", defaults, "join subnet (default) fd98::/64"},
		{"fd01::/48", "fd97::/112", defaults, "transit switch subnet (default)"},
		{"fd69::/48", "fd02::/112", defaults, "masquerade subnet (default) fd69::/112"},
		{"fd98::/48", "fd02::/112", custom, ""},
		{"fd55::/48", "fd02::/112", custom, "join subnet (operator config) fd55::/64"},
		{"2600:1f18::/32", "fd02::/112", ReservedFromAddresses("node", []string{"10.0.0.1", "2600:1f18:1::10"}), "node 2600:1f18:1::10"},
		{"fd01::/48", "fd02::/112", ReservedFromCIDRs("existing service network", []string{"fd02::/112"}), "existing service network"},
	} {
		r, err := ParseRequest(tc.cluster, 64, tc.service)
		if err != nil {
			t.Fatal(err)
		}
		err = r.CheckReserved(tc.reserved)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s %s: %v, want %q", tc.cluster, tc.service, err, tc.err)
		}
	}
}

func networkObj(spec, status map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"spec": spec, "status": status}}
}

func TestPatches(t *testing.T) {
	spec := map[string]any{
		"networkType":    "OVNKubernetes",
		"clusterNetwork": []any{map[string]any{"cidr": "10.128.0.0/14", "hostPrefix": int64(23)}},
		"serviceNetwork": []any{"172.30.0.0/16"},
	}
	nc := NetworkConfigFrom(networkObj(spec, spec))
	r, _ := ParseRequest("fd01::/48", 64, "fd02::/112")
	b, _ := MarshalPatch(AddPatch(nc, r))
	want := `[{"op":"test","path":"/spec/clusterNetwork","value":[{"cidr":"10.128.0.0/14","hostPrefix":23}]},{"op":"add","path":"/spec/clusterNetwork/-","value":{"cidr":"fd01::/48","hostPrefix":64}},{"op":"test","path":"/spec/serviceNetwork","value":["172.30.0.0/16"]},{"op":"add","path":"/spec/serviceNetwork/-","value":"fd02::/112"}]`
	if string(b) != want {
		t.Fatalf("add patch\n got %s\nwant %s", b, want)
	}

	dual := map[string]any{
		"clusterNetwork": []any{map[string]any{"cidr": "10.128.0.0/14", "hostPrefix": int64(23)}, map[string]any{"cidr": "fd01::/48", "hostPrefix": int64(64)}},
		"serviceNetwork": []any{"172.30.0.0/16", "fd02::/112"},
	}
	nc = NetworkConfigFrom(networkObj(dual, spec))
	if !nc.SpecDualStack() || nc.StatusDualStack() {
		t.Fatal("spec dual, status single")
	}
	e := r.ClusterEntry()
	b, _ = json.Marshal(RevertPatch(nc, Added{ClusterNetwork: &e, ServiceNetwork: "fd02::/112"}))
	want = `[{"op":"test","path":"/spec/clusterNetwork/1","value":{"cidr":"fd01::/48","hostPrefix":64}},{"op":"remove","path":"/spec/clusterNetwork/1"},{"op":"test","path":"/spec/serviceNetwork/1","value":"fd02::/112"},{"op":"remove","path":"/spec/serviceNetwork/1"}]`
	if string(b) != want {
		t.Fatalf("revert patch\n got %s\nwant %s", b, want)
	}
	// Only what was recorded goes: an entry someone else added stays.
	if ops := RevertPatch(NetworkConfigFrom(networkObj(spec, spec)), Added{ClusterNetwork: &e, ServiceNetwork: "fd02::/112"}); ops != nil {
		t.Fatalf("nothing recorded is there: %v", ops)
	}
}

func TestConversionAllowed(t *testing.T) {
	for _, tc := range []struct {
		platform, version string
		ok                bool
	}{
		{"BareMetal", "4.16.9", true}, {"None", "4.18.0", true}, {"VSphere", "4.14.1", true},
		{"AWS", "4.10.67", true}, {"AWS", "4.11.0", false}, {"AWS", "4.12.40", false},
		{"GCP", "4.16.0", false}, {"Azure", "4.10.0", false}, {"AWS", "", false},
	} {
		ok, why := ConversionAllowed(platform.Info{InfrastructurePlatform: tc.platform, OpenShiftVersion: tc.version})
		if ok != tc.ok || (!ok && why == "") {
			t.Errorf("%s %s: %v %q", tc.platform, tc.version, ok, why)
		}
	}
}

func TestPreflight(t *testing.T) {
	nodes := []corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeInternalIP, Address: "2600::1"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.2"}}}},
	}
	info := platform.Info{Kind: platform.OpenShift, InfrastructurePlatform: "AWS", OpenShiftVersion: "4.16.9", Cloud: "aws"}
	got := Preflight(info, &NetworkConfig{NetworkType: "OpenShiftSDN"}, OperatorStatus{Degraded: "False"}, nodes, "oc dualstack")
	checks := map[string]Problem{}
	for _, p := range got {
		checks[p.Check] = p
	}
	if len(got) != 3 || checks["platform"].Forceable != true || checks["node-internal-ips"].Forceable || checks["network-type"].Forceable {
		t.Fatalf("problems: %+v", got)
	}
	if !strings.Contains(checks["node-internal-ips"].Fix, "oc dualstack aws apply") || !strings.Contains(checks["node-internal-ips"].Message, "1 of 2 nodes") {
		t.Errorf("node fix: %+v", checks["node-internal-ips"])
	}
	if !strings.Contains(checks["platform"].Fix, "DualStackIPv4Primary") {
		t.Errorf("platform fix: %+v", checks["platform"])
	}
	info.InfrastructurePlatform = "BareMetal"
	if got := Preflight(info, &NetworkConfig{NetworkType: "OVNKubernetes"}, OperatorStatus{}, nodes[:1], "oc dualstack"); len(got) != 0 {
		t.Fatalf("BareMetal, OVN, dual nodes: %+v", got)
	}
}

func TestKubeadmPlanFromFlags(t *testing.T) {
	ctx := context.Background()
	kc := fake.NewClientset(
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-cp", Namespace: "kube-system", Labels: map[string]string{"component": "kube-apiserver"}},
			Spec: corev1.PodSpec{NodeName: "cp", Containers: []corev1.Container{{Command: []string{"kube-apiserver", "--service-cluster-ip-range=10.96.0.0/12"}}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kube-controller-manager-cp", Namespace: "kube-system", Labels: map[string]string{"component": "kube-controller-manager"}},
			Spec: corev1.PodSpec{NodeName: "cp", Containers: []corev1.Container{{Command: []string{"kube-controller-manager"}, Args: []string{"--cluster-cidr", "10.244.0.0/16", "--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112"}}}}},
	)
	f, err := ReadClusterFlags(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	if f.ControllerClusterCIDR != "10.244.0.0/16" || f.APIServerServiceRange != "10.96.0.0/12" {
		t.Fatalf("flags: %+v", f)
	}
	r, _ := ParseRequest("fd01::/48", 64, "fd02::/112")
	p := KubeadmPlan(platform.KindKind, f, r, nil)
	got := map[string]string{}
	for _, c := range p.Changes {
		got[c.Component+" "+c.Setting] = c.Desired
	}
	if got["kube-apiserver --service-cluster-ip-range"] != "10.96.0.0/12,fd02::/112" || got["kube-controller-manager --cluster-cidr"] != "10.244.0.0/16,fd01::/48" {
		t.Fatalf("plan: %v", got)
	}
	if _, ok := got["kube-controller-manager --service-cluster-ip-range"]; ok {
		t.Fatal("an already dual-stack setting must not be planned")
	}
	if !strings.Contains(p.KindConfig, "ipFamily: dual") || !strings.Contains(p.KindConfig, `podSubnet: "10.244.0.0/16,fd01::/48"`) {
		t.Fatalf("kind config:\n%s", p.KindConfig)
	}
}

func TestKubeadmPlanLeavesIPv6OnlyAlone(t *testing.T) {
	f := &ClusterFlags{APIServerNodes: []string{"cp"}, APIServerServiceRange: "fd02::/112",
		ControllerNodes: []string{"cp"}, ControllerClusterCIDR: "fd01::/48", ControllerServiceRange: "fd02::/112",
		ProxyFound: true, ProxyClusterCIDR: "fd01::/48"}
	r, _ := ParseRequest("fd01::/48", 64, "fd02::/112")
	nodes := []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "cp"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "fd00::2"}}}}}
	p := KubeadmPlan(platform.Kubeadm, f, r, nodes)
	if len(p.Changes) != 0 {
		t.Fatalf("an IPv6-only cluster has nothing this tool adds, got %+v", p.Changes)
	}
	notes := strings.Join(p.Notes, "\n")
	for _, want := range []string{"IPv6-only settings are left as they are", "kube-apiserver --service-cluster-ip-range is fd02::/112", "node cp has only the IPv6 InternalIP fd00::2"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

func TestGoal(t *testing.T) {
	settled := OperatorStatus{Available: "True", Progressing: "False", Degraded: "False"}
	spec := map[string]any{
		"clusterNetwork": []any{map[string]any{"cidr": "10.128.0.0/14", "hostPrefix": int64(23)}, map[string]any{"cidr": "fd01::/48", "hostPrefix": int64(64)}},
		"serviceNetwork": []any{"172.30.0.0/16", "fd02::/112"},
	}
	single := map[string]any{"clusterNetwork": []any{map[string]any{"cidr": "10.128.0.0/14"}}, "serviceNetwork": []any{"172.30.0.0/16"}}
	g := Goal{PresentCluster: []string{"fd01::/48"}, PresentService: []string{"fd02::/112"}}
	if g.reached(Observed{Network: NetworkConfigFrom(networkObj(spec, single)), Operator: settled}) {
		t.Fatal("settled but status without IPv6 is not success")
	}
	if g.reached(Observed{Network: NetworkConfigFrom(networkObj(spec, spec)), Operator: OperatorStatus{Available: "True", Progressing: "True", Degraded: "False"}}) {
		t.Fatal("still progressing is not success")
	}
	if !g.reached(Observed{Network: NetworkConfigFrom(networkObj(spec, spec)), Operator: settled}) {
		t.Fatal("status with IPv6 and a settled operator is success")
	}
}
