package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// gatewayWorld is the OpenShift-on-AWS world after the overlay conversion
// (dual-stack service ranges), with the cloud load-balancer controller and
// the load balancers' DNS running.
type gatewayWorld struct {
	api   *harness.APIServer
	world *harness.OpenShiftOnAWS
	env   []string
	dns   *harness.LBDNS
	lbc   *harness.LBController
	cfg   aws.Config
}

func newGatewayWorld(t *testing.T) *gatewayWorld {
	t.Helper()
	ctx := context.Background()
	api, world, env := openShiftOnAWSWith(t, harness.APIServerOptions{ServiceCIDRs: "172.30.0.0/16,fd02::/112"}, harness.OpenShiftOnAWSOptions{})
	cfg, err := awsTLS.AWSConfig(ctx, world.AWS.Region)
	if err != nil {
		t.Fatal(err)
	}
	var subnets []string
	seen := map[string]bool{}
	for _, s := range world.AWS.PublicSubnets() {
		if !seen[s.AZ] {
			seen[s.AZ] = true
			subnets = append(subnets, s.ID)
		}
	}
	lbc := harness.StartLBController(api.Kube, cfg, world.AWS.ClusterTagKey, subnets)
	t.Cleanup(lbc.Stop)
	dns, err := harness.StartLBDNS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	return &gatewayWorld{api: api, world: world, env: env, dns: dns, lbc: lbc, cfg: cfg}
}

func (g *gatewayWorld) underlay(t *testing.T) {
	t.Helper()
	if r := plugin(t, g.api.Kubeconfig, g.env, "aws", "apply", "--yes"); r.Code != 0 {
		t.Fatalf("aws apply:\n%s", r)
	}
}

