package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// OpenShiftOnAWSOptions shape the OpenShift-IPI-on-AWS-like world.
type OpenShiftOnAWSOptions struct {
	IPI      moto.IPIOptions
	Version  string // default 4.16.9
	Platform string // default AWS; BareMetal etc. keep the AWS resources but not the platform
	IPFamily string // platformStatus.aws.ipFamily, default IPv4
	// NodeInternalIPs, when set, are the nodes' InternalIPs in instance
	// order, instead of the instances' private IPs: a test kubelet listens
	// on each (127.0.0.N), and the apiserver reaches a node at its first.
	NodeInternalIPs []string
}

// OpenShiftOnAWS is the world as both sides see it.
type OpenShiftOnAWS struct {
	AWS *moto.World
	// IngressGateway is the Classic ELB behind istio-system/istio-ingressgateway.
	IngressGateway moto.LoadBalancer
}

// Istio's ingress gateway Service, as the Istio charts name it.
const (
	IstioNamespace      = "istio-system"
	IngressGatewayName  = "istio-ingressgateway"
	IngressGatewayLabel = "ingressgateway"
)

// BuildOpenShiftOnAWS builds in moto what an OpenShift IPI install creates on
// AWS, and in the apiserver the objects such a cluster has: Infrastructure
// (infraID, region, serviceEndpoints pointing at moto), an IPv4-only Network,
// ClusterVersion, nodes with providerIDs of the instances, and an Istio
// ingress gateway LoadBalancer Service behind a Classic ELB, as the in-tree
// cloud provider would make it.
func BuildOpenShiftOnAWS(ctx context.Context, api *APIServer, srv *moto.Server, opts OpenShiftOnAWSOptions) (*OpenShiftOnAWS, error) {
	if opts.Version == "" {
		opts.Version = "4.16.9"
	}
	if opts.Platform == "" {
		opts.Platform = "AWS"
	}
	if opts.IPFamily == "" && opts.Platform == "AWS" {
		opts.IPFamily = "IPv4"
	}
	region := opts.IPI.Region
	if region == "" {
		region = srv.Region()
	}
	cfg, err := srv.AWSConfig(ctx, region)
	if err != nil {
		return nil, err
	}
	world, err := moto.BuildOpenShiftIPI(ctx, cfg, opts.IPI)
	if err != nil {
		return nil, fmt.Errorf("building the AWS side in moto: %w\n%s", err, srv.Log())
	}
	w := &OpenShiftOnAWS{AWS: world}

	endpoints := map[string]string{}
	if srv.TLS() { // the Infrastructure CRD accepts only https endpoints
		for _, svc := range []string{"ec2", "elasticloadbalancing", "iam", "route53", "sts", "tagging"} {
			endpoints[svc] = srv.Endpoint()
		}
	}
	if err := CreateOpenShiftConfig(ctx, api.Dynamic, OpenShiftSpec{
		InfraID: world.InfraID, Version: opts.Version, Platform: opts.Platform, Region: world.Region,
		IPFamily: opts.IPFamily, ServiceEndpoints: endpoints, NetworkType: "OVNKubernetes",
		ClusterNetwork: []ClusterNetworkEntry{{CIDR: "10.128.0.0/14", HostPrefix: 23}},
		ServiceNetwork: []string{"172.30.0.0/16"},
	}); err != nil {
		return nil, err
	}

	// The installer's DNS config: the base domain, the private zone by its
	// tags (as installs before 4.12 record it) and the public zone by ID.
	if world.PrivateZone.ID != "" {
		dnsConfig := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "config.openshift.io/v1", "kind": "DNS", "metadata": map[string]any{"name": "cluster"},
			"spec": map[string]any{
				"baseDomain":  world.ClusterDomain,
				"privateZone": map[string]any{"tags": map[string]any{"Name": world.InfraID + "-int", world.ClusterTagKey: "owned"}},
				"publicZone":  map[string]any{"id": world.PublicZone.ID},
			},
		}}
		if _, err := api.Dynamic.Resource(schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "dnses"}).
			Create(ctx, dnsConfig, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("creating dns.config.openshift.io/cluster: %w", err)
		}
	}

	// The installer's cloud config for an IPv4 AWS install.
	if err := EnsureNamespace(ctx, api.Kube, CloudConfigNamespace, nil); err != nil {
		return nil, err
	}
	if _, err := api.Kube.CoreV1().ConfigMaps(CloudConfigNamespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: CloudConfigNamespace, Name: CloudConfigName},
		Data:       map[string]string{CloudConfigKey: InstallerIPv4CloudConfig},
	}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating the cloud config: %w", err)
	}

	var nodes []NodeSpec
	for i, inst := range world.Instances {
		labels := map[string]string{
			"kubernetes.io/hostname":           inst.PrivateDNSName,
			"kubernetes.io/os":                 "linux",
			"node.kubernetes.io/instance-type": inst.InstanceType,
			corev1.LabelTopologyRegion:         world.Region,
			corev1.LabelTopologyZone:           inst.AZ,
		}
		if inst.Role == moto.RoleControlPlane {
			labels["node-role.kubernetes.io/master"] = ""
			labels["node-role.kubernetes.io/control-plane"] = ""
		} else {
			labels["node-role.kubernetes.io/worker"] = ""
		}
		internalIP := inst.PrivateIP
		if i < len(opts.NodeInternalIPs) {
			internalIP = opts.NodeInternalIPs[i]
		}
		nodes = append(nodes, NodeSpec{
			Name: inst.PrivateDNSName, ProviderID: inst.ProviderID(), Hostname: inst.PrivateDNSName,
			InternalIPs: []string{internalIP}, Labels: labels,
			Annotations: map[string]string{"k8s.ovn.org/node-subnets": fmt.Sprintf(`{"default":["10.128.%d.0/23"]}`, 2*i)},
		})
	}
	if err := CreateNodes(ctx, api.Kube, nodes); err != nil {
		return nil, err
	}

	gw, err := createClassicELB(ctx, cfg, world, IstioNamespace+"/"+IngressGatewayName)
	if err != nil {
		return nil, err
	}
	w.IngressGateway = gw
	if _, err := CreateLoadBalancerService(ctx, api.Kube, LoadBalancerServiceSpec{
		Namespace: IstioNamespace, Name: IngressGatewayName,
		Labels:   map[string]string{"app": IngressGatewayName, "istio": IngressGatewayLabel},
		Selector: map[string]string{"app": IngressGatewayName, "istio": IngressGatewayLabel},
		Ports: []corev1.ServicePort{
			{Name: "http2", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP},
			{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443), Protocol: corev1.ProtocolTCP},
		},
		Hostname: gw.DNSName,
	}); err != nil {
		return nil, err
	}
	return w, nil
}

