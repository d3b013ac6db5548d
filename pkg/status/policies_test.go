package status

import (
	"errors"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/router"
)

func egressPolicy(ns, name string, peers ...networkingv1.NetworkPolicyPeer) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: peers}}}}
}

func block(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func TestPolicyAndMetadataChecks(t *testing.T) {
	guard := egressPolicy("shop", "no-metadata", block("0.0.0.0/0", "169.254.169.254/32"))
	guardDual := egressPolicy("shop", "no-metadata", block("0.0.0.0/0", "169.254.169.254/32"), block("::/0", "fd00:ec2::254/128"))
	guardOpen := egressPolicy("shop", "no-metadata", block("0.0.0.0/0", "169.254.169.254/32"), block("::/0"))
	partner := egressPolicy("web", "partner", block("203.0.113.0/24"))
	inv := func(metadataIPv6 bool) *UnderlayFacts {
		return &UnderlayFacts{Inventory: &awsx.Inventory{
			VPC:       awsx.VPC{ID: "vpc-1", IPv4CIDRs: []string{"10.0.0.0/16"}},
			Instances: []awsx.Instance{{ID: "i-1", MetadataIPv6: metadataIPv6}, {ID: "i-2"}},
		}}
	}
	for _, tc := range []struct {
		name             string
		policies         PolicyFacts
		underlay         *UnderlayFacts
		nodes            []NodeFacts
		netpol, metadata report.Status // "" when the check is absent
		netpolSays       []string
		metadataSays     []string
	}{
		{name: "no policies, endpoint off", underlay: inv(false), netpol: report.Pass, metadata: report.Pass,
			metadataSays: []string{"disabled on all 2 instances"}},
		{name: "a guard without its twin, endpoint on", policies: PolicyFacts{Items: []networkingv1.NetworkPolicy{guard, partner}}, underlay: inv(true),
			netpol: report.Warn, metadata: report.Warn,
			netpolSays:   []string{"2 NetworkPolicies", "shop/no-metadata egress[0] 0.0.0.0/0 except 169.254.169.254/32 -> add ::/0 except fd00:ec2::254/128", "web/partner egress[0] 203.0.113.0/24: ", "never invented"},
			metadataSays: []string{"enabled on 1 of 2 instances (i-1)", "fd00:ec2::254", "unless a NetworkPolicy stops them", "shop/no-metadata"}},
		{name: "a guard without its twin, the pod network has IPv6", policies: PolicyFacts{Items: []networkingv1.NetworkPolicy{guard}}, nodes: dualNodes(2),
			netpol: report.Fail, netpolSays: []string{"the pod network has IPv6"}},
		{name: "a guard with its twin, endpoint on", policies: PolicyFacts{Items: []networkingv1.NetworkPolicy{guardDual}}, underlay: inv(true),
			netpol: report.Pass, metadata: report.Pass, metadataSays: []string{"keeps them from fd00:ec2::254 too"}},
		{name: "::/0 without the metadata except, endpoint on", policies: PolicyFacts{Items: []networkingv1.NetworkPolicy{guardOpen}}, underlay: inv(true),
			netpol: report.Warn, metadata: report.Fail, metadataSays: []string{"lets them reach fd00:ec2::254: shop/no-metadata"}},
		{name: "a guard without its twin, endpoint off", policies: PolicyFacts{Items: []networkingv1.NetworkPolicy{guard}}, underlay: inv(false),
			netpol: report.Warn, metadata: report.Pass, metadataSays: []string{"before enabling it"}},
		{name: "policies not readable", policies: PolicyFacts{Err: errors.New("forbidden")}, underlay: inv(true),
			netpol: report.Warn, metadata: report.Warn, netpolSays: []string{"cannot read the NetworkPolicies"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &Facts{Policies: tc.policies, Underlay: tc.underlay, Nodes: tc.nodes}
			metadata, netpol := policyChecks(f, "kubectl dualstack")
			check := func(name string, c *report.Check, want report.Status, says []string) {
				t.Helper()
				if c == nil {
					if want != "" {
						t.Fatalf("no %s check, want %s", name, want)
					}
					return
				}
				if c.Status != want {
					t.Fatalf("%s: %s, want %s: %s", name, c.Status, want, c.Message)
				}
				for _, s := range says {
					if !strings.Contains(c.Message, s) {
						t.Errorf("%s message %q lacks %q", name, c.Message, s)
					}
				}
				if c.Status != report.Pass && c.Remediation == "" && !strings.Contains(c.Message, "could not be read") {
					t.Errorf("%s: a %s without a fix: %s", name, c.Status, c.Message)
				}
			}
			check("network-policy-ipv6", netpol, tc.netpol, tc.netpolSays)
			check("metadata-ipv6", metadata, tc.metadata, tc.metadataSays)
		})
	}
}

func TestRouterCheck(t *testing.T) {
	classic := awsx.LoadBalancer{Name: "a1b2", Type: "classic", DNSName: "a1b2.elb.amazonaws.com"}
	nlb4 := awsx.LoadBalancer{Name: "n1", Type: "network", IPAddressType: "ipv4", DNSName: "n1.elb.amazonaws.com"}
	nlb6 := awsx.LoadBalancer{Name: "n1", Type: "network", IPAddressType: "dualstack", DNSName: "n1.elb.amazonaws.com"}
	under := &UnderlayFacts{Inventory: &awsx.Inventory{LoadBalancers: []awsx.LoadBalancer{classic, nlb4}}}
	under6 := &UnderlayFacts{Inventory: &awsx.Inventory{LoadBalancers: []awsx.LoadBalancer{nlb6}}}
	lbs := func(typ string, nlb bool, host string) *router.State {
		return &router.State{Found: true, Strategy: "LoadBalancerService", LBType: typ, Service: &router.ServiceState{NLB: nlb, Hostname: host}}
	}
	for _, tc := range []struct {
		name     string
		st       *router.State
		underlay *UnderlayFacts
		want     report.Status
		says     string
	}{
		{"classic", lbs("", false, classic.DNSName), under, report.Warn, "behind a Classic ELB (a1b2), which cannot serve IPv6 in a VPC: *.apps stays IPv4-only"},
		{"asked for an NLB, Service not re-created yet", lbs("NLB", false, classic.DNSName), under, report.Warn, "re-creating it"},
		{"NLB, ipv4", lbs("NLB", true, nlb4.DNSName), under, report.Warn, "NLB n1, ipv4"},
		{"NLB, dualstack", lbs("NLB", true, nlb6.DNSName), under6, report.Pass, "dualstack"},
		{"HostNetwork", &router.State{Found: true, Strategy: "HostNetwork"}, under, report.Skip, "HostNetwork"},
		{"no IngressController", &router.State{}, under, report.Skip, "no default IngressController"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := routerCheck(&Facts{Router: &RouterFacts{State: tc.st}, Underlay: tc.underlay}, "oc dualstack")
			if c.Status != tc.want || !strings.Contains(c.Message, tc.says) {
				t.Fatalf("%s: %s, want %s with %q", c.Status, c.Message, tc.want, tc.says)
			}
			if c.Status == report.Warn && c.Remediation == "" {
				t.Fatalf("a WARN without a fix: %s", c.Message)
			}
		})
	}
	if routerCheck(&Facts{}, "oc dualstack") != nil {
		t.Fatal("a router check outside OpenShift")
	}
}