// nlbGateway adds a second ingress gateway behind an in-tree NLB and waits
// for the controller to give it a hostname.
func (g *gatewayWorld) nlbGateway(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	if err := harness.EnsureNamespace(ctx, g.api.Kube, "edge", nil); err != nil {
		t.Fatal(err)
	}
	_, err := g.api.Kube.CoreV1().Services("edge").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "edge-gateway", Namespace: "edge",
			Labels:      map[string]string{"istio": "ingressgateway"},
			Annotations: map[string]string{"service.beta.kubernetes.io/aws-load-balancer-type": "nlb", "owner": "helm"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"istio": "ingressgateway"},
			Ports: []corev1.ServicePort{{Name: "http2", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return g.waitHostname(t, "edge", "edge-gateway", "")
}

func (g *gatewayWorld) waitHostname(t *testing.T, ns, name, not string) string {
	t.Helper()
	var host string
	err := harness.WaitFor(context.Background(), 30*time.Second, "a load balancer hostname", func(ctx context.Context) (bool, error) {
		svc, err := g.api.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.Hostname != "" && ing.Hostname != not {
				host = ing.Hostname
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return host
}

// waitA waits until the load balancer's DNS answers A for host, as a client
// waits for a new load balancer's name to propagate.
func (g *gatewayWorld) waitA(t *testing.T, host string) {
	t.Helper()
	err := harness.WaitFor(context.Background(), 15*time.Second, "an A record for "+host, func(context.Context) (bool, error) {
		a, _ := g.lookup(t, host)
		return a > 0, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (g *gatewayWorld) lookup(t *testing.T, host string) (a, aaaa int) {
	t.Helper()
	res := resolverFor(g.dns.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v4, _ := res.LookupIP(ctx, "ip4", host)
	v6, _ := res.LookupIP(ctx, "ip6", host)
	return len(v4), len(v6)
}

type gatewayJSON struct {
	Service          string `json:"service"`
	Hostname         string `json:"hostname"`
	PreviousHostname string `json:"previousHostname"`
	LoadBalancer     struct {
		Name, Type    string
		IPAddressType string `json:"ipAddressType"`
	} `json:"loadBalancer"`
	Actions []struct{ Kind, Target, Status string } `json:"actions"`
	IPv6    []string                                `json:"ipv6"`
	Changed bool                                    `json:"changed"`
	// A migration's moved records and when they were all in Route 53.
	Moves []struct {
		Name, Type, From, To string
	} `json:"moves"`
	NamesMovedAt *time.Time `json:"namesMovedAt"`
}

func parseGateway(t *testing.T, r result) gatewayJSON {
	t.Helper()
	var g gatewayJSON
	if err := json.Unmarshal([]byte(r.Stdout), &g); err != nil {
		t.Fatalf("gateway -o json: %v\n%s", err, r)
	}
	return g
}

func TestGatewayNLBBecomesDualStack(t *testing.T) {
	g := newGatewayWorld(t)
	g.underlay(t)
	host := g.nlbGateway(t)
	g.waitA(t, host)
	if a, aaaa := g.lookup(t, host); a != 1 || aaaa != 0 {
		t.Fatalf("before: %d A, %d AAAA records for %s; want 1 and 0", a, aaaa, host)
	}

	// Two gateways now: the command asks which one.
	r := plugin(t, g.api.Kubeconfig, g.env, "gateway", "--yes")
	if r.Code != 2 || !strings.Contains(r.Stderr, "edge/edge-gateway, istio-system/istio-ingressgateway") || !strings.Contains(r.Stderr, "--ingress-service") {
		t.Fatalf("two gateways:\n%s", r)
	}

	r = plugin(t, g.api.Kubeconfig, g.env, "gateway", "--ingress-service", "edge/edge-gateway", "--yes", "--dns-server", g.dns.Addr, "--timeout", "20s", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("gateway:\n%s", r)
	}
	out := parseGateway(t, r)
	if !out.Changed || out.LoadBalancer.IPAddressType != "dualstack" || len(out.IPv6) != 1 || out.Hostname != host {
		t.Fatalf("result: %+v", out)
	}
	if a, aaaa := g.lookup(t, host); a != 1 || aaaa != 1 {
		t.Fatalf("after: %d A, %d AAAA", a, aaaa)
	}
	svc, err := g.api.Kube.CoreV1().Services("edge").Get(context.Background(), "edge-gateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyRequireDualStack || len(svc.Spec.ClusterIPs) != 2 ||
		svc.Annotations["service.beta.kubernetes.io/aws-load-balancer-ip-address-type"] != "dualstack" || svc.Annotations["owner"] != "helm" {
		t.Fatalf("service after: policy %v, clusterIPs %v, annotations %v", *svc.Spec.IPFamilyPolicy, svc.Spec.ClusterIPs, svc.Annotations)
	}
	lbs, err := elbv2.NewFromConfig(g.cfg).DescribeLoadBalancers(context.Background(), &elbv2.DescribeLoadBalancersInput{Names: []string{out.LoadBalancer.Name}})
	if err != nil || len(lbs.LoadBalancers) != 1 || lbs.LoadBalancers[0].IpAddressType != "dualstack" {
		t.Fatalf("NLB in AWS: %+v %v", lbs, err)
	}

	// A second run changes nothing.
	r = plugin(t, g.api.Kubeconfig, g.env, "gateway", "--ingress-service", "edge/edge-gateway", "--yes", "--dns-server", g.dns.Addr, "-o", "json")
	if again := parseGateway(t, r); r.Code != 0 || again.Changed || again.Actions[0].Status != "unchanged" {
		t.Fatalf("second run:\n%s", r)
	}

	// aws rollback undoes the load balancer switch too: it was journalled.
	r = plugin(t, g.api.Kubeconfig, g.env, "aws", "rollback", "--yes")
	if r.Code != 0 {
		t.Fatalf("aws rollback:\n%s", r)
	}
	lbs, _ = elbv2.NewFromConfig(g.cfg).DescribeLoadBalancers(context.Background(), &elbv2.DescribeLoadBalancersInput{Names: []string{out.LoadBalancer.Name}})
	if lbs.LoadBalancers[0].IpAddressType != "ipv4" {
		t.Fatalf("after rollback the NLB is %s", lbs.LoadBalancers[0].IpAddressType)
	}
}

func TestGatewayClassicNeedsRecreate(t *testing.T) {
	g := newGatewayWorld(t)
	g.underlay(t)
	ctx := context.Background()
	before, err := g.api.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldHost := before.Status.LoadBalancer.Ingress[0].Hostname

	r := plugin(t, g.api.Kubeconfig, g.env, "gateway", "--yes", "--dns-server", g.dns.Addr)
	if r.Code != 1 || !strings.Contains(r.Stderr, "Classic ELB") || !strings.Contains(r.Stderr, "--recreate") || !strings.Contains(r.Stderr, oldHost) {
		t.Fatalf("classic without --recreate:\n%s", r)
	}

	r = plugin(t, g.api.Kubeconfig, g.env, "gateway", "--recreate", "--yes", "--dns-server", g.dns.Addr, "--timeout", "30s", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("gateway --recreate:\n%s", r)
	}
	out := parseGateway(t, r)
	if out.PreviousHostname != oldHost || out.Hostname == oldHost || out.LoadBalancer.Type != "network" || out.LoadBalancer.IPAddressType != "dualstack" {
		t.Fatalf("result: %+v", out)
	}
	after, err := g.api.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.UID == before.UID || len(after.Spec.ClusterIPs) != 2 || after.Labels["app"] != before.Labels["app"] {
		t.Fatalf("re-created service: %+v", after)
	}
	for i, p := range before.Spec.Ports {
		if after.Spec.Ports[i].Port != p.Port || after.Spec.Ports[i].NodePort != p.NodePort || after.Spec.Ports[i].NodePort == 0 {
			t.Fatalf("port %d: before %+v after %+v", i, p, after.Spec.Ports[i])
		}
	}
	if a, aaaa := g.lookup(t, out.Hostname); a != 1 || aaaa != 1 {
		t.Fatalf("new hostname: %d A, %d AAAA", a, aaaa)
	}
	// The Classic ELB went with the old Service.
	classic, err := elb.NewFromConfig(g.cfg).DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, lb := range classic.LoadBalancerDescriptions {
		if aws.ToString(lb.DNSName) == oldHost {
			t.Fatalf("the old Classic ELB %s is still there", oldHost)
		}
	}
}

func TestGatewayWithoutUnderlayFailsClearly(t *testing.T) {
	g := newGatewayWorld(t)
	host := g.nlbGateway(t)
	g.waitA(t, host)
	r := plugin(t, g.api.Kubeconfig, g.env, "gateway", "--service", "edge/edge-gateway", "--yes", "--dns-server", g.dns.Addr)
	if r.Code != 1 || !strings.Contains(r.Stderr, "kubectl dualstack aws apply") || !strings.Contains(r.Stderr, "no IPv6") {
		t.Fatalf("no underlay:\n%s", r)
	}
	svc, _ := g.api.Kube.CoreV1().Services("edge").Get(context.Background(), "edge-gateway", metav1.GetOptions{})
	if len(svc.Spec.IPFamilies) != 1 {
		t.Fatal("nothing may change when the underlay is missing")
	}
	if a, aaaa := g.lookup(t, host); a != 1 || aaaa != 0 {
		t.Fatalf("DNS changed: %d A %d AAAA", a, aaaa)
	}
}

func TestGatewayOnSingleStackClusterPointsAtNetwork(t *testing.T) {
	ctx := context.Background()
	api, world, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{}) // IPv4-only service range
	cfg, err := awsTLS.AWSConfig(ctx, world.AWS.Region)
	if err != nil {
		t.Fatal(err)
	}
	lbc := harness.StartLBController(api.Kube, cfg, world.AWS.ClusterTagKey, []string{world.AWS.PublicSubnets()[0].ID})
	t.Cleanup(lbc.Stop)
	if r := plugin(t, api.Kubeconfig, env, "aws", "apply", "--yes"); r.Code != 0 {
		t.Fatalf("aws apply:\n%s", r)
	}
	r := plugin(t, api.Kubeconfig, env, "gateway", "--recreate", "--yes", "--timeout", "10s")
	if r.Code != 1 || !strings.Contains(r.Stderr, "single-stack") || !strings.Contains(r.Stderr, "kubectl dualstack network") {
		t.Fatalf("single-stack cluster:\n%s", r)
	}
	// The refusal came before the delete: the Service is still there.
	if _, err := api.Kube.CoreV1().Services(harness.IstioNamespace).Get(ctx, harness.IngressGatewayName, metav1.GetOptions{}); err != nil {
		t.Fatalf("the gateway Service must survive a refused re-creation: %v", err)
	}
}
