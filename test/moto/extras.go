package moto

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// What real accounts have beside the installer's resources, each built
// only when its option asks: network ACLs, a second cluster in the same
// VPC, and the installer's Route 53 zones.

// ACLEntry is one entry the fixture puts in a network ACL.
type ACLEntry struct {
	Number   int32
	Egress   bool
	Protocol string // "-1", "6", "1", ...
	Action   string // allow | deny
	CIDR     string
	From, To int32 // ports, or ICMP type and code
}

// NetworkACL is a network ACL of the fixture.
type NetworkACL struct {
	ID        string
	Default   bool
	SubnetIDs []string
}

// OtherCluster is what a second cluster owns in the same VPC.
type OtherCluster struct {
	InfraID         string
	SubnetID        string
	RouteTableID    string
	SecurityGroupID string
	InstanceID      string
	NetworkACLID    string
}

// HostedZone is one of the installer's Route 53 zones.
type HostedZone struct {
	ID      string // Z..., without /hostedzone/
	Name    string // with the trailing dot
	Private bool
}

// HostedZoneOptions shape the installer's zones.
type HostedZoneOptions struct {
	// BaseDomain is the public zone (default example.com); the private
	// zone is <ClusterName>.<BaseDomain>.
	BaseDomain  string
	ClusterName string // default the infraID without its random suffix
	// ExtraRecords adds that many plain A records to the private zone
	// (host-N), for scale.
	ExtraRecords int
	// ExtraAliases adds that many alias A records to the private zone
	// (svc-N), each to the internal API NLB, for scale.
	ExtraAliases int
}

// PrivateACLEntries are the custom ACL's entries on the private subnets:
// IPv4 only, as a hardened VPC has them.
var PrivateACLEntries = []ACLEntry{
	{Number: 100, Protocol: "6", Action: "allow", CIDR: "0.0.0.0/0", From: 443, To: 443},
	{Number: 110, Protocol: "-1", Action: "allow", CIDR: "{vpc}"},
	{Number: 120, Protocol: "6", Action: "allow", CIDR: "0.0.0.0/0", From: 1024, To: 65535},
	{Number: 130, Protocol: "1", Action: "allow", CIDR: "0.0.0.0/0", From: 3, To: 4},
	{Number: 140, Protocol: "6", Action: "allow", CIDR: "192.168.0.0/16", From: 22, To: 22},
	{Number: 100, Egress: true, Protocol: "-1", Action: "allow", CIDR: "0.0.0.0/0"},
}

// DefaultACLExtra is what the fixture adds to the default ACL, which makes
// it modified: AWS then adds no IPv6 entries to it by itself.
var DefaultACLExtra = ACLEntry{Number: 90, Protocol: "6", Action: "deny", CIDR: "0.0.0.0/0", From: 23, To: 23}

func (b *builder) networkACLs(ctx context.Context) error {
	if !b.opts.NetworkACLs {
		return nil
	}
	out, err := b.ec2.DescribeNetworkAcls(ctx, &ec2.DescribeNetworkAclsInput{Filters: []ec2types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{b.w.VPC.ID}}, {Name: aws.String("default"), Values: []string{"true"}}}})
	if err != nil {
		return err
	}
	if len(out.NetworkAcls) != 1 {
		return fmt.Errorf("the VPC has %d default network ACLs", len(out.NetworkAcls))
	}
	def := aws.ToString(out.NetworkAcls[0].NetworkAclId)
	if err := b.aclEntry(ctx, def, DefaultACLExtra); err != nil {
		return err
	}
	b.w.NetworkACLs = append(b.w.NetworkACLs, NetworkACL{ID: def, Default: true})
	created, err := b.ec2.CreateNetworkAcl(ctx, &ec2.CreateNetworkAclInput{VpcId: aws.String(b.w.VPC.ID),
		TagSpecifications: b.tagSpec(ec2types.ResourceTypeNetworkAcl, b.w.InfraID+"-private-acl")})
	if err != nil {
		return err
	}
	acl := NetworkACL{ID: aws.ToString(created.NetworkAcl.NetworkAclId)}
	for _, e := range PrivateACLEntries {
		if err := b.aclEntry(ctx, acl.ID, e); err != nil {
			return err
		}
	}
	for _, s := range b.w.PrivateSubnets() {
		if err := b.associateACL(ctx, s.ID, acl.ID); err != nil {
			return err
		}
		acl.SubnetIDs = append(acl.SubnetIDs, s.ID)
	}
	b.w.NetworkACLs = append(b.w.NetworkACLs, acl)
	return nil
}

