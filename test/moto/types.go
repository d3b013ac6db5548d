package moto

import "slices"

// Role of an instance in the cluster.
type Role string

const (
	RoleControlPlane Role = "master"
	RoleWorker       Role = "worker"
)

// SGRole says what a security group is for.
type SGRole string

const (
	// SGControlPlane is <infraID>-master-sg (terraform) or <infraID>-controlplane (CAPA).
	SGControlPlane SGRole = "controlplane"
	// SGNode is <infraID>-worker-sg (terraform) or <infraID>-node (CAPA).
	SGNode SGRole = "node"
	// SGAPILB is <infraID>-apiserver-lb (CAPA only), attached to the API NLBs.
	SGAPILB SGRole = "apiserver-lb"
	// SGServiceLB is <infraID>-lb (CAPA only), CAPA's group for service load balancers.
	SGServiceLB SGRole = "lb"
	// SGRouterELB is k8s-elb-<elb name>, what the in-tree cloud provider creates for the
	// router's Classic ELB.
	SGRouterELB SGRole = "router-elb"
)

// SecurityGroupStyle selects the installer generation whose security groups are built.
type SecurityGroupStyle string

const (
	// SGStyleCAPA: OpenShift >= 4.16 (Cluster API provider AWS): <infraID>-controlplane,
	// <infraID>-node, <infraID>-apiserver-lb (on the API NLBs) and <infraID>-lb.
	SGStyleCAPA SecurityGroupStyle = "capa"
	// SGStyleTerraform: OpenShift <= 4.15: <infraID>-master-sg and <infraID>-worker-sg; the API
	// NLBs have no security group.
	SGStyleTerraform SecurityGroupStyle = "terraform"
)

// LBType is a load balancer's kind.
type LBType string

const (
	LBTypeNetwork LBType = "network" // elbv2 NLB
	LBTypeClassic LBType = "classic" // elb (v1) Classic ELB
)

// LBPurpose says what a load balancer serves.
type LBPurpose string

const (
	LBPurposeAPIInternal LBPurpose = "api-int" // <infraID>-int: API 6443 + machine config 22623
	LBPurposeAPIExternal LBPurpose = "api-ext" // <infraID>-ext: API 6443
	LBPurposeRouter      LBPurpose = "router"  // openshift-ingress/router-default Service
)

// RouterServiceName is the Service behind the router's Classic ELB.
const RouterServiceName = "openshift-ingress/router-default"

// World is everything BuildOpenShiftIPI created, with the IDs the API returned.
type World struct {
	InfraID string
	Region  string
	// ClusterTagKey is kubernetes.io/cluster/<infraID>; every installer resource has it = owned.
	ClusterTagKey string
	AZs           []string
	VPC           VPC
	// Subnets in creation order: all public ones (round-robin over AZs), then all private ones.
	Subnets           []Subnet
	InternetGatewayID string
	// NATGateways: one per AZ, in AZs order.
	NATGateways []NATGateway
	// RouteTables: the public one first (it is the VPC's main route table), then one private
	// route table per AZ in AZs order.
	RouteTables []RouteTable
	// DefaultRouteTableID is the route table AWS created with the VPC. The installer makes its
	// public route table the main one instead, so this one is left untagged, unassociated and
	// with only the local route.
	DefaultRouteTableID string
	// VPCEndpointID is the S3 gateway endpoint, attached to every route table above (it adds a
	// prefix-list route to each).
	VPCEndpointID  string
	SecurityGroups []SecurityGroup
	// Instances: control-plane ones (<infraID>-master-N) first, then workers.
	Instances     []Instance
	LoadBalancers []LoadBalancer
	TargetGroups  []TargetGroup
	Style         SecurityGroupStyle
	// NetworkACLs (IPIOptions.NetworkACLs): the default ACL, then the
	// private subnets' custom one.
	NetworkACLs []NetworkACL
	// Other is the second cluster's resources (IPIOptions.OtherCluster).
	Other *OtherCluster
	// The installer's zones (IPIOptions.HostedZones); BaseDomain is the
	// public zone's name, ClusterDomain <cluster>.<BaseDomain>, the
	// private zone's.
	PublicZone, PrivateZone   HostedZone
	BaseDomain, ClusterDomain string
}

// VPC is the cluster VPC.
type VPC struct {
	ID   string
	Name string
	CIDR string
}

// Subnet is a cluster subnet.
type Subnet struct {
	ID     string
	Name   string // <infraID>-subnet-public-us-east-1a, -private-; extra ones per AZ get -2, -3 ...
	AZ     string
	CIDR   string
	Public bool
}

