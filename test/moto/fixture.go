package moto

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// Defaults of IPIOptions.
const (
	DefaultInfraID              = "demo-x7k2p"
	DefaultVPCCIDR              = "10.0.0.0/16"
	DefaultControlPlaneType     = "m6i.xlarge"
	DefaultWorkerType           = "m6i.large"
	DefaultImageID              = "ami-0c1d2e3f4a5b6c7d8" // moto does not validate AMIs
	DefaultControlPlaneReplicas = 3
	DefaultWorkerReplicas       = 3
)

// IPIOptions shapes BuildOpenShiftIPI. The zero value builds the installer's default
// 3-AZ cluster: 6 subnets, 3 control-plane and 3 worker instances.
type IPIOptions struct {
	// InfraID is the cluster's infrastructure name (<= 27 characters). Default demo-x7k2p.
	InfraID string
	// Region defaults to cfg.Region, else us-east-1.
	Region string
	// AZs defaults to <region>a, b, c.
	AZs []string
	// VPCCIDR defaults to 10.0.0.0/16.
	VPCCIDR string
	// Subnets is the total number of subnets, at least 2*len(AZs) (the default). Half (rounded
	// down) are public, in the first half of the VPC CIDR; the rest private, in the second half.
	// Subnets go round-robin over the AZs. With the default count they are the installer's
	// /20s (10.0.0.0/20, 10.0.16.0/20, 10.0.32.0/20 public; 10.0.128.0/20 ... private); with more
	// they shrink (30 per half -> /22), down to /28.
	Subnets int
	// ControlPlane and Workers are instance counts (default 3 each); negative means 0.
	// They go round-robin over the private subnets.
	ControlPlane int
	Workers      int
	// Instance types: default m6i.xlarge (control plane) and m6i.large (workers).
	ControlPlaneInstanceType string
	WorkerInstanceType       string
	// ImageID for RunInstances (moto accepts any).
	ImageID string
	// SecurityGroupStyle defaults to SGStyleCAPA.
	SecurityGroupStyle SecurityGroupStyle
	// NoRouterELB skips the router's Classic ELB (and its security group).
	NoRouterELB bool
	// NetworkACLs adds a custom network ACL with IPv4-only entries on the
	// private subnets and modifies the default ACL (see extras.go).
	NetworkACLs bool
	// OtherCluster, when set, is the infraID of a second cluster with a
	// subnet, route table, network ACL, security group and instance in the
	// same VPC.
	OtherCluster string
	// HostedZones, when set, adds the installer's Route 53 zones and records.
	HostedZones *HostedZoneOptions
	// Seed makes the random parts (worker name suffixes, ELB name, node ports) different for
	// the same InfraID; they are deterministic for a given InfraID and Seed.
	Seed uint64
}

// BuildOpenShiftIPI creates, through the AWS API, what `openshift-install` (IPI, AWS) and the
// in-tree cloud provider create for a cluster: the VPC with public and private subnets in each
// AZ, internet gateway, per-AZ NAT gateways with EIPs, the public and per-AZ private route
// tables, an S3 gateway endpoint, the security groups (IPv4 rules only), control-plane and worker
// instances, the API NLBs <infraID>-int and <infraID>-ext with their target groups, and the
// router's Classic ELB. Everything is tagged kubernetes.io/cluster/<infraID>=owned and Name.
//
// cfg is typically Server.AWSConfig. It is meant for a fresh (reset) moto; it does not look for
// existing resources.
func BuildOpenShiftIPI(ctx context.Context, cfg aws.Config, opts IPIOptions) (*World, error) {
	b, err := newBuilder(cfg, opts)
	if err != nil {
		return nil, err
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"vpc", b.vpc},
		{"internet gateway", b.internetGateway},
		{"subnets", b.subnets},
		{"public route table", b.publicRouteTable},
		{"nat gateways", b.natGateways},
		{"private route tables", b.privateRouteTables},
		{"s3 endpoint", b.s3Endpoint},
		{"security groups", b.securityGroups},
		{"instances", b.instances},
		{"api load balancers", b.apiLoadBalancers},
		{"router elb", b.routerELB},
		{"network acls", b.networkACLs},
		{"other cluster", b.otherCluster},
		{"hosted zones", b.hostedZones},
	}
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			return b.w, fmt.Errorf("moto: BuildOpenShiftIPI %s: %s: %w", b.w.InfraID, s.name, err)
		}
	}
	return b.w, nil
}

type builder struct {
	cfg   aws.Config
	opts  IPIOptions
	w     *World
	ec2   *ec2.Client
	elb   *elb.Client
	elbv2 *elbv2.Client
	rng   *rand.Rand
	vpc4  netip.Prefix
}