func (b *builder) aclEntry(ctx context.Context, acl string, e ACLEntry) error {
	cidr := strings.ReplaceAll(e.CIDR, "{vpc}", b.w.VPC.CIDR)
	in := &ec2.CreateNetworkAclEntryInput{NetworkAclId: aws.String(acl), RuleNumber: aws.Int32(e.Number), Egress: aws.Bool(e.Egress),
		Protocol: aws.String(e.Protocol), RuleAction: ec2types.RuleAction(e.Action), CidrBlock: aws.String(cidr)}
	switch e.Protocol {
	case "6", "17":
		in.PortRange = &ec2types.PortRange{From: aws.Int32(e.From), To: aws.Int32(e.To)}
	case "1":
		in.IcmpTypeCode = &ec2types.IcmpTypeCode{Type: aws.Int32(e.From), Code: aws.Int32(e.To)}
	}
	if _, err := b.ec2.CreateNetworkAclEntry(ctx, in); err != nil {
		return fmt.Errorf("entry %d of %s: %w", e.Number, acl, err)
	}
	return nil
}

// associateACL moves a subnet to acl (every subnet is associated with
// exactly one ACL, the default one at first).
func (b *builder) associateACL(ctx context.Context, subnet, acl string) error {
	out, err := b.ec2.DescribeNetworkAcls(ctx, &ec2.DescribeNetworkAclsInput{Filters: []ec2types.Filter{
		{Name: aws.String("association.subnet-id"), Values: []string{subnet}}}})
	if err != nil {
		return err
	}
	for _, a := range out.NetworkAcls {
		for _, as := range a.Associations {
			if aws.ToString(as.SubnetId) == subnet {
				_, err := b.ec2.ReplaceNetworkAclAssociation(ctx, &ec2.ReplaceNetworkAclAssociationInput{
					AssociationId: as.NetworkAclAssociationId, NetworkAclId: aws.String(acl)})
				return err
			}
		}
	}
	return fmt.Errorf("subnet %s has no network ACL association", subnet)
}

