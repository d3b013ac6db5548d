package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// statusJSON mirrors the stable fields of `status -o json`.
type statusJSON struct {
	Cluster struct {
		Kind              string `json:"kind"`
		KubernetesVersion string `json:"kubernetesVersion"`
		OpenShiftVersion  string `json:"openshiftVersion"`
		Cloud             string `json:"cloud"`
		AWSRegion         string `json:"awsRegion"`
		InfraID           string `json:"infraID"`
	} `json:"cluster"`
	Checks []struct {
		Layer       string `json:"layer"`
		Name        string `json:"name"`
		Status      string `json:"status"`
		Message     string `json:"message"`
		Remediation string `json:"remediation"`
	} `json:"checks"`
	Summary struct {
		Total, Pass, Warn, Fail, Skip int
	} `json:"summary"`
}

func parseStatus(t *testing.T, r result) statusJSON {
	t.Helper()
	var s statusJSON
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, r)
	}
	return s
}

// verdicts maps check name to status.
func (s statusJSON) verdicts() map[string]string {
	m := map[string]string{}
	for _, c := range s.Checks {
		m[c.Name] = c.Status
	}
	return m
}

func expectVerdicts(t *testing.T, s statusJSON, want map[string]string) {
	t.Helper()
	got := s.verdicts()
	for name, status := range want {
		if got[name] != status {
			t.Errorf("check %s: %q, want %q (all: %v)", name, got[name], status, got)
		}
	}
}

// kindNodes are what kind registers for a dual-stack cluster.
func kindNodes(n int, dual bool) []harness.NodeSpec {
	var nodes []harness.NodeSpec
	for i := range n {
		name := fmt.Sprintf("kind-worker%d", i+1)
		if i == 0 {
			name = "kind-control-plane"
		}
		ips := []string{fmt.Sprintf("172.18.%d.%d", i/250, i%250+2)}
		cidrs := []string{fmt.Sprintf("10.%d.%d.0/24", 244+i/256, i%256)}
		if dual {
			ips = append(ips, fmt.Sprintf("fc00:f853:ccd:e793::%x", i+2))
			cidrs = append(cidrs, fmt.Sprintf("fd00:10:244:%x::/64", i))
		}
		nodes = append(nodes, harness.NodeSpec{Name: name, ProviderID: "kind://docker/kind/" + name, InternalIPs: ips, PodCIDRs: cidrs, Hostname: name})
	}
	return nodes
}

