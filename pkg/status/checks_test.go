package status

import (
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/services"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/workloads"
)

func find(t *testing.T, r report.Report, name string) report.Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, r.Checks)
	return report.Check{}
}

func dualNodes(n int) []NodeFacts {
	var out []NodeFacts
	for i := range n {
		out = append(out, NodeFacts{Name: "node-" + string(rune('a'+i)), InternalIPs: []string{"10.0.0.1", "2600:1f18::1"}, PodCIDRs: []string{"10.244.0.0/24", "fd00:10:244::/64"}})
	}
	return out
}

func TestKubernetesVersion(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    report.Status
	}{
		{"v1.37.2", report.Pass},
		{"v1.23.0", report.Pass},
		{"v1.23.17-eks-8cb36c9", report.Pass},
		{"v1.22.9", report.Fail},
		{"v1.20.0+k3s1", report.Fail},
		{"garbage", report.Warn},
		{"v0.0.0-master+$Format:%H$", report.Warn},
	} {
		t.Run(tc.version, func(t *testing.T) {
			c := kubernetesVersion(tc.version)
			if c.Status != tc.want {
				t.Fatalf("status %s, want %s: %s", c.Status, tc.want, c.Message)
			}
			if c.Status == report.Fail && c.Remediation == "" {
				t.Fatal("a FAIL must carry a remediation")
			}
		})
	}
}

func TestNodeAndRangeChecks(t *testing.T) {
	v4Nodes := []NodeFacts{
		{Name: "a", InternalIPs: []string{"10.0.0.1"}, PodCIDRs: []string{"10.128.0.0/23"}},
		{Name: "b", InternalIPs: []string{"10.0.0.2"}},
	}
	for _, tc := range []struct {
		name     string
		facts    Facts
		check    string
		want     report.Status
		contains string
	}{
		{"dual nodes", Facts{Nodes: dualNodes(3)}, "node-internal-ips", report.Pass, "all 3 nodes"},
		{"ipv4 nodes", Facts{Nodes: v4Nodes, Platform: platform.Info{Cloud: "aws"}}, "node-internal-ips", report.Fail, "2 of 2 nodes IPv4 only (a, b)"},
		{"no nodes", Facts{}, "node-internal-ips", report.Warn, "no nodes"},
		{"pod cidrs v4", Facts{Nodes: v4Nodes}, "pod-cidrs", report.Fail, "1 of 1 nodes IPv4 only (a)"},
		{"pod cidrs dual", Facts{Nodes: dualNodes(2)}, "pod-cidrs", report.Pass, "2 nodes"},
		{"pod cidrs absent", Facts{Nodes: []NodeFacts{{Name: "x"}}}, "pod-cidrs", report.Skip, "network plugin"},
		{"services dual", Facts{ServiceCIDRs: ServiceCIDRFacts{CIDRs: []string{"10.96.0.0/16", "fd02::/112"}, Source: "s"}}, "service-cidrs", report.Pass, "dual-stack"},
		{"services v4", Facts{ServiceCIDRs: ServiceCIDRFacts{CIDRs: []string{"172.30.0.0/16"}, Source: "s"}}, "service-cidrs", report.Fail, "IPv4 only"},
		{"services unknown", Facts{ServiceCIDRs: ServiceCIDRFacts{Err: errors.New("forbidden")}}, "service-cidrs", report.Warn, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := find(t, Evaluate(&tc.facts, "kubectl dualstack"), tc.check)
			if c.Status != tc.want || !strings.Contains(c.Message, tc.contains) {
				t.Fatalf("got %s %q, want %s containing %q", c.Status, c.Message, tc.want, tc.contains)
			}
			if c.Status == report.Fail && c.Remediation == "" {
				t.Fatal("a FAIL must carry a remediation")
			}
		})
	}
}

func TestManyMissingNodesAreCapped(t *testing.T) {
	var nodes []NodeFacts
	for range 12 {
		nodes = append(nodes, NodeFacts{Name: "n", InternalIPs: []string{"10.0.0.1"}})
	}
	c := nodeInternalIPs(&Facts{Nodes: nodes}, "kubectl dualstack")
	if !strings.Contains(c.Message, "12 of 12 nodes IPv4 only (n, n, n and 9 more)") {
		t.Fatalf("message should name 3 nodes and count the rest: %q", c.Message)
	}
}