func newBuilder(cfg aws.Config, o IPIOptions) (*builder, error) {
	if o.InfraID == "" {
		o.InfraID = DefaultInfraID
	}
	if len(o.InfraID) > 27 {
		return nil, fmt.Errorf("moto: infraID %q is longer than 27 characters (load balancer names would exceed 32)", o.InfraID)
	}
	if o.Region == "" {
		o.Region = cfg.Region
	}
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if len(o.AZs) == 0 {
		o.AZs = []string{o.Region + "a", o.Region + "b", o.Region + "c"}
	}
	if o.VPCCIDR == "" {
		o.VPCCIDR = DefaultVPCCIDR
	}
	vpc4, err := netip.ParsePrefix(o.VPCCIDR)
	if err != nil || !vpc4.Addr().Is4() || vpc4.Masked() != vpc4 || vpc4.Bits() > 24 {
		return nil, fmt.Errorf("moto: VPCCIDR %q must be an IPv4 network of /24 or larger", o.VPCCIDR)
	}
	if o.Subnets == 0 {
		o.Subnets = 2 * len(o.AZs)
	}
	if o.Subnets < 2*len(o.AZs) {
		return nil, fmt.Errorf("moto: %d subnets is fewer than a public and a private one in each of %d AZs", o.Subnets, len(o.AZs))
	}
	if o.ControlPlane == 0 {
		o.ControlPlane = DefaultControlPlaneReplicas
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkerReplicas
	}
	o.ControlPlane, o.Workers = max(o.ControlPlane, 0), max(o.Workers, 0)
	if o.ControlPlaneInstanceType == "" {
		o.ControlPlaneInstanceType = DefaultControlPlaneType
	}
	if o.WorkerInstanceType == "" {
		o.WorkerInstanceType = DefaultWorkerType
	}
	if o.ImageID == "" {
		o.ImageID = DefaultImageID
	}
	if o.SecurityGroupStyle == "" {
		o.SecurityGroupStyle = SGStyleCAPA
	}
	if o.SecurityGroupStyle != SGStyleCAPA && o.SecurityGroupStyle != SGStyleTerraform {
		return nil, fmt.Errorf("moto: unknown SecurityGroupStyle %q", o.SecurityGroupStyle)
	}

	h := fnv.New64a()
	h.Write([]byte(o.InfraID))
	region := func(opt *ec2.Options) { opt.Region = o.Region }
	if o.HostedZones != nil {
		z := *o.HostedZones
		o.HostedZones = &z
	}
	return &builder{
		cfg:  cfg,
		opts: o,
		w: &World{
			InfraID:       o.InfraID,
			Region:        o.Region,
			ClusterTagKey: "kubernetes.io/cluster/" + o.InfraID,
			AZs:           append([]string(nil), o.AZs...),
			Style:         o.SecurityGroupStyle,
		},
		ec2:   ec2.NewFromConfig(cfg, region),
		elb:   elb.NewFromConfig(cfg, func(opt *elb.Options) { opt.Region = o.Region }),
		elbv2: elbv2.NewFromConfig(cfg, func(opt *elbv2.Options) { opt.Region = o.Region }),
		rng:   rand.New(rand.NewPCG(h.Sum64(), o.Seed)),
		vpc4:  vpc4,
	}, nil
}

func (b *builder) tagSpec(rt ec2types.ResourceType, name string, extra ...ec2types.Tag) []ec2types.TagSpecification {
	tags := []ec2types.Tag{
		{Key: aws.String("Name"), Value: aws.String(name)},
		{Key: aws.String(b.w.ClusterTagKey), Value: aws.String("owned")},
	}
	if b.opts.SecurityGroupStyle == SGStyleCAPA {
		tags = append(tags, ec2types.Tag{
			Key: aws.String("sigs.k8s.io/cluster-api-provider-aws/cluster/" + b.w.InfraID), Value: aws.String("owned"),
		})
	}
	return []ec2types.TagSpecification{{ResourceType: rt, Tags: append(tags, extra...)}}
}