// dualStackGateway is an Istio ingress gateway Service already converted:
// RequireDualStack, both families, dualstack NLB annotations.
func dualStackGateway(ctx context.Context, t *testing.T, api *harness.APIServer) {
	t.Helper()
	policy := corev1.IPFamilyPolicyRequireDualStack
	if err := harness.EnsureNamespace(ctx, api.Kube, harness.IstioNamespace, nil); err != nil {
		t.Fatal(err)
	}
	_, err := api.Kube.CoreV1().Services(harness.IstioNamespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: harness.IngressGatewayName, Labels: map[string]string{"istio": "ingressgateway"},
			Annotations: map[string]string{
				"service.beta.kubernetes.io/aws-load-balancer-type":            "nlb",
				"service.beta.kubernetes.io/aws-load-balancer-ip-address-type": "dualstack",
			}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilyPolicy: &policy,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol},
			Selector:   map[string]string{"istio": "ingressgateway"}, Ports: []corev1.ServicePort{{Name: "http2", Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func kubeadmConfigMap(ctx context.Context, t *testing.T, api *harness.APIServer) {
	t.Helper()
	_, err := api.Kube.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kubeadm-config", Namespace: "kube-system"},
		Data:       map[string]string{"ClusterConfiguration": "networking:\n  podSubnet: 10.244.0.0/16,fd00:10:244::/56\n  serviceSubnet: 10.96.0.0/16,fd00:10:96::/112\n"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// dualStackKindCluster is a kind cluster converted in full: dual-stack
// ranges and nodes, Istio with ISTIO_DUAL_STACK, a dual-stack gateway.
func dualStackKindCluster(ctx context.Context, t *testing.T) *harness.APIServer {
	t.Helper()
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16,fd00:10:96::/112"})
	kubeadmConfigMap(ctx, t, api)
	if err := harness.CreateNodes(ctx, api.Kube, kindNodes(3, true)); err != nil {
		t.Fatal(err)
	}
	if err := harness.InstallIstiod(ctx, api.Kube, "1.24.2", true); err != nil {
		t.Fatal(err)
	}
	dualStackGateway(ctx, t, api)
	return api
}

func TestStatusDualStackKindClusterPasses(t *testing.T) {
	ctx := context.Background()
	api := dualStackKindCluster(ctx, t)

	r := plugin(t, api.Kubeconfig, nil, "status", "-o", "json")
	s := parseStatus(t, r)
	if r.Code != 0 || s.Cluster.Kind != "kind" || s.Summary.Fail != 0 {
		t.Fatalf("dual-stack kind cluster:\n%s", r)
	}
	expectVerdicts(t, s, map[string]string{
		"kubernetes-version": "PASS", "node-internal-ips": "PASS", "pod-cidrs": "PASS", "service-cidrs": "PASS",
		"platform": "WARN", // kind is not on AWS: nothing for the underlay to manage
		"istiod":   "PASS", "istiod-dual-stack": "PASS", "proxy-dual-stack": "PASS", "ingress-gateway": "PASS",
	})
	if _, ok := s.verdicts()["openshift-network"]; ok {
		t.Fatal("OpenShift checks on a kind cluster")
	}

	// The same through the table: a summary line and no fixes section.
	table := plugin(t, api.Kubeconfig, nil, "status")
	if table.Code != 0 || !regexp.MustCompile(`\d+ checks: \d+ passed, 1 warning\n`).MatchString(table.Stdout) || strings.Contains(table.Stdout, "To fix") && !strings.Contains(table.Stdout, "platform") {
		t.Fatalf("table:\n%s", table)
	}
}

func TestStatusSingleStackKindClusterFails(t *testing.T) {
	ctx := context.Background()
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16"})
	kubeadmConfigMap(ctx, t, api)
	if err := harness.CreateNodes(ctx, api.Kube, kindNodes(2, false)); err != nil {
		t.Fatal(err)
	}
	r := plugin(t, api.Kubeconfig, nil, "status", "-o", "yaml")
	if r.Code != 1 || !strings.Contains(r.Stdout, "kind: kind") {
		t.Fatalf("IPv4-only kind:\n%s", r)
	}
	r = plugin(t, api.Kubeconfig, nil, "status", "-o", "json")
	s := parseStatus(t, r)
	expectVerdicts(t, s, map[string]string{"node-internal-ips": "FAIL", "pod-cidrs": "FAIL", "service-cidrs": "FAIL"})
	for _, c := range s.Checks {
		if c.Name == "node-internal-ips" && !strings.Contains(c.Remediation, "networking.ipFamily: dual") {
			t.Errorf("kind fix should say how kind does dual-stack: %q", c.Remediation)
		}
	}
}

func TestStatusPre123ClusterFailsOnVersion(t *testing.T) {
	ctx := context.Background()
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16,fd00:10:96::/112"})
	kubeadmConfigMap(ctx, t, api)
	if err := harness.CreateNodes(ctx, api.Kube, kindNodes(1, true)); err != nil {
		t.Fatal(err)
	}
	proxy, err := harness.StartVersionProxy(api.Config, "v1.22.17", "1", "22")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	kubeconfig := t.TempDir() + "/kubeconfig"
	if err := harness.WriteKubeconfig(kubeconfig, proxy.Config(), "old"); err != nil {
		t.Fatal(err)
	}

	r := plugin(t, kubeconfig, nil, "status", "-o", "json")
	s := parseStatus(t, r)
	if r.Code != 1 || s.Cluster.KubernetesVersion != "v1.22.17" {
		t.Fatalf("pre-1.23 cluster:\n%s", r)
	}
	expectVerdicts(t, s, map[string]string{"kubernetes-version": "FAIL", "node-internal-ips": "PASS"})
}

// status reads nodes in pages: the number of node list requests follows the
// page size, and no node is fetched on its own.
func TestStatusListsNodesInPages(t *testing.T) {
	ctx := context.Background()
	api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16,fd00:10:96::/112"})
	const nodes = 1201 // three pages of 500
	if err := harness.CreateNodes(ctx, api.Kube, kindNodes(nodes, true)); err != nil {
		t.Fatal(err)
	}
	r := plugin(t, api.Kubeconfig, nil, "status", "-o", "json", "-v=6")
	if r.Code != 1 { // no Istio here: the mesh checks fail
		t.Fatalf("status:\n%s", r)
	}
	lists := regexp.MustCompile(`verb="GET" url="https://[^"]+/api/v1/nodes\?[^"]*limit=500`).FindAllString(r.Stderr, -1)
	gets := regexp.MustCompile(`verb="GET" url="https://[^"]+/api/v1/nodes/[^"?]+"`).FindAllString(r.Stderr, -1)
	if len(lists) != 3 || len(gets) != 0 {
		t.Fatalf("%d node list pages (want 3), %d single-node GETs (want 0)\n%s", len(lists), len(gets), r.Stderr)
	}
	if !strings.Contains(r.Stdout, fmt.Sprintf("all %d nodes have IPv4 and IPv6", nodes)) {
		t.Fatalf("not every node was judged:\n%s", r.Stdout)
	}
}

func TestStatusOpenShiftOnAWSReportsMissingIPv6(t *testing.T) {
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})

	r := plugin(t, api.Kubeconfig, env, "status", "-o", "json")
	s := parseStatus(t, r)
	if r.Code != 1 {
		t.Fatalf("an IPv4-only cluster must exit 1:\n%s", r)
	}
	c := s.Cluster
	if c.Kind != "OpenShift" || c.OpenShiftVersion != "4.16.9" || c.Cloud != "aws" || c.AWSRegion != world.AWS.Region || c.InfraID != world.AWS.InfraID {
		t.Fatalf("cluster detected as %+v", c)
	}
	expectVerdicts(t, s, map[string]string{
		"kubernetes-version":              "PASS",
		"platform":                        "PASS",
		"vpc-ipv6":                        "FAIL",
		"subnet-ipv6":                     "FAIL",
		"node-internal-ips":               "FAIL",
		"pod-cidrs":                       "FAIL",
		"service-cidrs":                   "FAIL",
		"openshift-network":               "FAIL",
		"openshift-dual-stack-conversion": "FAIL",
		"istiod":                          "FAIL", // no Istio in this world
		"ingress-gateway":                 "FAIL", // behind a Classic ELB
		"ingress-load-balancer":           "FAIL",
	})
	fails := 0
	for _, ch := range s.Checks {
		if ch.Status == "FAIL" {
			fails++
			if ch.Remediation == "" {
				t.Errorf("%s fails without a fix", ch.Name)
			}
		}
		if ch.Name == "node-internal-ips" && !strings.Contains(ch.Message, "6 of 6 nodes") {
			t.Errorf("node check: %q", ch.Message)
		}
		if ch.Name == "service-cidrs" && !strings.Contains(ch.Message, "172.30.0.0/16") {
			t.Errorf("service check should name the range: %q", ch.Message)
		}
		if ch.Name == "ingress-gateway" && !strings.Contains(ch.Remediation, "kubectl dualstack gateway --ingress-service istio-system/istio-ingressgateway --migrate") {
			t.Errorf("gateway fix: %q", ch.Remediation)
		}
	}
	if s.Summary.Fail != fails || s.Summary.Total != len(s.Checks) {
		t.Errorf("summary %+v, %d FAIL rows", s.Summary, fails)
	}

	// The table says the same to a person: FAIL rows and the fixes.
	table := plugin(t, api.Kubeconfig, env, "status")
	if table.Code != 1 || !strings.Contains(table.Stdout, "To fix:") || !strings.Contains(table.Stdout, fmt.Sprintf("%d failed", fails)) || table.Stderr != "" {
		t.Fatalf("table:\n%s", table)
	}
}

// The mesh checks with and without ISTIO_DUAL_STACK, and the fix printed for
// the install method found.
func TestStatusIstioDualStackSettings(t *testing.T) {
	ctx := context.Background()
	for _, dual := range []bool{false, true} {
		t.Run(fmt.Sprintf("ISTIO_DUAL_STACK=%v", dual), func(t *testing.T) {
			api := startAPIServer(t, harness.APIServerOptions{ServiceCIDRs: "10.96.0.0/16,fd00:10:96::/112"})
			kubeadmConfigMap(ctx, t, api)
			if err := harness.CreateNodes(ctx, api.Kube, kindNodes(1, true)); err != nil {
				t.Fatal(err)
			}
			if err := harness.InstallIstiod(ctx, api.Kube, "1.24.2", dual); err != nil {
				t.Fatal(err)
			}
			s := parseStatus(t, plugin(t, api.Kubeconfig, nil, "status", "-o", "json"))
			want := map[bool]string{true: "PASS", false: "FAIL"}[dual]
			expectVerdicts(t, s, map[string]string{"istiod": "PASS", "istiod-dual-stack": want, "proxy-dual-stack": want})
			for _, c := range s.Checks {
				if c.Name == "istiod" && !strings.Contains(c.Message, "1.24.2") {
					t.Errorf("istiod message: %q", c.Message)
				}
				if c.Name == "istiod-dual-stack" && !dual && !strings.Contains(c.Remediation, "--print-istio-values") {
					t.Errorf("fix: %q", c.Remediation)
				}
			}
			values := runCmd(t, api.Kubeconfig, nil, "oc-dualstack", "status", "--print-istio-values")
			if values.Code != 0 || !strings.Contains(values.Stdout, "pilot:\n  env:\n    ISTIO_DUAL_STACK: \"true\"") {
				t.Fatalf("Helm values for a Helm install:\n%s", values)
			}
		})
	}
}

func TestStatusOpenShiftInstalledDualStack(t *testing.T) {
	api, _, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{Version: "4.20.3", IPFamily: "DualStackIPv4Primary"})
	r := plugin(t, api.Kubeconfig, env, "status", "-o", "json")
	expectVerdicts(t, parseStatus(t, r), map[string]string{"openshift-dual-stack-conversion": "PASS"})
}