// NATGateway is a per-AZ NAT gateway in the first public subnet of the AZ.
type NATGateway struct {
	ID           string
	Name         string
	AZ           string
	SubnetID     string
	AllocationID string
	PublicIP     string
}

// RouteTable is an installer route table.
type RouteTable struct {
	ID     string
	Name   string
	AZ     string // "" for the public route table
	Public bool   // 0.0.0.0/0 -> the internet gateway; else -> the AZ's NAT gateway
	Main   bool
	// DefaultTargetID is the target of 0.0.0.0/0 (igw-... or nat-...).
	DefaultTargetID string
	SubnetIDs       []string
}

// SecurityGroup is a cluster security group.
type SecurityGroup struct {
	ID   string
	Name string
	Role SGRole
}

// Instance is a cluster EC2 instance.
type Instance struct {
	ID                 string
	Name               string
	Role               Role
	AZ                 string
	SubnetID           string
	InstanceType       string
	PrivateIP          string // the primary private IPv4 (the Node's InternalIP)
	PrivateDNSName     string // ip-10-0-128-4.ec2.internal (the Node's name on AWS)
	NetworkInterfaceID string // the primary ENI
	SecurityGroupIDs   []string
}

// ProviderID is the Kubernetes Node spec.providerID of the instance: aws:///<az>/<id>.
func (i Instance) ProviderID() string { return "aws:///" + i.AZ + "/" + i.ID }

// LoadBalancer is an API NLB or the router's Classic ELB.
type LoadBalancer struct {
	Name             string
	ARN              string // "" for a Classic ELB
	DNSName          string
	Type             LBType
	Scheme           string // internal | internet-facing
	Purpose          LBPurpose
	SubnetIDs        []string
	SecurityGroupIDs []string
	Listeners        []Listener
	// ServiceName is the Kubernetes Service (namespace/name) of a cloud-provider ELB.
	ServiceName string
	// InstanceIDs registered with a Classic ELB.
	InstanceIDs []string
}

// Listener of a load balancer. For an NLB TargetGroupARN is set; for a Classic ELB
// InstancePort (the Service's nodePort).
type Listener struct {
	Protocol       string
	Port           int32
	InstancePort   int32
	TargetGroupARN string
}

// TargetGroup of an API NLB (target type ip: the control-plane private IPs).
type TargetGroup struct {
	Name             string
	ARN              string
	Protocol         string
	Port             int32
	LoadBalancerName string
	TargetIPs        []string
}

// InstancesByRole returns the instances with role r.
func (w *World) InstancesByRole(r Role) []Instance {
	var out []Instance
	for _, i := range w.Instances {
		if i.Role == r {
			out = append(out, i)
		}
	}
	return out
}

// PublicSubnets returns the public subnets.
func (w *World) PublicSubnets() []Subnet {
	return slices.DeleteFunc(slices.Clone(w.Subnets), func(s Subnet) bool { return !s.Public })
}

// PrivateSubnets returns the private subnets.
func (w *World) PrivateSubnets() []Subnet {
	return slices.DeleteFunc(slices.Clone(w.Subnets), func(s Subnet) bool { return s.Public })
}

// SubnetIDs returns the IDs of all cluster subnets.
func (w *World) SubnetIDs() []string {
	ids := make([]string, len(w.Subnets))
	for i, s := range w.Subnets {
		ids[i] = s.ID
	}
	return ids
}

// SecurityGroup returns the security group with role r.
func (w *World) SecurityGroup(r SGRole) (SecurityGroup, bool) {
	for _, g := range w.SecurityGroups {
		if g.Role == r {
			return g, true
		}
	}
	return SecurityGroup{}, false
}

// LoadBalancer returns the load balancer named name.
func (w *World) LoadBalancer(name string) (LoadBalancer, bool) {
	for _, lb := range w.LoadBalancers {
		if lb.Name == name {
			return lb, true
		}
	}
	return LoadBalancer{}, false
}

// LoadBalancerFor returns the load balancer with purpose p.
func (w *World) LoadBalancerFor(p LBPurpose) (LoadBalancer, bool) {
	for _, lb := range w.LoadBalancers {
		if lb.Purpose == p {
			return lb, true
		}
	}
	return LoadBalancer{}, false
}

// Instance returns the instance named name (its Name tag).
func (w *World) Instance(name string) (Instance, bool) {
	for _, i := range w.Instances {
		if i.Name == name {
			return i, true
		}
	}
	return Instance{}, false
}