// createClassicELB makes the Classic ELB the in-tree AWS cloud provider
// creates for a LoadBalancer Service without the nlb annotation.
func createClassicELB(ctx context.Context, cfg aws.Config, world *moto.World, service string) (moto.LoadBalancer, error) {
	client := elb.NewFromConfig(cfg)
	sum := sha256.Sum256([]byte(world.InfraID + "/" + service))
	name := "a" + hex.EncodeToString(sum[:])[:31] // "a" + 31 hex digits, like the cloud provider's names
	var subnets []string
	seen := map[string]bool{}
	for _, s := range world.PublicSubnets() {
		if !seen[s.AZ] {
			seen[s.AZ] = true
			subnets = append(subnets, s.ID)
		}
	}
	out, err := client.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{
		LoadBalancerName: aws.String(name),
		Subnets:          subnets,
		Listeners: []elbtypes.Listener{
			{Protocol: aws.String("TCP"), LoadBalancerPort: 80, InstanceProtocol: aws.String("TCP"), InstancePort: aws.Int32(31380)},
			{Protocol: aws.String("TCP"), LoadBalancerPort: 443, InstanceProtocol: aws.String("TCP"), InstancePort: aws.Int32(31390)},
		},
		Tags: []elbtypes.Tag{
			{Key: aws.String(world.ClusterTagKey), Value: aws.String("owned")},
			{Key: aws.String("kubernetes.io/service-name"), Value: aws.String(service)},
		},
	})
	if err != nil {
		return moto.LoadBalancer{}, fmt.Errorf("creating the Classic ELB for %s: %w", service, err)
	}
	return moto.LoadBalancer{Name: name, DNSName: aws.ToString(out.DNSName), Type: moto.LBTypeClassic,
		Scheme: "internet-facing", SubnetIDs: subnets, ServiceName: service}, nil
}