func (b *builder) vpc(ctx context.Context) error {
	name := b.w.InfraID + "-vpc"
	out, err := b.ec2.CreateVpc(ctx, &ec2.CreateVpcInput{
		CidrBlock:         aws.String(b.opts.VPCCIDR),
		TagSpecifications: b.tagSpec(ec2types.ResourceTypeVpc, name),
	})
	if err != nil {
		return err
	}
	id := aws.ToString(out.Vpc.VpcId)
	b.w.VPC = VPC{ID: id, Name: name, CIDR: b.opts.VPCCIDR}
	for _, in := range []*ec2.ModifyVpcAttributeInput{
		{VpcId: &id, EnableDnsSupport: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}},
		{VpcId: &id, EnableDnsHostnames: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}},
	} {
		if _, err := b.ec2.ModifyVpcAttribute(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) internetGateway(ctx context.Context) error {
	out, err := b.ec2.CreateInternetGateway(ctx, &ec2.CreateInternetGatewayInput{
		TagSpecifications: b.tagSpec(ec2types.ResourceTypeInternetGateway, b.w.InfraID+"-igw"),
	})
	if err != nil {
		return err
	}
	b.w.InternetGatewayID = aws.ToString(out.InternetGateway.InternetGatewayId)
	_, err = b.ec2.AttachInternetGateway(ctx, &ec2.AttachInternetGatewayInput{
		InternetGatewayId: aws.String(b.w.InternetGatewayID), VpcId: aws.String(b.w.VPC.ID),
	})
	return err
}

// subnetCIDRs carves n subnets from one half of the VPC (half 0: first, 1: second).
func (b *builder) subnetCIDRs(half, n int) ([]netip.Prefix, error) {
	halfBits := b.vpc4.Bits() + 1
	size := max(b.vpc4.Bits()+4, halfBits+bits.Len(uint(n-1)))
	if size > 28 {
		return nil, fmt.Errorf("%d subnets do not fit in half of %s (they would be smaller than /28)", n, b.vpc4)
	}
	a4 := b.vpc4.Addr().As4()
	base := binary.BigEndian.Uint32(a4[:]) + uint32(half)<<(32-halfBits)
	out := make([]netip.Prefix, n)
	for i := range n {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(i)<<(32-size))
		out[i] = netip.PrefixFrom(netip.AddrFrom4(a), size)
	}
	return out, nil
}

func (b *builder) subnets(ctx context.Context) error {
	nPublic := b.opts.Subnets / 2
	counts := []int{nPublic, b.opts.Subnets - nPublic}
	for half, public := range []bool{true, false} {
		cidrs, err := b.subnetCIDRs(half, counts[half])
		if err != nil {
			return err
		}
		kind, elbRole := "private", "kubernetes.io/role/internal-elb"
		if public {
			kind, elbRole = "public", "kubernetes.io/role/elb"
		}
		for i, cidr := range cidrs {
			az := b.opts.AZs[i%len(b.opts.AZs)]
			name := fmt.Sprintf("%s-subnet-%s-%s", b.w.InfraID, kind, az)
			if nth := i / len(b.opts.AZs); nth > 0 {
				name += "-" + strconv.Itoa(nth+1)
			}
			out, err := b.ec2.CreateSubnet(ctx, &ec2.CreateSubnetInput{
				VpcId:            aws.String(b.w.VPC.ID),
				CidrBlock:        aws.String(cidr.String()),
				AvailabilityZone: aws.String(az),
				TagSpecifications: b.tagSpec(ec2types.ResourceTypeSubnet, name,
					ec2types.Tag{Key: aws.String(elbRole), Value: aws.String("1")}),
			})
			if err != nil {
				return fmt.Errorf("%s (%s): %w", name, cidr, err)
			}
			b.w.Subnets = append(b.w.Subnets, Subnet{
				ID: aws.ToString(out.Subnet.SubnetId), Name: name, AZ: az, CIDR: cidr.String(), Public: public,
			})
		}
	}
	return nil
}

