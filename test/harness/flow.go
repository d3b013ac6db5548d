package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/test/utils/ktesting"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// ConversionSandboxOptions shape the full-flow world.
type ConversionSandboxOptions struct {
	// Version is the OpenShift release (default 4.10.67: before 4.11 the
	// network operator converts an installed cluster on AWS).
	Version string
	// Platform is the Infrastructure platform (default AWS).
	Platform string
	IPI      moto.IPIOptions
	// HTTPBinPort is the httpbin Service port validate uses (default 8000).
	HTTPBinPort int
	// RolloutDelay of the network operator simulator (default its own).
	RolloutDelay time.Duration
	// LBProvisionDelay is how long a new load balancer takes until its
	// name answers (default 0: at once; the interactive sandbox uses
	// DefaultLBProvisionDelay).
	LBProvisionDelay time.Duration
	// Istio is how Istio is installed: "istioctl" (the default), "sail"
	// (a Sail operator Istio resource, rendered by the SailOperator) or
	// "helm" (a release of an istiod chart, installed with Helm's SDK).
	Istio string
}

// ConversionSandbox is an OpenShift-IPI-on-AWS-like cluster that starts
// IPv4-only and can be taken for real through every phase of the
// conversion: the AWS underlay (moto), the cluster network (the network
// operator simulator), the ingress gateway (the cloud LB controller and the
// load balancers' DNS) and the proof (kubelets serving exec, pods, httpbin,
// the Host-routing ingress, Istio set up for dual-stack).
//
// What the cluster does on its own once a layer is converted, the sandbox
// does too, and no more: the cloud node controller reports a node's ENI's
// IPv6 as a second InternalIP once the cloud config lists ipv6 in
// NodeIPFamilies (CloudNodeController); once the Network status has an IPv6 cluster network,
// new pods get an IPv6 podIP and Service names resolve to ::1 as well
// inside the pods. The apiserver runs with both service ranges from the
// start: they stand for what OpenShift's apiserver operator rolls out, and
// the plugin judges OpenShift's service families by the Network status.
type ConversionSandbox struct {
	API       *APIServer
	World     *OpenShiftOnAWS
	AWSConfig aws.Config
	Operator  *NetworkOperator
	LBs       *LBController
	DNS       *LBDNS
	Nodes     *CloudNodeController
	Kubelets  []*Kubelet
	// Controllers are kube-controller-manager's workload and disruption
	// controllers; Pods plays the scheduler and the kubelets.
	Controllers *Controllers
	Pods        *PodSimulator
	Namespaces  *NamespaceFinalizer
	HTTPBin     *HTTPBin
	Ingress     *Ingress
	// Proxies says which gateway proxies were created dual-stack.
	Proxies *ProxyInjector
	// IngressOperator re-creates OpenShift's router Service as its
	// IngressController asks.
	IngressOperator *IngressOperator
	// HostsFile is /etc/hosts inside the pods.
	HostsFile string

	dual atomic.Bool
}

// DefaultLBProvisionDelay is how long the interactive sandbox's new load
// balancers take to answer: AWS takes minutes; a few seconds show the
// outage of a re-created gateway without making the demo wait.
const DefaultLBProvisionDelay = 5 * time.Second

// ConversionServiceCIDRs are the apiserver's service ranges in the sandbox.
const ConversionServiceCIDRs = "172.30.0.0/16,fd02::/112"

