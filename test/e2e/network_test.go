package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

var (
	networksGVR         = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "networks"}
	clusterOperatorsGVR = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "clusteroperators"}
	operatorNetworksGVR = schema.GroupVersionResource{Group: "operator.openshift.io", Version: "v1", Resource: "networks"}
)

// networkJSON mirrors the stable fields of `network -o json`.
type networkJSON struct {
	Cluster struct {
		Kind string `json:"kind"`
	} `json:"cluster"`
	Mode    string `json:"mode"`
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	Message string `json:"message"`
	Added   struct {
		ClusterNetwork struct {
			CIDR       string `json:"cidr"`
			HostPrefix int    `json:"hostPrefix"`
		} `json:"clusterNetwork"`
		ServiceNetwork string `json:"serviceNetwork"`
	} `json:"added"`
	Patch []struct {
		Op, Path string
		Value    any
	} `json:"patch"`
	Preflight []struct {
		Check, Message, Fix string
		Forceable           bool
	} `json:"preflight"`
	Status *struct {
		ClusterNetwork []struct {
			CIDR string `json:"cidr"`
		} `json:"clusterNetwork"`
		ServiceNetwork []string `json:"serviceNetwork"`
	} `json:"status"`
	Operator *struct {
		Available, Progressing, Degraded, Reason, Message string
	} `json:"operator"`
	IPv4OnlyPods []struct {
		Namespace string
		Pods      int
	} `json:"ipv4OnlyPods"`
	Plan *struct {
		Changes []struct {
			Component, Where, Setting, Current, Desired, Note string
			InAPI                                             bool `json:"inAPI"`
		} `json:"changes"`
		Edits []struct {
			Name, Key, Original, New string
		} `json:"edits"`
		Notes      []string `json:"notes"`
		KindConfig string   `json:"kindConfig"`
	} `json:"plan"`
}

func parseNetwork(t *testing.T, r result) networkJSON {
	t.Helper()
	var n networkJSON
	if err := json.Unmarshal([]byte(r.Stdout), &n); err != nil {
		t.Fatalf("network -o json is not JSON: %v\n%s", err, r)
	}
	return n
}

// openShiftCluster is an installed OpenShift cluster, IPv4-only unless the
// spec says otherwise, with 3 nodes and the network operator simulator.
type openShiftCluster struct {
	api      *harness.APIServer
	operator *harness.NetworkOperator
}

type clusterOpts struct {
	platform, version, ipFamily string
	nodesIPv6                   bool
	dualNetwork                 bool
	apiOpts                     harness.APIServerOptions
	rolloutDelay                time.Duration
}

func newOpenShift(t *testing.T, o clusterOpts) *openShiftCluster {
	t.Helper()
	ctx := context.Background()
	api := startAPIServer(t, o.apiOpts)
	spec := harness.OpenShiftSpec{
		InfraID: "demo-x7k2p", Version: o.version, Platform: o.platform, Region: "us-east-1", IPFamily: o.ipFamily,
		NetworkType:    "OVNKubernetes",
		ClusterNetwork: []harness.ClusterNetworkEntry{{CIDR: "10.128.0.0/14", HostPrefix: 23}},
		ServiceNetwork: []string{"172.30.0.0/16"},
	}
	if o.dualNetwork {
		spec.ClusterNetwork = append(spec.ClusterNetwork, harness.ClusterNetworkEntry{CIDR: "fd01::/48", HostPrefix: 64})
		spec.ServiceNetwork = append(spec.ServiceNetwork, "fd02::/112")
	}
	if err := harness.CreateOpenShiftConfig(ctx, api.Dynamic, spec); err != nil {
		t.Fatal(err)
	}
	var nodes []harness.NodeSpec
	for i := range 3 {
		ips := []string{fmt.Sprintf("10.0.%d.10", i)}
		if o.nodesIPv6 {
			ips = append(ips, fmt.Sprintf("2600:1f18:abcd:%x::10", i))
		}
		name := fmt.Sprintf("node-%d.example.internal", i)
		nodes = append(nodes, harness.NodeSpec{Name: name, Hostname: name, InternalIPs: ips,
			Labels: map[string]string{"node-role.kubernetes.io/worker": ""}})
	}
	if err := harness.CreateNodes(ctx, api.Kube, nodes); err != nil {
		t.Fatal(err)
	}
	op := harness.StartNetworkOperator(ctx, api, harness.NetworkOperatorOptions{RolloutDelay: o.rolloutDelay})
	t.Cleanup(op.Stop)
	return &openShiftCluster{api: api, operator: op}
}