// otherCluster builds, in the same VPC, what a second cluster owns: a
// subnet with its own route table (to the first NAT gateway), network ACL,
// security group and instance, all tagged for it.
func (b *builder) otherCluster(ctx context.Context) error {
	id := b.opts.OtherCluster
	if id == "" {
		return nil
	}
	key := "kubernetes.io/cluster/" + id
	spec := func(rt ec2types.ResourceType, name string) []ec2types.TagSpecification {
		return []ec2types.TagSpecification{{ResourceType: rt, Tags: []ec2types.Tag{
			{Key: aws.String("Name"), Value: aws.String(name)}, {Key: aws.String(key), Value: aws.String("owned")}}}}
	}
	// The last /24 of the VPC: the installer's subnets never reach it.
	last := netip.PrefixFrom(lastSlash24(b.vpc4), 24)
	o := OtherCluster{InfraID: id}
	sub, err := b.ec2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(b.w.VPC.ID), CidrBlock: aws.String(last.String()),
		AvailabilityZone: aws.String(b.opts.AZs[0]), TagSpecifications: spec(ec2types.ResourceTypeSubnet, id+"-subnet")})
	if err != nil {
		return fmt.Errorf("subnet: %w", err)
	}
	o.SubnetID = aws.ToString(sub.Subnet.SubnetId)
	rt, err := b.ec2.CreateRouteTable(ctx, &ec2.CreateRouteTableInput{VpcId: aws.String(b.w.VPC.ID), TagSpecifications: spec(ec2types.ResourceTypeRouteTable, id+"-rtb")})
	if err != nil {
		return fmt.Errorf("route table: %w", err)
	}
	o.RouteTableID = aws.ToString(rt.RouteTable.RouteTableId)
	if len(b.w.NATGateways) > 0 {
		if _, err := b.ec2.CreateRoute(ctx, &ec2.CreateRouteInput{RouteTableId: aws.String(o.RouteTableID), DestinationCidrBlock: aws.String("0.0.0.0/0"),
			NatGatewayId: aws.String(b.w.NATGateways[0].ID)}); err != nil {
			return fmt.Errorf("route: %w", err)
		}
	}
	if _, err := b.ec2.AssociateRouteTable(ctx, &ec2.AssociateRouteTableInput{RouteTableId: aws.String(o.RouteTableID), SubnetId: aws.String(o.SubnetID)}); err != nil {
		return fmt.Errorf("route table association: %w", err)
	}
	acl, err := b.ec2.CreateNetworkAcl(ctx, &ec2.CreateNetworkAclInput{VpcId: aws.String(b.w.VPC.ID), TagSpecifications: spec(ec2types.ResourceTypeNetworkAcl, id+"-acl")})
	if err != nil {
		return fmt.Errorf("network ACL: %w", err)
	}
	o.NetworkACLID = aws.ToString(acl.NetworkAcl.NetworkAclId)
	for _, e := range []ACLEntry{{Number: 100, Protocol: "-1", Action: "allow", CIDR: "0.0.0.0/0"}, {Number: 100, Egress: true, Protocol: "-1", Action: "allow", CIDR: "0.0.0.0/0"}} {
		if err := b.aclEntry(ctx, o.NetworkACLID, e); err != nil {
			return err
		}
	}
	if err := b.associateACL(ctx, o.SubnetID, o.NetworkACLID); err != nil {
		return err
	}
	sg, err := b.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{VpcId: aws.String(b.w.VPC.ID), GroupName: aws.String(id + "-node"),
		Description: aws.String("nodes of " + id), TagSpecifications: spec(ec2types.ResourceTypeSecurityGroup, id+"-node")})
	if err != nil {
		return fmt.Errorf("security group: %w", err)
	}
	o.SecurityGroupID = aws.ToString(sg.GroupId)
	if _, err := b.ec2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId,
		IpPermissions: []ec2types.IpPermission{cidrRule("tcp", 22, 22, "0.0.0.0/0", "")}}); err != nil {
		return fmt.Errorf("security group rule: %w", err)
	}
	in, err := b.ec2.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(b.opts.ImageID), InstanceType: ec2types.InstanceType(b.opts.WorkerInstanceType),
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: aws.String(o.SubnetID), SecurityGroupIds: []string{o.SecurityGroupID},
		TagSpecifications: spec(ec2types.ResourceTypeInstance, id+"-worker-0")})
	if err != nil {
		return fmt.Errorf("instance: %w", err)
	}
	o.InstanceID = aws.ToString(in.Instances[0].InstanceId)
	b.w.Other = &o
	return nil
}