// BuildConversionSandbox builds the world in a fresh apiserver and in srv
// (moto; reset it first if it is shared). t's cleanups stop everything.
func BuildConversionSandbox(ctx context.Context, t ktesting.TB, srv *moto.Server, o ConversionSandboxOptions) (*ConversionSandbox, error) {
	if o.Version == "" {
		o.Version = "4.10.67"
	}
	if o.HTTPBinPort == 0 {
		o.HTTPBinPort = 8000
	}
	tb, ok := t.(interface{ TempDir() string })
	if !ok {
		return nil, fmt.Errorf("test handle cannot make temp dirs")
	}
	dir := tb.TempDir()
	s := &ConversionSandbox{HostsFile: filepath.Join(dir, "hosts")}
	if err := s.writeHosts(false); err != nil {
		return nil, err
	}

	ca, err := NewKubeletCA(dir)
	if err != nil {
		return nil, err
	}
	if s.API, err = StartAPIServer(t, APIServerOptions{ServiceCIDRs: ConversionServiceCIDRs, ExtraFlags: ca.ExtraFlags()}); err != nil {
		return nil, err
	}
	if err := InstallCRDs(ctx, s.API.Config); err != nil {
		return nil, err
	}
	kc := s.API.Kube

	// Each node's kubelet listens on a loopback address of its own, which is
	// the node's (first) InternalIP.
	var nodeIPs []string
	for i := range 64 {
		nodeIPs = append(nodeIPs, fmt.Sprintf("127.0.0.%d", i+2))
	}
	if s.World, err = BuildOpenShiftOnAWS(ctx, s.API, srv, OpenShiftOnAWSOptions{
		IPI: o.IPI, Version: o.Version, Platform: o.Platform, NodeInternalIPs: nodeIPs,
	}); err != nil {
		return nil, err
	}
	if s.AWSConfig, err = srv.AWSConfig(ctx, s.World.AWS.Region); err != nil {
		return nil, err
	}
	var names []string
	for i, inst := range s.World.AWS.Instances {
		k, err := StartKubelet(ca, nodeIPs[i], s.HostsFile)
		if err != nil {
			return nil, err
		}
		t.Cleanup(k.Close)
		s.Kubelets = append(s.Kubelets, k)
		names = append(names, inst.PrivateDNSName)
		node, err := kc.CoreV1().Nodes().Get(ctx, inst.PrivateDNSName, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = k.Port
		if _, err := kc.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("setting the kubelet port of node %s: %w", node.Name, err)
		}
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.Cleanup(cancel)
	s.Operator = StartNetworkOperator(runCtx, s.API, NetworkOperatorOptions{RolloutDelay: o.RolloutDelay, Rollout: s.rollOut})
	t.Cleanup(s.Operator.Stop)
	var lbSubnets []string
	seen := map[string]bool{}
	for _, sub := range s.World.AWS.PublicSubnets() {
		if !seen[sub.AZ] {
			seen[sub.AZ] = true
			lbSubnets = append(lbSubnets, sub.ID)
		}
	}
	s.LBs = StartLBControllerWith(kc, s.AWSConfig, s.World.AWS.ClusterTagKey, lbSubnets, LBControllerOptions{ProvisionDelay: o.LBProvisionDelay})
	t.Cleanup(s.LBs.Stop)
	if s.DNS, err = StartLBDNS(s.AWSConfig); err != nil {
		return nil, err
	}
	s.DNS.SetActive(s.LBs.Active)
	t.Cleanup(s.DNS.Close)
	if s.World.AWS.PrivateZone.ID != "" {
		s.DNS.FollowRoute53(runCtx, s.AWSConfig) // the cluster's names, as Route 53 answers them
	}
	s.Nodes = StartCloudNodeController(kc, s.AWSConfig, s.World.AWS)
	t.Cleanup(s.Nodes.Stop)
	if s.Controllers, err = StartControllers(runCtx, s.API.Config); err != nil {
		return nil, err
	}
	t.Cleanup(s.Controllers.Stop)
	// Istio as istioctl installs it, before the conversion: not
	// dual-stack, istiod's Service single-stack, the gateway's proxies
	// IPv4-only until they are re-created after the mesh is switched.
	switch o.Istio {
	case "sail":
		sail, err := InstallSailIstio(ctx, s.API.Config, kc, s.API.Dynamic, "1.24.2")
		if err != nil {
			return nil, err
		}
		t.Cleanup(sail.Stop)
		if err := InstallGateway(ctx, kc, "1.24.2"); err != nil {
			return nil, err
		}
	case "helm":
		if _, err := InstallHelmIstiod(ctx, s.API.Kubeconfig, kc, "1.24.2"); err != nil {
			return nil, err
		}
		if err := InstallGateway(ctx, kc, "1.24.2"); err != nil {
			return nil, err
		}
	default:
		if err := InstallIstio(ctx, kc, IstioInstall{Version: "1.24.2", Method: "istioctl", Service: true, Gateway: true}); err != nil {
			return nil, err
		}
	}
	s.Proxies = StartProxyInjector(kc)
	t.Cleanup(s.Proxies.Stop)
	if err := InstallApplication(ctx, kc); err != nil {
		return nil, err
	}
	if s.IngressOperator, err = InstallRouterAndPolicies(ctx, kc, s.API.Dynamic, s.World.AWS); err != nil {
		return nil, err
	}
	t.Cleanup(s.IngressOperator.Stop)

	s.Pods = &PodSimulator{Kube: kc, Nodes: names, DualStackNow: s.dual.Load, Controllers: true}
	s.Pods.Start(runCtx)
	t.Cleanup(s.Pods.Stop)
	s.Namespaces = &NamespaceFinalizer{Kube: kc, Dynamic: s.API.Dynamic}
	s.Namespaces.Start(runCtx)
	t.Cleanup(s.Namespaces.Stop)

	// httpbin and the ingress listen on both families from the start; only
	// the cluster's answers (hosts file, AAAA records) decide which is used.
	if s.HTTPBin, err = StartHTTPBin(o.HTTPBinPort, true, true); err != nil {
		return nil, err
	}
	t.Cleanup(s.HTTPBin.Close)
	if s.Ingress, err = StartIngress(s.API.Dynamic, true); err != nil {
		return nil, err
	}
	s.Ingress.ServesIPv6 = s.Proxies.ServesIPv6
	t.Cleanup(s.Ingress.Close)
	// The gateway's http2 port is the ingress listener's, as the load
	// balancer forwards it; a re-created Service keeps it.
	gw, err := kc.CoreV1().Services(IstioNamespace).Get(ctx, IngressGatewayName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	for i := range gw.Spec.Ports {
		if gw.Spec.Ports[i].Name == "http2" {
			gw.Spec.Ports[i].Port = int32(s.Ingress.Port)
		}
	}
	if _, err := kc.CoreV1().Services(IstioNamespace).Update(ctx, gw, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("pointing the gateway's http2 port at the ingress: %w", err)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.followNetwork(runCtx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	// The application runs before anything is converted: its pods are
	// IPv4-only, its PDBs computed.
	if err := WaitApplicationReady(ctx, kc, 30*time.Second); err != nil {
		return nil, err
	}
	return s, nil
}

// DNSAddr is the load balancers' DNS server (host:port), for --dns-server.
func (s *ConversionSandbox) DNSAddr() string { return s.DNS.Addr }

// followNetwork plays what a converted cluster network changes for pods:
// new pods get IPv6 podIPs and cluster DNS answers AAAA for Service names.
func (s *ConversionSandbox) followNetwork(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		obj, err := s.API.Dynamic.Resource(networksConfigGVR).Get(ctx, "cluster", metav1.GetOptions{})
		if err == nil {
			dual := false
			status, _ := obj.Object["status"].(map[string]any)
			for _, e := range asSlice(status["clusterNetwork"]) {
				m, _ := e.(map[string]any)
				cidr, _ := m["cidr"].(string)
				if p, err := netip.ParsePrefix(cidr); err == nil && p.Addr().Is6() {
					dual = true
				}
			}
			if dual != s.dual.Load() {
				if s.writeHosts(dual) == nil && s.nodeSubnets(ctx, dual) == nil {
					s.dual.Store(dual)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rollOut is the network operator's rollout of OVN-Kubernetes with the new
// cluster network, done before it reports it: the nodes' subnets, then new
// pods get each family of it (followNetwork catches up with a status
// changed any other way).
func (s *ConversionSandbox) rollOut(ctx context.Context, ipv6 bool) error {
	if err := s.writeHosts(ipv6); err != nil {
		return err
	}
	if err := s.nodeSubnets(ctx, ipv6); err != nil {
		return err
	}
	s.dual.Store(ipv6)
	return nil
}

// nodeSubnets plays OVN-Kubernetes' cluster manager when the cluster
// network changes: with IPv6 each node's k8s.ovn.org/node-subnets gains an
// IPv6 subnet (a /64 of fd01::/48, the hostPrefix upgrade and network
// use); without it (a revert) the subnets of a family no longer configured
// are released from the annotation again.
func (s *ConversionSandbox) nodeSubnets(ctx context.Context, ipv6 bool) error {
	for i, inst := range s.World.AWS.Instances {
		node, err := s.API.Kube.CoreV1().Nodes().Get(ctx, inst.PrivateDNSName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		subnets := map[string][]string{}
		_ = json.Unmarshal([]byte(node.Annotations[ovnNodeSubnets]), &subnets)
		v6 := fmt.Sprintf("fd01:0:0:%x::/64", i)
		kept := slices.DeleteFunc(slices.Clone(subnets["default"]), func(c string) bool { return strings.Contains(c, ":") })
		switch {
		case ipv6 && slices.Contains(subnets["default"], v6):
			continue
		case ipv6:
			subnets["default"] = append(subnets["default"], v6)
		case len(kept) == len(subnets["default"]):
			continue
		default:
			subnets["default"] = kept
		}
		b, _ := json.Marshal(subnets)
		node.Annotations[ovnNodeSubnets] = string(b)
		if _, err := s.API.Kube.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

const ovnNodeSubnets = "k8s.ovn.org/node-subnets"

// writeHosts writes the in-pod hosts file: the httpbin Service name
// resolves to the loopback address of each family the cluster has. The file
// is rewritten in place (a bind mount follows the inode, not the name).
func (s *ConversionSandbox) writeHosts(dual bool) error {
	hosts := "127.0.0.1 localhost\n127.0.0.1 httpbin\n"
	if dual {
		hosts += "::1 localhost\n::1 httpbin\n"
	}
	return os.WriteFile(s.HostsFile, []byte(hosts), 0o644)
}