func TestOpenShiftChecks(t *testing.T) {
	v4 := &OpenShiftNetwork{
		NetworkType:        "OVNKubernetes",
		SpecClusterNetwork: []string{"10.128.0.0/14"}, SpecServiceNetwork: []string{"172.30.0.0/16"},
		StatusClusterNetwork: []string{"10.128.0.0/14"}, StatusServiceNetwork: []string{"172.30.0.0/16"},
	}
	requested := &OpenShiftNetwork{
		NetworkType:        "OVNKubernetes",
		SpecClusterNetwork: []string{"10.128.0.0/14", "fd01::/48"}, SpecServiceNetwork: []string{"172.30.0.0/16", "fd02::/112"},
		StatusClusterNetwork: []string{"10.128.0.0/14"}, StatusServiceNetwork: []string{"172.30.0.0/16"},
		OperatorDegraded: "InvalidClusterConfig: not supported",
	}
	dual := &OpenShiftNetwork{
		NetworkType:        "OVNKubernetes",
		SpecClusterNetwork: requested.SpecClusterNetwork, SpecServiceNetwork: requested.SpecServiceNetwork,
		StatusClusterNetwork: requested.SpecClusterNetwork, StatusServiceNetwork: requested.SpecServiceNetwork,
	}
	aws := func(v string) platform.Info {
		return platform.Info{Kind: platform.OpenShift, OpenShiftVersion: v, InfrastructurePlatform: "AWS", Cloud: "aws"}
	}
	for _, tc := range []struct {
		name        string
		p           platform.Info
		on          *OpenShiftNetwork
		network     report.Status
		conversion  report.Status
		mustContain string
	}{
		{"aws 4.16 ipv4", aws("4.16.3"), v4, report.Fail, report.Fail, "refuses"},
		{"aws 4.10 ipv4", aws("4.10.67"), v4, report.Fail, report.Pass, "predates"},
		{"baremetal ipv4", platform.Info{Kind: platform.OpenShift, OpenShiftVersion: "4.16.3", InfrastructurePlatform: "BareMetal"}, v4, report.Fail, report.Pass, "allows"},
		{"aws refused", aws("4.12.0"), requested, report.Fail, report.Fail, "InvalidClusterConfig"},
		{"aws installed dual", platform.Info{Kind: platform.OpenShift, OpenShiftVersion: "4.20.1", InfrastructurePlatform: "AWS", AWSIPFamily: "DualStackIPv4Primary"}, dual, report.Pass, report.Pass, "DualStackIPv4Primary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Evaluate(&Facts{Platform: tc.p, Nodes: dualNodes(1), OpenShift: tc.on}, "kubectl dualstack")
			n, c := find(t, r, "openshift-network"), find(t, r, "openshift-dual-stack-conversion")
			if n.Status != tc.network || c.Status != tc.conversion {
				t.Fatalf("network %s (%s), conversion %s (%s); want %s, %s", n.Status, n.Message, c.Status, c.Message, tc.network, tc.conversion)
			}
			if !strings.Contains(n.Message+c.Message, tc.mustContain) {
				t.Fatalf("messages %q / %q lack %q", n.Message, c.Message, tc.mustContain)
			}
		})
	}
}

func TestOpenShiftChecksOnlyOnOpenShift(t *testing.T) {
	r := Evaluate(&Facts{Platform: platform.Info{Kind: platform.Kubeadm}, Nodes: dualNodes(1)}, "kubectl dualstack")
	for _, c := range r.Checks {
		if strings.HasPrefix(c.Name, "openshift") {
			t.Fatalf("kubeadm cluster got %s", c.Name)
		}
	}
}