func lastSlash24(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	n := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	n &^= 0xff
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// hostedZones builds what openshift-install creates in Route 53. No weighted or failover records: moto 5.2.1 deletes
// every record set with a DELETE's set identifier, whatever its name and
// type, and pages without StartRecordIdentifier; pkg/dns's unit tests cover
// set identifiers against a fake that keeps them apart as Route 53 does.
//
// The records: in the public zone (the base domain's, which exists before
// the install)
// and a private zone <cluster>.<baseDomain>, tagged for the cluster and
// associated with the VPC. api (public) and api, api-int (private) are
// alias A records to the API NLBs; *.apps in both is the ingress
// operator's alias A to the router's load balancer. A plain A record in
// the private zone stands for what admins add by hand.
func (b *builder) hostedZones(ctx context.Context) error {
	o := b.opts.HostedZones
	if o == nil {
		return nil
	}
	if o.BaseDomain == "" {
		o.BaseDomain = "example.com"
	}
	if o.ClusterName == "" {
		o.ClusterName = b.w.InfraID
		if i := strings.LastIndex(o.ClusterName, "-"); i > 0 {
			o.ClusterName = o.ClusterName[:i]
		}
	}
	r53 := route53.NewFromConfig(b.cfg, func(opt *route53.Options) { opt.Region = "us-east-1" })
	clusterDomain := o.ClusterName + "." + o.BaseDomain
	pub, err := r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String(o.BaseDomain), CallerReference: aws.String(b.w.InfraID + "-public")})
	if err != nil {
		return fmt.Errorf("public zone: %w", err)
	}
	priv, err := r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String(clusterDomain), CallerReference: aws.String(b.w.InfraID + "-private"),
		VPC:              &r53types.VPC{VPCId: aws.String(b.w.VPC.ID), VPCRegion: r53types.VPCRegion(b.w.Region)},
		HostedZoneConfig: &r53types.HostedZoneConfig{PrivateZone: true, Comment: aws.String("Created by openshift-install")}})
	if err != nil {
		return fmt.Errorf("private zone: %w", err)
	}
	zoneID := func(z *r53types.HostedZone) string { return strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/") }
	b.w.PublicZone = HostedZone{ID: zoneID(pub.HostedZone), Name: aws.ToString(pub.HostedZone.Name), Private: false}
	b.w.PrivateZone = HostedZone{ID: zoneID(priv.HostedZone), Name: aws.ToString(priv.HostedZone.Name), Private: true}
	if _, err := r53.ChangeTagsForResource(ctx, &route53.ChangeTagsForResourceInput{ResourceType: r53types.TagResourceTypeHostedzone,
		ResourceId: aws.String(b.w.PrivateZone.ID), AddTags: []r53types.Tag{{Key: aws.String(b.w.ClusterTagKey), Value: aws.String("owned")},
			{Key: aws.String("Name"), Value: aws.String(b.w.InfraID + "-int")}}}); err != nil {
		return fmt.Errorf("tagging the private zone: %w", err)
	}

	lbs, err := b.elbv2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
	if err != nil {
		return err
	}
	canonical := map[string]string{}
	for _, l := range lbs.LoadBalancers {
		canonical[aws.ToString(l.LoadBalancerName)] = aws.ToString(l.CanonicalHostedZoneId)
	}
	alias := func(name string, lb LoadBalancer) r53types.Change {
		zone := canonical[lb.Name]
		if zone == "" {
			zone = "Z35SXDOTRQ7X7K" // Classic ELBs of us-east-1
		}
		return r53types.Change{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{Name: aws.String(name), Type: r53types.RRTypeA,
			AliasTarget: &r53types.AliasTarget{DNSName: aws.String(lb.DNSName + "."), HostedZoneId: aws.String(zone), EvaluateTargetHealth: false}}}
	}
	ext, _ := b.w.LoadBalancerFor(LBPurposeAPIExternal)
	internal, _ := b.w.LoadBalancerFor(LBPurposeAPIInternal)
	router, hasRouter := b.w.LoadBalancerFor(LBPurposeRouter)
	public := []r53types.Change{alias("api."+clusterDomain+".", ext)}
	private := []r53types.Change{alias("api."+clusterDomain+".", internal), alias("api-int."+clusterDomain+".", internal),
		{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{Name: aws.String("bastion." + clusterDomain + "."), Type: r53types.RRTypeA,
			TTL: aws.Int64(300), ResourceRecords: []r53types.ResourceRecord{{Value: aws.String("10.0.0.10")}}}}}
	if hasRouter {
		public = append(public, alias("*.apps."+clusterDomain+".", router))
		private = append(private, alias("*.apps."+clusterDomain+".", router))
	}
	for i := range o.ExtraAliases {
		private = append(private, alias(fmt.Sprintf("svc-%d.%s.", i, clusterDomain), internal))
	}
	for i := range o.ExtraRecords {
		private = append(private, r53types.Change{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String(fmt.Sprintf("host-%d.%s.", i, clusterDomain)), Type: r53types.RRTypeA, TTL: aws.Int64(300),
			ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(fmt.Sprintf("10.0.%d.%d", 64+i/250, 1+i%250))}}}})
	}
	for zone, changes := range map[string][]r53types.Change{b.w.PublicZone.ID: public, b.w.PrivateZone.ID: private} {
		for start := 0; start < len(changes); start += 1000 {
			if _, err := r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone),
				ChangeBatch: &r53types.ChangeBatch{Changes: changes[start:min(start+1000, len(changes))]}}); err != nil {
				return fmt.Errorf("records of zone %s: %w", zone, err)
			}
		}
	}
	b.w.BaseDomain, b.w.ClusterDomain = o.BaseDomain, clusterDomain
	return nil
}