// firstSubnets returns the first subnet of each AZ (in AZ order) with the given visibility.
func (b *builder) firstSubnets(public bool) []Subnet {
	var out []Subnet
	for _, az := range b.opts.AZs {
		for _, s := range b.w.Subnets {
			if s.Public == public && s.AZ == az {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func (b *builder) associate(ctx context.Context, rt *RouteTable, subnets []Subnet) error {
	for _, s := range subnets {
		if _, err := b.ec2.AssociateRouteTable(ctx, &ec2.AssociateRouteTableInput{
			RouteTableId: aws.String(rt.ID), SubnetId: aws.String(s.ID),
		}); err != nil {
			return fmt.Errorf("associate %s with %s: %w", rt.Name, s.Name, err)
		}
		rt.SubnetIDs = append(rt.SubnetIDs, s.ID)
	}
	return nil
}

func (b *builder) routeTable(ctx context.Context, name string) (string, error) {
	out, err := b.ec2.CreateRouteTable(ctx, &ec2.CreateRouteTableInput{
		VpcId:             aws.String(b.w.VPC.ID),
		TagSpecifications: b.tagSpec(ec2types.ResourceTypeRouteTable, name),
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return aws.ToString(out.RouteTable.RouteTableId), nil
}

func (b *builder) publicRouteTable(ctx context.Context) error {
	// The route table AWS created with the VPC; the installer replaces it as main.
	main, err := b.ec2.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: []ec2types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{b.w.VPC.ID}},
		{Name: aws.String("association.main"), Values: []string{"true"}},
	}})
	if err != nil {
		return err
	}
	var mainAssoc string
	if len(main.RouteTables) == 1 {
		b.w.DefaultRouteTableID = aws.ToString(main.RouteTables[0].RouteTableId)
		for _, a := range main.RouteTables[0].Associations {
			if aws.ToBool(a.Main) {
				mainAssoc = aws.ToString(a.RouteTableAssociationId)
			}
		}
	}

	rt := RouteTable{Name: b.w.InfraID + "-public", Public: true, DefaultTargetID: b.w.InternetGatewayID}
	if rt.ID, err = b.routeTable(ctx, rt.Name); err != nil {
		return err
	}
	if _, err := b.ec2.CreateRoute(ctx, &ec2.CreateRouteInput{
		RouteTableId: aws.String(rt.ID), DestinationCidrBlock: aws.String("0.0.0.0/0"),
		GatewayId: aws.String(b.w.InternetGatewayID),
	}); err != nil {
		return err
	}
	if mainAssoc != "" {
		if _, err := b.ec2.ReplaceRouteTableAssociation(ctx, &ec2.ReplaceRouteTableAssociationInput{
			AssociationId: aws.String(mainAssoc), RouteTableId: aws.String(rt.ID),
		}); err != nil {
			return fmt.Errorf("make %s main: %w", rt.Name, err)
		}
		rt.Main = true
	}
	if err := b.associate(ctx, &rt, b.w.PublicSubnets()); err != nil {
		return err
	}
	b.w.RouteTables = append(b.w.RouteTables, rt)
	return nil
}

func (b *builder) natGateways(ctx context.Context) error {
	for _, s := range b.firstSubnets(true) {
		eip, err := b.ec2.AllocateAddress(ctx, &ec2.AllocateAddressInput{
			Domain:            ec2types.DomainTypeVpc,
			TagSpecifications: b.tagSpec(ec2types.ResourceTypeElasticIp, b.w.InfraID+"-eip-"+s.AZ),
		})
		if err != nil {
			return err
		}
		name := b.w.InfraID + "-nat-" + s.AZ
		out, err := b.ec2.CreateNatGateway(ctx, &ec2.CreateNatGatewayInput{
			SubnetId:          aws.String(s.ID),
			AllocationId:      eip.AllocationId,
			TagSpecifications: b.tagSpec(ec2types.ResourceTypeNatgateway, name),
		})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		b.w.NATGateways = append(b.w.NATGateways, NATGateway{
			ID: aws.ToString(out.NatGateway.NatGatewayId), Name: name, AZ: s.AZ, SubnetID: s.ID,
			AllocationID: aws.ToString(eip.AllocationId), PublicIP: aws.ToString(eip.PublicIp),
		})
	}
	return nil
}

func (b *builder) privateRouteTables(ctx context.Context) error {
	for _, nat := range b.w.NATGateways {
		rt := RouteTable{Name: b.w.InfraID + "-private-" + nat.AZ, AZ: nat.AZ, DefaultTargetID: nat.ID}
		var err error
		if rt.ID, err = b.routeTable(ctx, rt.Name); err != nil {
			return err
		}
		if _, err := b.ec2.CreateRoute(ctx, &ec2.CreateRouteInput{
			RouteTableId: aws.String(rt.ID), DestinationCidrBlock: aws.String("0.0.0.0/0"),
			NatGatewayId: aws.String(nat.ID),
		}); err != nil {
			return err
		}
		var subnets []Subnet
		for _, s := range b.w.PrivateSubnets() {
			if s.AZ == nat.AZ {
				subnets = append(subnets, s)
			}
		}
		if err := b.associate(ctx, &rt, subnets); err != nil {
			return err
		}
		b.w.RouteTables = append(b.w.RouteTables, rt)
	}
	return nil
}

func (b *builder) s3Endpoint(ctx context.Context) error {
	ids := make([]string, len(b.w.RouteTables))
	for i, rt := range b.w.RouteTables {
		ids[i] = rt.ID
	}
	out, err := b.ec2.CreateVpcEndpoint(ctx, &ec2.CreateVpcEndpointInput{
		VpcId:             aws.String(b.w.VPC.ID),
		ServiceName:       aws.String("com.amazonaws." + b.w.Region + ".s3"),
		VpcEndpointType:   ec2types.VpcEndpointTypeGateway,
		RouteTableIds:     ids,
		TagSpecifications: b.tagSpec(ec2types.ResourceTypeVpcEndpoint, b.w.InfraID+"-vpce-s3"),
	})
	if err != nil {
		return err
	}
	b.w.VPCEndpointID = aws.ToString(out.VpcEndpoint.VpcEndpointId)
	return nil
}

// Rule builders (IPv4 only; the IPv6 mirror is the product's job).
func cidrRule(proto string, from, to int32, cidr, desc string) ec2types.IpPermission {
	return ec2types.IpPermission{
		IpProtocol: aws.String(proto), FromPort: aws.Int32(from), ToPort: aws.Int32(to),
		IpRanges: []ec2types.IpRange{{CidrIp: aws.String(cidr), Description: optional(desc)}},
	}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func groupRule(proto string, from, to int32, groupID, desc string) ec2types.IpPermission {
	p := ec2types.IpPermission{
		IpProtocol:       aws.String(proto),
		UserIdGroupPairs: []ec2types.UserIdGroupPair{{GroupId: aws.String(groupID), Description: optional(desc)}},
	}
	if proto != "-1" {
		p.FromPort, p.ToPort = aws.Int32(from), aws.Int32(to)
	}
	return p
}

func allFromCIDR(proto, cidr, desc string) ec2types.IpPermission {
	// icmp with -1/-1 is "all ICMP".
	return cidrRule(proto, -1, -1, cidr, desc)
}

func (b *builder) createSG(ctx context.Context, name string, role SGRole, desc string) (SecurityGroup, error) {
	out, err := b.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName:         aws.String(name),
		Description:       aws.String(desc),
		VpcId:             aws.String(b.w.VPC.ID),
		TagSpecifications: b.tagSpec(ec2types.ResourceTypeSecurityGroup, name),
	})
	if err != nil {
		return SecurityGroup{}, fmt.Errorf("%s: %w", name, err)
	}
	// New groups already allow all IPv4 egress (0.0.0.0/0, protocol -1), as on AWS, which is
	// the installer's egress rule.
	sg := SecurityGroup{ID: aws.ToString(out.GroupId), Name: name, Role: role}
	b.w.SecurityGroups = append(b.w.SecurityGroups, sg)
	return sg, nil
}

func (b *builder) authorize(ctx context.Context, sg SecurityGroup, perms ...ec2types.IpPermission) error {
	if len(perms) == 0 {
		return nil
	}
	if _, err := b.ec2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: aws.String(sg.ID), IpPermissions: perms,
	}); err != nil {
		return fmt.Errorf("ingress of %s: %w", sg.Name, err)
	}
	return nil
}