func TestOVNSubnets(t *testing.T) {
	for in, want := range map[string]string{
		`{"default":["10.128.0.0/23","fd01:0:0:1::/64"]}`: "10.128.0.0/23,fd01:0:0:1::/64",
		`{"default":"10.128.2.0/23"}`:                     "10.128.2.0/23",
		``:                                                "",
		`not json`:                                        "",
	} {
		if got := strings.Join(ovnSubnets(in), ","); got != want {
			t.Errorf("ovnSubnets(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFamilies(t *testing.T) {
	for _, tc := range []struct {
		in     []string
		v4, v6 bool
	}{
		{[]string{"10.0.0.1", "::1"}, true, true},
		{[]string{"10.96.0.0/16"}, true, false},
		{[]string{"fd02::/112"}, false, true},
		{[]string{"::ffff:10.0.0.1"}, true, false},
		{[]string{"bogus"}, false, false},
	} {
		v4, v6 := Families(tc.in)
		if v4 != tc.v4 || v6 != tc.v6 {
			t.Errorf("Families(%v) = %v,%v want %v,%v", tc.in, v4, v6, tc.v4, tc.v6)
		}
	}
}

func TestServicesCheck(t *testing.T) {
	dualRanges := ServiceCIDRFacts{CIDRs: []string{"10.96.0.0/16", "fd02::/112"}, Source: "s"}
	v4Ranges := ServiceCIDRFacts{CIDRs: []string{"10.96.0.0/16"}, Source: "s"}
	for _, tc := range []struct {
		name     string
		facts    Facts
		want     report.Status
		message  string
		fix      string
		noFixFor string
	}{
		{"all dual-stack", Facts{ServiceCIDRs: dualRanges, Services: ServiceFacts{Census: services.Census{WithClusterIP: 7}}},
			report.Pass, "no single-stack Service with a cluster IP (7 with a cluster IP)", "", ""},
		{"single-stack ones", Facts{ServiceCIDRs: dualRanges, Services: ServiceFacts{Census: services.Census{WithClusterIP: 40, SingleStack: 12,
			Examples: []string{"kube-system/kube-dns", "a/b", "c/d"}}}},
			report.Warn, "12 of 40 Services with a cluster IP are single-stack (kube-system/kube-dns, a/b, c/d and 9 more)", "kubectl dualstack services", "once the service ranges"},
		{"no IPv6 range yet", Facts{ServiceCIDRs: v4Ranges, Services: ServiceFacts{Census: services.Census{WithClusterIP: 2, SingleStack: 2, Examples: []string{"a/b", "c/d"}}}},
			report.Warn, "2 of 2 Services with a cluster IP are single-stack (a/b, c/d)", "kubectl dualstack services, once the service ranges have IPv6", ""},
		{"forbidden", Facts{Services: ServiceFacts{Err: errors.New("services is forbidden")}}, report.Warn, "forbidden", "list on services", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := find(t, Evaluate(&tc.facts, "kubectl dualstack"), "services")
			if c.Status != tc.want || c.Message != tc.message && !strings.Contains(c.Message, tc.message) || !strings.Contains(c.Remediation, tc.fix) {
				t.Fatalf("%s %q fix %q", c.Status, c.Message, c.Remediation)
			}
			if tc.noFixFor != "" && strings.Contains(c.Remediation, tc.noFixFor) {
				t.Fatalf("fix %q should not say %q", c.Remediation, tc.noFixFor)
			}
		})
	}
}

func TestPodsCheck(t *testing.T) {
	dualNodes := []NodeFacts{{Name: "a", PodCIDRs: []string{"10.128.0.0/23", "fd01:0:0:1::/64"}}}
	v4Nodes := []NodeFacts{{Name: "a", PodCIDRs: []string{"10.128.0.0/23"}}}
	for _, tc := range []struct {
		name     string
		facts    Facts
		want     report.Status
		message  string
		fix      string
		noFixFor string
	}{
		{"all have IPv6", Facts{Nodes: dualNodes}, report.Pass, "every running pod on the pod network has an IPv6 pod IP", "", ""},
		{"some lack it", Facts{Nodes: dualNodes, Pods: PodFacts{Census: workloads.Census{IPv4Only: 9, Uncontrolled: 1,
			Namespaces: map[string]int{"shop": 4, "billing": 2, "web": 2, "z": 1}}}},
			report.Warn, "9 running pods have no IPv6 pod IP (shop: 4, billing: 2, web: 2, 1 more namespaces); a pod keeps the addresses it started with; 1 of them have no controller",
			"kubectl dualstack workloads", "once the pod network"},
		{"pod network not yet IPv6", Facts{Nodes: v4Nodes, Pods: PodFacts{Census: workloads.Census{IPv4Only: 1, Namespaces: map[string]int{"a": 1}}}},
			report.Warn, "1 running pods have no IPv6 pod IP (a: 1)", "once the pod network has IPv6", ""},
		{"forbidden", Facts{Pods: PodFacts{Err: errors.New("pods is forbidden")}}, report.Warn, "forbidden", "list on pods", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := find(t, Evaluate(&tc.facts, "kubectl dualstack"), "pods")
			if c.Status != tc.want || !strings.Contains(c.Message, tc.message) || !strings.Contains(c.Remediation, tc.fix) {
				t.Fatalf("%s %q fix %q", c.Status, c.Message, c.Remediation)
			}
			if tc.noFixFor != "" && strings.Contains(c.Remediation, tc.noFixFor) {
				t.Fatalf("fix %q should not say %q", c.Remediation, tc.noFixFor)
			}
		})
	}
}