// runningPod creates a running pod with the given pod IPs, as the kubelet
// would report it.
func runningPod(t *testing.T, api *harness.APIServer, ns, name string, ips ...string) {
	t.Helper()
	ctx := context.Background()
	if err := harness.EnsureNamespace(ctx, api.Kube, ns, nil); err != nil {
		t.Fatal(err)
	}
	pod, err := api.Kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{NodeName: "node-0.example.internal", Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	for _, ip := range ips {
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	pod.Status.PodIP = ips[0]
	if _, err := api.Kube.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func getNetwork(t *testing.T, api *harness.APIServer) (spec, status []string) {
	t.Helper()
	obj, err := api.Dynamic.Resource(networksGVR).Get(context.Background(), "cluster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	read := func(section string) []string {
		var out []string
		cn, _, _ := unstructured.NestedSlice(obj.Object, section, "clusterNetwork")
		for _, e := range cn {
			out = append(out, e.(map[string]any)["cidr"].(string))
		}
		sn, _, _ := unstructured.NestedStringSlice(obj.Object, section, "serviceNetwork")
		return append(out, sn...)
	}
	return read("spec"), read("status")
}

func operatorConditions(t *testing.T, api *harness.APIServer) map[string]string {
	t.Helper()
	obj, err := api.Dynamic.Resource(clusterOperatorsGVR).Get(context.Background(), "network", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		out[m["type"].(string)] = m["status"].(string)
		if m["type"] == "Degraded" {
			out["reason"], _ = m["reason"].(string)
		}
	}
	return out
}

func expectList(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

func TestNetworkBareMetalConvertsOnlyOnceStatusShowsIt(t *testing.T) {
	c := newOpenShift(t, clusterOpts{platform: "BareMetal", version: "4.16.9", nodesIPv6: true, rolloutDelay: time.Second})
	runningPod(t, c.api, "shop", "cart-1", "10.128.2.5")
	runningPod(t, c.api, "shop", "cart-2", "10.128.2.6")
	runningPod(t, c.api, "dual", "ok", "10.128.2.7", "fd01:0:0:1::7")
	kc := c.api.Kubeconfig

	// Dry runs change nothing; server dry-run has the API server check the patch.
	r := plugin(t, kc, nil, "network", "--dry-run=client")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"path": "/spec/clusterNetwork/-"`) || !strings.Contains(r.Stdout, `"op": "test"`) {
		t.Fatalf("client dry run:\n%s", r)
	}
	r = plugin(t, kc, nil, "network", "--dry-run=server", "-o", "json")
	if n := parseNetwork(t, r); r.Code != 0 || n.Outcome != "dry-run" || !strings.Contains(n.Message, "fd01::/48") {
		t.Fatalf("server dry run:\n%s", r)
	}
	// Without --yes and without a terminal it never prompts and never patches.
	r = plugin(t, kc, nil, "network")
	if r.Code != 1 || !strings.Contains(r.Stderr, "--yes") {
		t.Fatalf("unconfirmed:\n%s", r)
	}
	spec, _ := getNetwork(t, c.api)
	expectList(t, "spec after dry runs", spec, "10.128.0.0/14", "172.30.0.0/16")

	start := time.Now()
	r = plugin(t, kc, nil, "network", "--yes", "-o", "json", "--timeout", "30s")
	n := parseNetwork(t, r)
	if r.Code != 0 || n.Outcome != "converted" || n.Mode != "openshift" {
		t.Fatalf("conversion:\n%s", r)
	}
	if time.Since(start) < time.Second {
		t.Fatalf("reported success before the operator's 1s rollout was over")
	}
	// Progress went through Progressing=True before success was reported.
	if !strings.Contains(r.Stderr, "Progressing=True") || !strings.Contains(r.Stderr, "waiting for the network operator") {
		t.Fatalf("no progress line showing the rollout:\n%s", r.Stderr)
	}
	spec, status := getNetwork(t, c.api)
	expectList(t, "spec", spec, "10.128.0.0/14", "fd01::/48", "172.30.0.0/16", "fd02::/112")
	expectList(t, "status", status, "10.128.0.0/14", "fd01::/48", "172.30.0.0/16", "fd02::/112")
	if n.Operator == nil || n.Operator.Available != "True" || n.Operator.Progressing != "False" || n.Operator.Degraded != "False" {
		t.Fatalf("operator in result: %+v", n.Operator)
	}
	if len(n.IPv4OnlyPods) != 1 || n.IPv4OnlyPods[0].Namespace != "shop" || n.IPv4OnlyPods[0].Pods != 2 {
		t.Fatalf("IPv4-only pods: %+v", n.IPv4OnlyPods)
	}

	// Idempotent: a second run has nothing to do.
	r = plugin(t, kc, nil, "network", "--yes")
	if r.Code != 0 || !strings.Contains(r.Stdout, "already dual-stack") {
		t.Fatalf("second run:\n%s", r)
	}

	// Revert removes exactly what was added; the operator goes back to IPv4-only.
	r = plugin(t, kc, nil, "network", "--revert", "--yes", "-o", "json", "--timeout", "30s")
	if n := parseNetwork(t, r); r.Code != 0 || n.Outcome != "reverted" {
		t.Fatalf("revert:\n%s", r)
	}
	spec, status = getNetwork(t, c.api)
	expectList(t, "spec after revert", spec, "10.128.0.0/14", "172.30.0.0/16")
	expectList(t, "status after revert", status, "10.128.0.0/14", "172.30.0.0/16")
	r = plugin(t, kc, nil, "network", "--revert", "--yes")
	if r.Code != 0 || !strings.Contains(r.Stdout, "nothing to revert") {
		t.Fatalf("second revert:\n%s", r)
	}
}

func TestNetworkAWSRefusedByPreflightForceFailsAndRevertWorks(t *testing.T) {
	c := newOpenShift(t, clusterOpts{platform: "AWS", version: "4.12.40", ipFamily: "IPv4"})
	kc := c.api.Kubeconfig

	// Nodes without IPv6 and the AWS refusal: both reported, nothing patched.
	r := plugin(t, kc, nil, "network", "--yes", "-o", "json")
	n := parseNetwork(t, r)
	if r.Code != 1 || n.Outcome != "preflight-failed" || len(n.Preflight) != 2 {
		t.Fatalf("preflight:\n%s", r)
	}
	for _, want := range []string{"aws apply", "refuses converting an installed cluster", "InvalidClusterConfig", "DualStackIPv4Primary", "--force"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("preflight message lacks %q:\n%s", want, r.Stderr)
		}
	}
	// --force does not override a missing prerequisite.
	if r = plugin(t, kc, nil, "network", "--yes", "--force"); r.Code != 1 || !strings.Contains(r.Stderr, "preflight FAIL node-internal-ips") {
		t.Fatalf("--force with IPv4-only nodes:\n%s", r)
	}
	spec, _ := getNetwork(t, c.api)
	expectList(t, "spec after refusal", spec, "10.128.0.0/14", "172.30.0.0/16")

	// The underlay is done (nodes have IPv6): only the platform policy is left.
	ctx := context.Background()
	nodes, err := c.api.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, node := range nodes.Items {
		node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("2600:1f18:abcd:%x::10", i)})
		if _, err := c.api.Kube.CoreV1().Nodes().UpdateStatus(ctx, &node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r = plugin(t, kc, nil, "network", "--yes")
	if r.Code != 1 || !strings.Contains(r.Stderr, "preflight FAIL platform") {
		t.Fatalf("AWS without --force:\n%s", r)
	}

	// --force: patched, refused by the operator, reported as a failure with the way back.
	r = plugin(t, kc, nil, "network", "--yes", "--force", "-o", "json", "--timeout", "30s")
	n = parseNetwork(t, r)
	if r.Code != 1 || n.Outcome != "degraded" || n.Operator == nil || n.Operator.Reason != "InvalidClusterConfig" {
		t.Fatalf("--force on AWS:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "AWS does not allow conversion to dual-stack cluster") || !strings.Contains(r.Stderr, "kubectl dualstack network --revert --yes") {
		t.Fatalf("failure must show the operator's message and the revert command:\n%s", r.Stderr)
	}
	spec, status := getNetwork(t, c.api)
	expectList(t, "spec after --force", spec, "10.128.0.0/14", "fd01::/48", "172.30.0.0/16", "fd02::/112")
	expectList(t, "status after --force (unchanged)", status, "10.128.0.0/14", "172.30.0.0/16")

	// A re-run does not patch again: it sees the request pending and the operator degraded.
	if r = plugin(t, kc, nil, "network", "--yes", "--force"); r.Code != 1 || !strings.Contains(r.Stderr, "already requested") {
		t.Fatalf("re-run while degraded:\n%s", r)
	}

	r = plugin(t, kc, nil, "network", "--revert", "--yes", "--timeout", "30s")
	if r.Code != 0 || !strings.Contains(r.Stdout, "removed the IPv6 entries") {
		t.Fatalf("revert:\n%s", r)
	}
	spec, _ = getNetwork(t, c.api)
	expectList(t, "spec after revert", spec, "10.128.0.0/14", "172.30.0.0/16")
	if conds := operatorConditions(t, c.api); conds["Degraded"] != "False" || conds["Available"] != "True" {
		t.Fatalf("operator after revert: %v", conds)
	}
}

func TestNetworkBadRangesExitTwo(t *testing.T) {
	c := newOpenShift(t, clusterOpts{platform: "BareMetal", version: "4.16.9", nodesIPv6: true})
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-network", "10.200.0.0/16"}, "not an IPv6 range"},
		{[]string{"--cluster-network", "fd01::1/48"}, "did you mean fd01::/48"},
		{[]string{"--service-network", "nonsense"}, "is not a CIDR"},
		{[]string{"--host-prefix", "56"}, "must be between 64 and 126"},
		{[]string{"--cluster-network", "fd01::/64", "--host-prefix", "64"}, "must be longer than the cluster network's /64"},
		{[]string{"--service-network", "fd02::/96"}, "between /108"},
		{[]string{"--cluster-network", "fd02::/48"}, "overlap"},
		{[]string{"--cluster-network", "fd98::/48"}, "OVN-Kubernetes join subnet"},
		{[]string{"--service-network", "fd69::/112"}, "OVN-Kubernetes masquerade subnet"},
		{[]string{"--cluster-network", "2600:1f18:abcd::/48"}, "IPv6 InternalIP of a node"},
	} {
		r := plugin(t, c.api.Kubeconfig, nil, append([]string{"network", "--yes"}, tc.args...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%v: want exit 2 with %q:\n%s", tc.args, tc.want, r)
		}
	}

	// A custom OVN-Kubernetes join subnet in the operator config replaces the default.
	_, err := c.api.Dynamic.Resource(operatorNetworksGVR).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operator.openshift.io/v1", "kind": "Network", "metadata": map[string]any{"name": "cluster"},
		"spec": map[string]any{"defaultNetwork": map[string]any{"type": "OVNKubernetes",
			"ovnKubernetesConfig": map[string]any{"ipv6": map[string]any{"internalJoinSubnet": "fd55::/64"}}}},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := plugin(t, c.api.Kubeconfig, nil, "network", "--yes", "--cluster-network", "fd55::/48")
	if r.Code != 2 || !strings.Contains(r.Stderr, "OVN-Kubernetes join subnet (operator config) fd55::/64") {
		t.Errorf("custom join subnet: want exit 2:\n%s", r)
	}
	spec, _ := getNetwork(t, c.api)
	expectList(t, "spec", spec, "10.128.0.0/14", "172.30.0.0/16")
}

// patchHookProxy forwards to the apiserver with its credentials and runs
// beforePatch once, just before the first PATCH of the Network config
// reaches the server: a concurrent edit landing between read and patch.
func patchHookProxy(t *testing.T, cfg *rest.Config, beforePatch func()) *rest.Config {
	t.Helper()
	target, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = transport
	var fired atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/networks/cluster") && fired.CompareAndSwap(false, true) {
			beforePatch()
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &rest.Config{Host: "http://" + ln.Addr().String()}
}

func TestNetworkConcurrentEditIsReportedNotOverwritten(t *testing.T) {
	c := newOpenShift(t, clusterOpts{platform: "BareMetal", version: "4.16.9", nodesIPv6: true})
	ctx := context.Background()
	cfg := patchHookProxy(t, c.api.Config, func() {
		// Someone else edits the service network meanwhile.
		_, err := c.api.Dynamic.Resource(networksGVR).Patch(ctx, "cluster", types.JSONPatchType,
			[]byte(`[{"op":"add","path":"/spec/serviceNetwork/-","value":"fd77::/112"}]`), metav1.PatchOptions{})
		if err != nil {
			t.Errorf("concurrent edit: %v", err)
		}
	})
	kc := t.TempDir() + "/kubeconfig"
	if err := harness.WriteKubeconfig(kc, cfg, "proxied"); err != nil {
		t.Fatal(err)
	}
	r := plugin(t, kc, nil, "network", "--yes", "-o", "json", "--timeout", "10s")
	n := parseNetwork(t, r)
	if r.Code != 1 || n.Outcome != "conflict" || !strings.Contains(r.Stderr, "changed by someone else") {
		t.Fatalf("concurrent edit:\n%s", r)
	}
	spec, _ := getNetwork(t, c.api)
	// The other edit stands; ours did not land on top of it.
	expectList(t, "spec", spec, "10.128.0.0/14", "172.30.0.0/16", "fd77::/112")
	// Nothing to revert: the journal records the patch as failed.
	if r = plugin(t, c.api.Kubeconfig, nil, "network", "--revert", "--yes"); r.Code != 0 || !strings.Contains(r.Stdout, "nothing to revert") {
		t.Fatalf("revert after conflict:\n%s", r)
	}
}

func TestNetworkForbiddenNamesVerbAndResource(t *testing.T) {
	alice := harness.TokenUser{Name: "alice", Token: "alice-token-0123456789"}
	c := newOpenShift(t, clusterOpts{platform: "BareMetal", version: "4.16.9", nodesIPv6: true,
		apiOpts: harness.APIServerOptions{RBAC: true, TokenUsers: []harness.TokenUser{alice}}})
	ctx := context.Background()
	read := []string{"get", "list", "watch"}
	if err := harness.GrantClusterRole(ctx, c.api.Kube, "dualstack-reader", alice.Name, []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes", "pods"}, Verbs: read},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "create", "update"}},
		{APIGroups: []string{"config.openshift.io"}, Resources: []string{"infrastructures", "clusterversions", "networks", "clusteroperators"}, Verbs: read},
		{APIGroups: []string{"operator.openshift.io"}, Resources: []string{"networks"}, Verbs: read},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}}, // the lock
	}); err != nil {
		t.Fatal(err)
	}
	kc, err := c.api.UserKubeconfig(t.TempDir(), alice)
	if err != nil {
		t.Fatal(err)
	}
	r := plugin(t, kc, nil, "network", "--yes")
	if r.Code != 1 || !strings.Contains(r.Stderr, `cannot patch resource "networks" in API group "config.openshift.io"`) ||
		!strings.Contains(r.Stderr, "ask for this permission") {
		t.Fatalf("forbidden:\n%s", r)
	}
	spec, _ := getNetwork(t, c.api)
	expectList(t, "spec", spec, "10.128.0.0/14", "172.30.0.0/16")
}

func TestNetworkTimeoutWhileOperatorStuck(t *testing.T) {
	c := newOpenShift(t, clusterOpts{platform: "BareMetal", version: "4.16.9", nodesIPv6: true})
	c.operator.Pause()
	start := time.Now()
	r := plugin(t, c.api.Kubeconfig, nil, "network", "--yes", "-o", "json", "--timeout", "2s")
	n := parseNetwork(t, r)
	if r.Code != 1 || n.Outcome != "timed-out" || !strings.Contains(n.Message, "did not finish within --timeout 2s") {
		t.Fatalf("timeout:\n%s", r)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("--timeout 2s took %s", d)
	}
	if !strings.Contains(r.Stderr, "network --revert --yes") {
		t.Fatalf("timeout must say how to undo:\n%s", r.Stderr)
	}
	// Once the operator catches up, a re-run finds the request and finishes.
	c.operator.Resume()
	r = plugin(t, c.api.Kubeconfig, nil, "network", "--yes", "-o", "json", "--timeout", "30s")
	if n := parseNetwork(t, r); r.Code != 0 || n.Outcome != "converted" {
		t.Fatalf("after resume:\n%s", r)
	}
}

func TestNetworkAlreadyDualStackIsANoOp(t *testing.T) {
	c := newOpenShift(t, clusterOpts{platform: "BareMetal", version: "4.16.9", nodesIPv6: true, dualNetwork: true})
	r := plugin(t, c.api.Kubeconfig, nil, "network", "--yes", "-o", "json")
	if n := parseNetwork(t, r); r.Code != 0 || n.Outcome != "already-dual-stack" || len(n.Patch) != 0 {
		t.Fatalf("dual-stack network:\n%s", r)
	}
	c2 := newOpenShift(t, clusterOpts{platform: "AWS", version: "4.20.2", ipFamily: "DualStackIPv4Primary", nodesIPv6: true})
	r = plugin(t, c2.api.Kubeconfig, nil, "network", "--yes")
	if r.Code != 0 || !strings.Contains(r.Stdout, "installed dual-stack (platformStatus.aws.ipFamily DualStackIPv4Primary)") {
		t.Fatalf("installed dual-stack:\n%s", r)
	}
}

// staticPod creates the mirror pod the kubelet publishes for a static pod.
func staticPod(t *testing.T, api *harness.APIServer, component, node string, command ...string) {
	t.Helper()
	_, err := api.Kube.CoreV1().Pods("kube-system").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: component + "-" + node, Namespace: "kube-system",
			Labels:      map[string]string{"component": component, "tier": "control-plane"},
			Annotations: map[string]string{"kubernetes.io/config.mirror": "0123abcd", "kubernetes.io/config.source": "file"},
		},
		Spec: corev1.PodSpec{NodeName: node, HostNetwork: true, Containers: []corev1.Container{{
			Name: component, Image: "registry.k8s.io/" + component + ":v1.37.2", Command: command,
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNetworkKubeadmPlanFromStaticPods(t *testing.T) {
	ctx := context.Background()
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16"})
	if err := harness.EnsureNamespace(ctx, api.Kube, "kube-system", nil); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]map[string]string{
		"kubeadm-config": {"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/16\n"},
		"kube-proxy":     {"config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16\nmode: iptables\n"},
	} {
		if _, err := api.Kube.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	staticPod(t, api, "kube-apiserver", "cp-1", "kube-apiserver", "--advertise-address=10.0.0.10", "--service-cluster-ip-range=10.96.0.0/16", "--secure-port=6443")
	staticPod(t, api, "kube-controller-manager", "cp-1", "kube-controller-manager", "--allocate-node-cidrs=true",
		"--cluster-cidr=10.244.0.0/16", "--service-cluster-ip-range=10.96.0.0/16", "--node-cidr-mask-size=24")
	if err := harness.CreateNodes(ctx, api.Kube, []harness.NodeSpec{
		{Name: "cp-1", InternalIPs: []string{"10.0.0.10", "2600:1f18:1::10"}},
		{Name: "worker-1", InternalIPs: []string{"10.0.0.11"}},
	}); err != nil {
		t.Fatal(err)
	}

	r := plugin(t, api.Kubeconfig, nil, "network", "--dry-run=client", "-o", "json")
	n := parseNetwork(t, r)
	if r.Code != 0 || n.Mode != "kubeadm" || n.Outcome != "planned" || n.Plan == nil {
		t.Fatalf("kubeadm plan:\n%s", r)
	}
	got := map[string]string{}
	for _, ch := range n.Plan.Changes {
		got[ch.Component+" "+ch.Setting] = ch.Current + " -> " + ch.Desired
	}
	for k, v := range map[string]string{
		"kube-apiserver --service-cluster-ip-range":          "10.96.0.0/16 -> 10.96.0.0/16,fd02::/112",
		"kube-controller-manager --cluster-cidr":             "10.244.0.0/16 -> 10.244.0.0/16,fd01::/48",
		"kube-controller-manager --service-cluster-ip-range": "10.96.0.0/16 -> 10.96.0.0/16,fd02::/112",
		"kube-controller-manager --node-cidr-mask-size-ipv4": " -> 24",
		"kube-controller-manager --node-cidr-mask-size-ipv6": " -> 64",
		"kube-proxy clusterCIDR":                             "10.244.0.0/16 -> 10.244.0.0/16,fd01::/48",
		"kubeadm-config networking.podSubnet":                "10.244.0.0/16 -> 10.244.0.0/16,fd01::/48",
		"kubeadm-config networking.serviceSubnet":            "10.96.0.0/16 -> 10.96.0.0/16,fd02::/112",
		"kubelet --node-ip":                                  "10.0.0.11 -> 10.0.0.11,<IPv6 of worker-1>",
	} {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(n.Plan.Changes) != 9 {
		t.Errorf("%d changes, want 9: %v", len(n.Plan.Changes), got)
	}
	if !strings.Contains(strings.Join(n.Plan.Notes, "\n"), "does not edit") {
		t.Errorf("the plan must say that nothing on the hosts is changed: %v", n.Plan.Notes)
	}
	// The table names where each change goes; nothing is changed.
	r = plugin(t, api.Kubeconfig, nil, "network", "--dry-run=client")
	if r.Code != 0 || !strings.Contains(r.Stdout, "/etc/kubernetes/manifests/kube-apiserver.yaml on cp-1") || !strings.Contains(r.Stdout, "nothing was changed") {
		t.Fatalf("plan table:\n%s", r)
	}
	// kubeadm's node mask limit: at most 16 bits more than the cluster CIDR.
	if r = plugin(t, api.Kubeconfig, nil, "network", "--cluster-network", "fd01::/40"); r.Code != 2 || !strings.Contains(r.Stderr, "kube-controller-manager allows at most 16") {
		t.Fatalf("node mask too long:\n%s", r)
	}
	if r = plugin(t, api.Kubeconfig, nil, "network", "--revert"); r.Code != 0 || !strings.Contains(r.Stdout, "nothing to revert") {
		t.Fatalf("--revert on kubeadm with nothing journalled:\n%s", r)
	}
}