func (b *builder) securityGroups(ctx context.Context) error {
	id, vpc := b.w.InfraID, b.w.VPC.CIDR
	var cpName, nodeName string
	if b.opts.SecurityGroupStyle == SGStyleTerraform {
		cpName, nodeName = id+"-master-sg", id+"-worker-sg"
	} else {
		cpName, nodeName = id+"-controlplane", id+"-node"
	}
	cp, err := b.createSG(ctx, cpName, SGControlPlane, "Kubernetes cluster "+id+": controlplane")
	if err != nil {
		return err
	}
	node, err := b.createSG(ctx, nodeName, SGNode, "Kubernetes cluster "+id+": node")
	if err != nil {
		return err
	}
	cpRules := []ec2types.IpPermission{
		allFromCIDR("icmp", "0.0.0.0/0", "ICMP"),
		cidrRule("tcp", 22, 22, "0.0.0.0/0", "SSH"),
		cidrRule("tcp", 6443, 6443, "0.0.0.0/0", "Kubernetes API"),
		cidrRule("tcp", 22623, 22623, vpc, "Machine Config Server"),
		groupRule("-1", 0, 0, cp.ID, "All traffic from controlplane"),
		groupRule("-1", 0, 0, node.ID, "All traffic from nodes"),
	}
	nodeRules := []ec2types.IpPermission{
		allFromCIDR("icmp", "0.0.0.0/0", "ICMP"),
		cidrRule("tcp", 22, 22, "0.0.0.0/0", "SSH"),
		cidrRule("tcp", 30000, 32767, vpc, "Kubernetes NodePort services (TCP)"),
		cidrRule("udp", 30000, 32767, vpc, "Kubernetes NodePort services (UDP)"),
		groupRule("-1", 0, 0, node.ID, "All traffic from nodes"),
		groupRule("-1", 0, 0, cp.ID, "All traffic from controlplane"),
	}
	if b.opts.SecurityGroupStyle == SGStyleCAPA {
		// CAPA restricts SSH to the machine network.
		cpRules[1] = cidrRule("tcp", 22, 22, vpc, "SSH")
		nodeRules[1] = cidrRule("tcp", 22, 22, vpc, "SSH")
		apiLB, err := b.createSG(ctx, id+"-apiserver-lb", SGAPILB, "Kubernetes cluster "+id+": apiserver-lb")
		if err != nil {
			return err
		}
		if err := b.authorize(ctx, apiLB,
			cidrRule("tcp", 6443, 6443, "0.0.0.0/0", "Kubernetes API"),
			cidrRule("tcp", 22623, 22623, vpc, "Machine Config Server"),
		); err != nil {
			return err
		}
		if _, err := b.createSG(ctx, id+"-lb", SGServiceLB, "Kubernetes cluster "+id+": lb"); err != nil {
			return err
		}
	}
	if err := b.authorize(ctx, cp, cpRules...); err != nil {
		return err
	}
	return b.authorize(ctx, node, nodeRules...)
}

