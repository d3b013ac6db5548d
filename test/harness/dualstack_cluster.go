package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/test/utils/ktesting"
)

// DualStackClusterOptions shape the sandbox that validate and probe run in.
type DualStackClusterOptions struct {
	// IPv4Only makes a single-stack cluster: IPv4 service range, pod IPs,
	// node addresses, no AAAA for the ingress and no IPv6 httpbin listener.
	IPv4Only bool
	// NoMesh: httpbin answers without `server: envoy`.
	NoMesh bool
	// Nodes is the number of worker nodes (default 2).
	Nodes int
	// HTTPBinPort is the httpbin Service port (validate uses 8000).
	HTTPBinPort int
}

// DualStackCluster is a running sandbox: a real apiserver with Istio and
// Gateway API CRDs, nodes whose kubelets serve exec, pods that get
// scheduled and IPs, the namespace finalizer, httpbin on loopback, the
// ingress gateway (Service with a load balancer hostname, a listener
// routing on Host) and the DNS server that resolves its hostname.
type DualStackCluster struct {
	API        *APIServer
	Kubelets   []*Kubelet
	Pods       *PodSimulator
	Namespaces *NamespaceFinalizer
	HTTPBin    *HTTPBin
	Ingress    *Ingress
	DNS        *DNSServer
	// IngressHostname is the load balancer's DNS name in the ingress
	// gateway Service's status.
	IngressHostname string
	HostsFile       string
}

// IngressHostname is the sandbox load balancer's DNS name.
const IngressHostname = "a1b2c3d4-ingress.elb.sandbox.test"

// BuildDualStackCluster starts everything; t's cleanups stop it.
func BuildDualStackCluster(ctx context.Context, t ktesting.TB, o DualStackClusterOptions) (*DualStackCluster, error) {
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.HTTPBinPort == 0 {
		o.HTTPBinPort = 8000
	}
	tb, ok := t.(interface{ TempDir() string })
	if !ok {
		return nil, fmt.Errorf("test handle cannot make temp dirs")
	}
	dir := tb.TempDir()
	c := &DualStackCluster{IngressHostname: IngressHostname, HostsFile: filepath.Join(dir, "hosts")}
	dual := !o.IPv4Only

	// Inside the "pods", the httpbin Service name resolves to the loopback
	// address of each family the cluster has, as cluster DNS would answer.
	hosts := "127.0.0.1 localhost\n127.0.0.1 httpbin\n"
	if dual {
		hosts += "::1 localhost\n::1 httpbin\n"
	}
	if err := os.WriteFile(c.HostsFile, []byte(hosts), 0o644); err != nil {
		return nil, err
	}

	ca, err := NewKubeletCA(dir)
	if err != nil {
		return nil, err
	}
	cidrs := "10.96.0.0/16"
	if dual {
		cidrs += ",fd02::/112"
	}
	if c.API, err = StartAPIServer(t, APIServerOptions{ServiceCIDRs: cidrs, ExtraFlags: ca.ExtraFlags()}); err != nil {
		return nil, err
	}
	if err := InstallCRDs(ctx, c.API.Config); err != nil {
		return nil, err
	}
	kc := c.API.Kube

	var nodes []NodeSpec
	var names []string
	for i := range o.Nodes {
		ip := fmt.Sprintf("127.0.0.%d", i+2)
		k, err := StartKubelet(ca, ip, c.HostsFile)
		if err != nil {
			return nil, err
		}
		t.Cleanup(k.Close)
		c.Kubelets = append(c.Kubelets, k)
		name := fmt.Sprintf("worker-%d", i)
		names = append(names, name)
		spec := NodeSpec{Name: name, InternalIPs: []string{ip}, Hostname: name, PodCIDRs: []string{fmt.Sprintf("10.128.%d.0/24", i)}}
		if dual {
			spec.InternalIPs = append(spec.InternalIPs, "::1")
			spec.PodCIDRs = append(spec.PodCIDRs, fmt.Sprintf("fd01:0:0:%d::/64", i))
		}
		nodes = append(nodes, spec)
	}
	if err := CreateNodes(ctx, kc, nodes); err != nil {
		return nil, err
	}
	for i, name := range names {
		node, err := kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = c.Kubelets[i].Port
		if _, err := kc.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("setting the kubelet port of node %s: %w", name, err)
		}
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.Cleanup(cancel)
	c.Pods = &PodSimulator{Kube: kc, Nodes: names, DualStack: dual}
	c.Pods.Start(runCtx)
	t.Cleanup(c.Pods.Stop)
	c.Namespaces = &NamespaceFinalizer{Kube: kc, Dynamic: c.API.Dynamic}
	c.Namespaces.Start(runCtx)
	t.Cleanup(c.Namespaces.Stop)

	if c.HTTPBin, err = StartHTTPBin(o.HTTPBinPort, dual, !o.NoMesh); err != nil {
		return nil, err
	}
	t.Cleanup(c.HTTPBin.Close)
	if c.Ingress, err = StartIngress(c.API.Dynamic, dual); err != nil {
		return nil, err
	}
	t.Cleanup(c.Ingress.Close)
	records := []string{"127.0.0.1"}
	if dual {
		records = append(records, "::1")
	}
	if c.DNS, err = StartDNSServer(map[string][]string{IngressHostname: records}); err != nil {
		return nil, err
	}
	t.Cleanup(c.DNS.Close)

	// The Istio ingress gateway Service, as the cloud provider leaves it
	// once its NLB exists; its http2 port is the ingress listener's.
	if _, err := CreateLoadBalancerService(ctx, kc, LoadBalancerServiceSpec{
		Namespace: "istio-system", Name: "istio-ingressgateway",
		Labels:   map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"},
		Selector: map[string]string{"istio": "ingressgateway"},
		Ports: []corev1.ServicePort{
			{Name: "status-port", Port: 15021, Protocol: corev1.ProtocolTCP},
			{Name: "http2", Port: int32(c.Ingress.Port), Protocol: corev1.ProtocolTCP},
		},
		Hostname: IngressHostname,
	}); err != nil {
		return nil, err
	}
	return c, nil
}