// suffix is a Kubernetes generateName-style random suffix.
func (b *builder) suffix(n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	s := make([]byte, n)
	for i := range s {
		s[i] = alphabet[b.rng.IntN(len(alphabet))]
	}
	return string(s)
}

func (b *builder) instances(ctx context.Context) error {
	private := b.w.PrivateSubnets()
	cp, _ := b.w.SecurityGroup(SGControlPlane)
	node, _ := b.w.SecurityGroup(SGNode)
	for i := range b.opts.ControlPlane + b.opts.Workers {
		s := private[i%len(private)]
		in := Instance{Role: RoleControlPlane, AZ: s.AZ, SubnetID: s.ID, InstanceType: b.opts.ControlPlaneInstanceType}
		sg := cp.ID
		if i < b.opts.ControlPlane {
			in.Name = fmt.Sprintf("%s-master-%d", b.w.InfraID, i)
		} else {
			in.Role, in.InstanceType, sg = RoleWorker, b.opts.WorkerInstanceType, node.ID
			in.Name = fmt.Sprintf("%s-worker-%s-%s", b.w.InfraID, s.AZ, b.suffix(5))
		}
		out, err := b.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId:           aws.String(b.opts.ImageID),
			InstanceType:      ec2types.InstanceType(in.InstanceType),
			MinCount:          aws.Int32(1),
			MaxCount:          aws.Int32(1),
			SubnetId:          aws.String(s.ID),
			SecurityGroupIds:  []string{sg},
			TagSpecifications: b.tagSpec(ec2types.ResourceTypeInstance, in.Name),
		})
		if err != nil {
			return fmt.Errorf("%s: %w", in.Name, err)
		}
		if len(out.Instances) != 1 {
			return fmt.Errorf("%s: RunInstances returned %d instances", in.Name, len(out.Instances))
		}
		r := out.Instances[0]
		in.ID = aws.ToString(r.InstanceId)
		in.PrivateIP = aws.ToString(r.PrivateIpAddress)
		in.PrivateDNSName = aws.ToString(r.PrivateDnsName)
		if r.Placement != nil && aws.ToString(r.Placement.AvailabilityZone) != "" {
			in.AZ = aws.ToString(r.Placement.AvailabilityZone)
		}
		for _, ni := range r.NetworkInterfaces {
			if ni.Attachment != nil && aws.ToInt32(ni.Attachment.DeviceIndex) == 0 {
				in.NetworkInterfaceID = aws.ToString(ni.NetworkInterfaceId)
			}
		}
		if in.NetworkInterfaceID == "" && len(r.NetworkInterfaces) > 0 {
			in.NetworkInterfaceID = aws.ToString(r.NetworkInterfaces[0].NetworkInterfaceId)
		}
		for _, g := range r.SecurityGroups {
			in.SecurityGroupIDs = append(in.SecurityGroupIDs, aws.ToString(g.GroupId))
		}
		b.w.Instances = append(b.w.Instances, in)
	}
	return nil
}

func (b *builder) elbv2Tags() []elbv2types.Tag {
	return []elbv2types.Tag{{Key: aws.String(b.w.ClusterTagKey), Value: aws.String("owned")}}
}

func (b *builder) targetGroup(ctx context.Context, name string, port int32, hcPath, lbName string) (*TargetGroup, error) {
	out, err := b.elbv2.CreateTargetGroup(ctx, &elbv2.CreateTargetGroupInput{
		Name:                       aws.String(name),
		Protocol:                   elbv2types.ProtocolEnumTcp,
		Port:                       aws.Int32(port),
		VpcId:                      aws.String(b.w.VPC.ID),
		TargetType:                 elbv2types.TargetTypeEnumIp,
		HealthCheckProtocol:        elbv2types.ProtocolEnumHttps,
		HealthCheckPath:            aws.String(hcPath),
		HealthCheckPort:            aws.String(strconv.Itoa(int(port))),
		HealthCheckIntervalSeconds: aws.Int32(10),
		HealthyThresholdCount:      aws.Int32(2),
		UnhealthyThresholdCount:    aws.Int32(2),
		Tags:                       b.elbv2Tags(),
	})
	if err != nil {
		return nil, fmt.Errorf("target group %s: %w", name, err)
	}
	if len(out.TargetGroups) != 1 {
		return nil, fmt.Errorf("target group %s: CreateTargetGroup returned %d groups", name, len(out.TargetGroups))
	}
	tg := &TargetGroup{
		Name: name, ARN: aws.ToString(out.TargetGroups[0].TargetGroupArn), Protocol: "TCP", Port: port,
		LoadBalancerName: lbName,
	}
	var targets []elbv2types.TargetDescription
	for _, in := range b.w.InstancesByRole(RoleControlPlane) {
		targets = append(targets, elbv2types.TargetDescription{Id: aws.String(in.PrivateIP), Port: aws.Int32(port)})
		tg.TargetIPs = append(tg.TargetIPs, in.PrivateIP)
	}
	if len(targets) > 0 {
		if _, err := b.elbv2.RegisterTargets(ctx, &elbv2.RegisterTargetsInput{TargetGroupArn: aws.String(tg.ARN), Targets: targets}); err != nil {
			return nil, fmt.Errorf("register targets of %s: %w", name, err)
		}
	}
	b.w.TargetGroups = append(b.w.TargetGroups, *tg)
	return tg, nil
}

func (b *builder) apiLoadBalancers(ctx context.Context) error {
	id := b.w.InfraID
	var sgs []string
	if g, ok := b.w.SecurityGroup(SGAPILB); ok {
		sgs = []string{g.ID}
	}
	type listener struct {
		tg     string
		port   int32
		hcPath string
	}
	for _, spec := range []struct {
		name      string
		scheme    elbv2types.LoadBalancerSchemeEnum
		purpose   LBPurpose
		public    bool
		listeners []listener
	}{
		{id + "-int", elbv2types.LoadBalancerSchemeEnumInternal, LBPurposeAPIInternal, false,
			[]listener{{id + "-aint", 6443, "/readyz"}, {id + "-sint", 22623, "/healthz"}}},
		{id + "-ext", elbv2types.LoadBalancerSchemeEnumInternetFacing, LBPurposeAPIExternal, true,
			[]listener{{id + "-aext", 6443, "/readyz"}}},
	} {
		var subnetIDs []string
		for _, s := range b.firstSubnets(spec.public) {
			subnetIDs = append(subnetIDs, s.ID)
		}
		out, err := b.elbv2.CreateLoadBalancer(ctx, &elbv2.CreateLoadBalancerInput{
			Name:           aws.String(spec.name),
			Type:           elbv2types.LoadBalancerTypeEnumNetwork,
			Scheme:         spec.scheme,
			IpAddressType:  elbv2types.IpAddressTypeIpv4,
			Subnets:        subnetIDs,
			SecurityGroups: sgs,
			Tags:           b.elbv2Tags(),
		})
		if err != nil {
			return fmt.Errorf("%s: %w", spec.name, err)
		}
		if len(out.LoadBalancers) != 1 {
			return fmt.Errorf("%s: CreateLoadBalancer returned %d load balancers", spec.name, len(out.LoadBalancers))
		}
		r := out.LoadBalancers[0]
		lb := LoadBalancer{
			Name: spec.name, ARN: aws.ToString(r.LoadBalancerArn), DNSName: aws.ToString(r.DNSName),
			Type: LBTypeNetwork, Scheme: string(spec.scheme), Purpose: spec.purpose,
			SubnetIDs: subnetIDs, SecurityGroupIDs: sgs,
		}
		for _, l := range spec.listeners {
			tg, err := b.targetGroup(ctx, l.tg, l.port, l.hcPath, spec.name)
			if err != nil {
				return err
			}
			if _, err := b.elbv2.CreateListener(ctx, &elbv2.CreateListenerInput{
				LoadBalancerArn: aws.String(lb.ARN),
				Protocol:        elbv2types.ProtocolEnumTcp,
				Port:            aws.Int32(l.port),
				DefaultActions: []elbv2types.Action{{
					Type: elbv2types.ActionTypeEnumForward, TargetGroupArn: aws.String(tg.ARN),
				}},
			}); err != nil {
				return fmt.Errorf("listener %d of %s: %w", l.port, spec.name, err)
			}
			lb.Listeners = append(lb.Listeners, Listener{Protocol: "TCP", Port: l.port, TargetGroupARN: tg.ARN})
		}
		b.w.LoadBalancers = append(b.w.LoadBalancers, lb)
	}
	return nil
}

// routerELB does what the in-tree AWS cloud provider does for the router-default
// LoadBalancer Service (externalTrafficPolicy: Local, ports 80 and 443).
func (b *builder) routerELB(ctx context.Context) error {
	if b.opts.NoRouterELB {
		return nil
	}
	// "a" + the Service UID without dashes, cut to 32 characters.
	var uid [16]byte
	binary.BigEndian.PutUint64(uid[:8], b.rng.Uint64())
	binary.BigEndian.PutUint64(uid[8:], b.rng.Uint64())
	name := fmt.Sprintf("a%x", uid)[:32]
	httpPort := int32(30000 + b.rng.IntN(2767))
	httpsPort := httpPort + 1
	hcPort := httpPort + 2

	sg, err := b.createSG(ctx, "k8s-elb-"+name, SGRouterELB,
		"Security group for Kubernetes ELB "+name+" ("+RouterServiceName+")")
	if err != nil {
		return err
	}
	if err := b.authorize(ctx, sg,
		cidrRule("tcp", 80, 80, "0.0.0.0/0", ""),
		cidrRule("tcp", 443, 443, "0.0.0.0/0", ""),
		cidrRule("icmp", 3, 4, "0.0.0.0/0", ""), // type 3 (unreachable) code 4 (fragmentation needed): path MTU discovery
	); err != nil {
		return err
	}
	// The provider lets the ELB reach the nodes: all traffic from its group to the cluster's
	// node security group.
	if node, ok := b.w.SecurityGroup(SGNode); ok {
		if err := b.authorize(ctx, node, groupRule("-1", 0, 0, sg.ID, "")); err != nil {
			return err
		}
	}

	var subnetIDs []string
	for _, s := range b.firstSubnets(true) {
		subnetIDs = append(subnetIDs, s.ID)
	}
	listeners := []Listener{
		{Protocol: "TCP", Port: 80, InstancePort: httpPort},
		{Protocol: "TCP", Port: 443, InstancePort: httpsPort},
	}
	var elbListeners []elbtypes.Listener
	for _, l := range listeners {
		elbListeners = append(elbListeners, elbtypes.Listener{
			Protocol: aws.String(l.Protocol), LoadBalancerPort: l.Port,
			InstanceProtocol: aws.String(l.Protocol), InstancePort: aws.Int32(l.InstancePort),
		})
	}
	out, err := b.elb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{
		LoadBalancerName: aws.String(name),
		Listeners:        elbListeners,
		Subnets:          subnetIDs,
		SecurityGroups:   []string{sg.ID},
		Tags: []elbtypes.Tag{
			{Key: aws.String(b.w.ClusterTagKey), Value: aws.String("owned")},
			{Key: aws.String("kubernetes.io/service-name"), Value: aws.String(RouterServiceName)},
		},
	})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := b.elb.ConfigureHealthCheck(ctx, &elb.ConfigureHealthCheckInput{
		LoadBalancerName: aws.String(name),
		HealthCheck: &elbtypes.HealthCheck{
			Target:             aws.String(fmt.Sprintf("HTTP:%d/healthz", hcPort)),
			Interval:           aws.Int32(10),
			Timeout:            aws.Int32(5),
			HealthyThreshold:   aws.Int32(2),
			UnhealthyThreshold: aws.Int32(6),
		},
	}); err != nil {
		return fmt.Errorf("health check of %s: %w", name, err)
	}
	lb := LoadBalancer{
		Name: name, DNSName: aws.ToString(out.DNSName), Type: LBTypeClassic, Scheme: "internet-facing",
		Purpose: LBPurposeRouter, SubnetIDs: subnetIDs, SecurityGroupIDs: []string{sg.ID},
		Listeners: listeners, ServiceName: RouterServiceName,
	}
	var insts []elbtypes.Instance
	for _, in := range b.w.InstancesByRole(RoleWorker) {
		insts = append(insts, elbtypes.Instance{InstanceId: aws.String(in.ID)})
		lb.InstanceIDs = append(lb.InstanceIDs, in.ID)
	}
	if len(insts) > 0 {
		if _, err := b.elb.RegisterInstancesWithLoadBalancer(ctx, &elb.RegisterInstancesWithLoadBalancerInput{
			LoadBalancerName: aws.String(name), Instances: insts,
		}); err != nil {
			return fmt.Errorf("register instances with %s: %w", name, err)
		}
	}
	b.w.LoadBalancers = append(b.w.LoadBalancers, lb)
	return nil
}
