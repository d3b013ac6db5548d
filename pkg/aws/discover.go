package aws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"golang.org/x/sync/errgroup"
)

// Tags this tool reads and writes.
const (
	ClusterTagPrefix = "kubernetes.io/cluster/"
	ServiceNameTag   = "kubernetes.io/service-name"
	// ManagedByTag marks what apply created, so a resumed apply or a rollback
	// finds it even when the journal could not record its ID.
	ManagedByTag   = "dualstack.kubectl.io/managed-by"
	ManagedByValue = "kubectl-dualstack"
)

// Target says which cluster to look at: what the flags and the cluster say.
type Target struct {
	VPCID   string
	InfraID string
	// Instances are the cluster's nodes by EC2 instance ID (from the
	// providerIDs), with whether each is a control-plane node.
	Instances map[string]bool
	// NodeNames are the Nodes' names by EC2 instance ID, so a node whose
	// instance is gone can be named.
	NodeNames map[string]string
	// ResolvedBy explains where the region and infraID came from.
	ResolvedBy []string
	// ForceVPC accepts a VPCID that holds none of the nodes' instances and
	// has no cluster tag (the user's --force-vpc): a VPC given by mistake
	// would otherwise be changed, and an egress-only gateway tagged owned
	// by this cluster created in it.
	ForceVPC bool
}

// Inventory is what belongs to the cluster in AWS. Field names are stable (discover -o json).
type Inventory struct {
	Region             string          `json:"region"`
	InfraID            string          `json:"infraID,omitempty"`
	ResolvedBy         []string        `json:"resolvedBy"`
	VPC                VPC             `json:"vpc"`
	Subnets            []Subnet        `json:"subnets"`
	RouteTables        []RouteTable    `json:"routeTables"`
	InternetGateways   []Gateway       `json:"internetGateways"`
	EgressOnlyGateways []Gateway       `json:"egressOnlyInternetGateways"`
	NATGateways        []Gateway       `json:"natGateways"`
	SecurityGroups     []SecurityGroup `json:"securityGroups"`
	Instances          []Instance      `json:"instances"`
	NetworkInterfaces  []ENI           `json:"networkInterfaces"`
	LoadBalancers      []LoadBalancer  `json:"loadBalancers"`
	NetworkACLs        []NetworkACL    `json:"networkAcls"`
	// Notes are what discovery skipped or could not prove, and why; the
	// plan repeats them.
	Notes []Note `json:"notes,omitempty"`
}

// VPC is the cluster's VPC.
type VPC struct {
	ID                string   `json:"id"`
	Name              string   `json:"name,omitempty"`
	IPv4CIDRs         []string `json:"ipv4Cidrs"`
	IPv6CIDR          string   `json:"ipv6Cidr,omitempty"`
	IPv6AssociationID string   `json:"ipv6AssociationId,omitempty"`
	// UsedIPv6Blocks are the /64s of every subnet of the VPC, cluster's or not.
	UsedIPv6Blocks []string `json:"-"`
	// OtherSubnets are the VPC's subnets that are not the cluster's, by ID,
	// with the other cluster each is tagged for ("" when none): a shared
	// VPC, whose other parts the plan leaves alone.
	OtherSubnets map[string]string `json:"otherSubnets,omitempty"`
}

// Subnet is a cluster subnet; Public means its route table has a route to an internet gateway.
type Subnet struct {
	ID                   string `json:"id"`
	Name                 string `json:"name,omitempty"`
	AZ                   string `json:"availabilityZone"`
	IPv4CIDR             string `json:"ipv4Cidr"`
	IPv6CIDR             string `json:"ipv6Cidr,omitempty"`
	IPv6AssociationID    string `json:"ipv6AssociationId,omitempty"`
	Public               bool   `json:"public"`
	RouteTableID         string `json:"routeTableId"`
	AssignIPv6OnCreation bool   `json:"assignIpv6AddressOnCreation"`
}

// RouteTable is a route table of the VPC used by cluster subnets.
type RouteTable struct {
	ID        string   `json:"id"`
	Name      string   `json:"name,omitempty"`
	Main      bool     `json:"main"`
	SubnetIDs []string `json:"subnetIds"`
	// IPv4Default and IPv6Default are the targets of 0.0.0.0/0 and ::/0.
	IPv4Default string `json:"ipv4DefaultTarget,omitempty"`
	IPv6Default string `json:"ipv6DefaultTarget,omitempty"`
	// InternetGateway is the igw- this table routes to, if any (so it is public).
	InternetGateway string `json:"internetGateway,omitempty"`
	// OtherCluster is the infraID of another cluster the table is tagged
	// for (kubernetes.io/cluster/<other>, without this cluster's tag, or
	// =owned): the plan leaves such a table alone.
	OtherCluster string `json:"otherCluster,omitempty"`
	// ForeignSubnetIDs are subnets of the VPC that use this table (for the
	// main table: also implicitly) and are not the cluster's.
	ForeignSubnetIDs []string `json:"foreignSubnetIds,omitempty"`
}

// Gateway is an internet, egress-only internet or NAT gateway.
type Gateway struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Managed bool   `json:"createdByDualstack,omitempty"`
}

// SecurityGroup with its rules.
type SecurityGroup struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Ingress []Rule `json:"ingress"`
	Egress  []Rule `json:"egress"`
}

// Rule is one IP permission: a protocol and port range, with its sources.
type Rule struct {
	Protocol string   `json:"protocol"`
	FromPort int32    `json:"fromPort"`
	ToPort   int32    `json:"toPort"`
	IPv4     []string `json:"ipv4,omitempty"`
	IPv6     []string `json:"ipv6,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

// Instance is a cluster EC2 instance.
type Instance struct {
	ID            string `json:"id"`
	Name          string `json:"name,omitempty"`
	Type          string `json:"type"`
	IPv6Supported bool   `json:"ipv6Supported"`
	ControlPlane  bool   `json:"controlPlane"`
	State         string `json:"state"`
	SubnetID      string `json:"subnetId"`
	PrimaryENI    string `json:"primaryNetworkInterface"`
	// MetadataIPv6 is the instance's HttpProtocolIpv6: the metadata service
	// answers on fd00:ec2::254 too.
	MetadataIPv6 bool `json:"metadataIPv6Endpoint"`
}

// ENI is a network interface in a cluster subnet.
type ENI struct {
	ID            string   `json:"id"`
	InstanceID    string   `json:"instanceId,omitempty"`
	SubnetID      string   `json:"subnetId"`
	Primary       bool     `json:"primary"`
	IPv6Addresses []string `json:"ipv6Addresses,omitempty"`
}

// LoadBalancer is an NLB, ALB or Classic ELB of the cluster.
type LoadBalancer struct {
	Name          string `json:"name"`
	ARN           string `json:"arn,omitempty"`
	Type          string `json:"type"` // network, application, classic
	Scheme        string `json:"scheme"`
	IPAddressType string `json:"ipAddressType"`
	DNSName       string `json:"dnsName"`
	// CanonicalHostedZoneID is the zone an alias record to DNSName names.
	CanonicalHostedZoneID string   `json:"canonicalHostedZoneId,omitempty"`
	SubnetIDs             []string `json:"subnetIds"`
	Service               string   `json:"service,omitempty"` // namespace/name from kubernetes.io/service-name
	// SecurityGroups are the load balancer's own groups.
	SecurityGroups []string `json:"securityGroups,omitempty"`
}

// ErrNotOnAWS is returned when nothing says the cluster runs on AWS.
var ErrNotOnAWS = errors.New("the cluster does not run on AWS as far as can be told")

// pageSize is MaxResults for every paginated Describe call.
const pageSize = 1000

// Discover resolves the cluster's VPC and reads everything the underlay
// concerns, with a constant number of (paginated) Describe calls per
// resource kind, whatever the size of the VPC.
func Discover(ctx context.Context, c *Clients, t Target) (*Inventory, error) {
	inv := &Inventory{Region: c.Region, InfraID: t.InfraID, ResolvedBy: slices.Clone(t.ResolvedBy)}
	vpcID := t.VPCID
	if vpcID != "" {
		inv.ResolvedBy = append(inv.ResolvedBy, "VPC from --vpc-id")
	}
	if vpcID == "" && t.InfraID != "" {
		id, err := taggedVPC(ctx, c, t.InfraID)
		if err != nil {
			return nil, err
		}
		if id != "" {
			vpcID = id
			inv.ResolvedBy = append(inv.ResolvedBy, "VPC tagged "+ClusterTagPrefix+t.InfraID)
		}
	}
	// The nodes' instances are read when they resolve the VPC, and when a
	// --vpc-id has to be proven to be the cluster's.
	var nodes []ec2types.Instance
	if len(t.Instances) > 0 && (vpcID == "" || t.VPCID != "") {
		var err error
		if nodes, err = nodeInstances(ctx, c, inv, t); err != nil {
			return nil, err
		}
	}
	if vpcID == "" {
		for _, in := range nodes {
			if vpcID == "" && aws.ToString(in.VpcId) != "" {
				vpcID = aws.ToString(in.VpcId)
			}
			if inv.InfraID == "" {
				inv.InfraID = clusterTag(in.Tags)
			}
		}
		if vpcID != "" {
			inv.ResolvedBy = append(inv.ResolvedBy, "VPC of the nodes' instances (spec.providerID)")
		}
		if inv.InfraID != "" && t.InfraID == "" {
			inv.ResolvedBy = append(inv.ResolvedBy, "infraID from the instances' "+ClusterTagPrefix+"<id> tag")
		}
	} else if t.VPCID != "" && inv.InfraID == "" {
		for _, in := range nodes {
			if inv.InfraID == "" {
				inv.InfraID = clusterTag(in.Tags)
			}
		}
		if inv.InfraID != "" {
			inv.ResolvedBy = append(inv.ResolvedBy, "infraID from the instances' "+ClusterTagPrefix+"<id> tag")
		}
	}
	if vpcID == "" {
		if t.InfraID == "" && len(t.Instances) == 0 {
			return nil, fmt.Errorf("%w: no OpenShift Infrastructure on AWS and no node with an aws:///<zone>/<instance> providerID; pass --vpc-id and --region", ErrNotOnAWS)
		}
		return nil, fmt.Errorf("no VPC found in %s for the cluster (infraID %q, %d node instances); check --region, or pass --vpc-id", c.Region, t.InfraID, len(t.Instances))
	}
	check := func(v ec2types.Vpc, infraID string) error { return nil }
	if t.VPCID != "" {
		check = func(v ec2types.Vpc, infraID string) error { return checkGivenVPC(ctx, c, inv, v, infraID, nodes, t) }
	}
	if err := discoverVPC(ctx, c, inv, vpcID, t, check); err != nil {
		return nil, err
	}
	return inv, nil
}

// taggedVPC is the one VPC tagged for the cluster, or "".
func taggedVPC(ctx context.Context, c *Clients, infraID string) (string, error) {
	out, err := c.EC2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag-key"), Values: []string{ClusterTagPrefix + infraID}},
	}})
	if err != nil {
		return "", Explain("DescribeVpcs", err)
	}
	if len(out.Vpcs) == 1 {
		return aws.ToString(out.Vpcs[0].VpcId), nil
	}
	return "", nil
}

// nodeInstances reads the nodes' instances with a filter on their IDs rather
// than by ID: DescribeInstances by ID fails as a whole with
// InvalidInstanceID.NotFound when one instance is gone, while a filter just
// leaves it out. A node whose instance is gone (or terminated) is named in a
// note and skipped: one stale Node must not hide the rest of the cluster.
func nodeInstances(ctx context.Context, c *Clients, inv *Inventory, t Target) ([]ec2types.Instance, error) {
	ids := sortedKeys(t.Instances)
	var out []ec2types.Instance
	found := map[string]bool{}
	for start := 0; start < len(ids); start += 200 { // EC2 takes up to 200 values per filter
		batch := ids[start:min(start+200, len(ids))]
		res, err := allPages(ctx, "DescribeInstances", ec2.NewDescribeInstancesPaginator(c.EC2, &ec2.DescribeInstancesInput{
			Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: batch}}, MaxResults: aws.Int32(pageSize)}),
			func(o *ec2.DescribeInstancesOutput) []ec2types.Reservation { return o.Reservations })
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			for _, in := range r.Instances {
				if in.State != nil && (in.State.Name == ec2types.InstanceStateNameTerminated || in.State.Name == ec2types.InstanceStateNameShuttingDown) {
					continue
				}
				found[aws.ToString(in.InstanceId)] = true
				out = append(out, in)
			}
		}
	}
	for _, id := range ids {
		if found[id] {
			continue
		}
		node := t.NodeNames[id]
		if node == "" {
			node = "with instance " + id
		}
		inv.Notes = append(inv.Notes, Note{Resource: "node/" + node,
			Message: fmt.Sprintf("node %s has providerID instance %s, which does not exist (or is terminated) in %s: skipped", node, id, c.Region),
			Fix:     fmt.Sprintf("if the machine is gone, delete the Node (kubectl delete node %s); if it runs in another region, pass --region", node)})
	}
	return out, nil
}

// ForeignVPCError is a --vpc-id that holds none of the cluster's instances
// and has no cluster tag: the commands refuse it as bad input.
type ForeignVPCError struct {
	VPCID   string
	InfraID string
	Nodes   int
	// ClusterVPC is the VPC the cluster resolves to without --vpc-id, and
	// ResolvedBy how; both empty when nothing resolves one.
	ClusterVPC, ResolvedBy string
}

func (e *ForeignVPCError) Error() string {
	tag := "no cluster tag (the infraID is not known)"
	if e.InfraID != "" {
		tag = "no " + ClusterTagPrefix + e.InfraID + " tag"
	}
	found := "the cluster's own VPC could not be resolved without it"
	if e.ClusterVPC != "" {
		found = fmt.Sprintf("the cluster's VPC is %s (%s)", e.ClusterVPC, e.ResolvedBy)
	}
	return fmt.Sprintf("--vpc-id %s is not the cluster's VPC: it holds none of the %d nodes' instances and has %s; %s; drop --vpc-id, or pass --force-vpc if this layout really needs it",
		e.VPCID, e.Nodes, tag, found)
}

// checkGivenVPC proves that a --vpc-id is the cluster's: it holds one of
// the nodes' instances or carries the cluster tag. Otherwise it returns a
// *ForeignVPCError, or, with ForceVPC, a note that the plan shows.
func checkGivenVPC(ctx context.Context, c *Clients, inv *Inventory, v ec2types.Vpc, infraID string, nodes []ec2types.Instance, t Target) error {
	id := aws.ToString(v.VpcId)
	if infraID != "" && hasTag(v.Tags, ClusterTagPrefix+infraID) {
		return nil
	}
	for _, in := range nodes {
		if aws.ToString(in.VpcId) == id {
			return nil
		}
	}
	e := &ForeignVPCError{VPCID: id, InfraID: infraID, Nodes: len(t.Instances)}
	if infraID != "" {
		other, err := taggedVPC(ctx, c, infraID)
		if err != nil {
			return err
		}
		if other != "" {
			e.ClusterVPC, e.ResolvedBy = other, "tagged "+ClusterTagPrefix+infraID
		}
	}
	for _, in := range nodes {
		if e.ClusterVPC == "" && aws.ToString(in.VpcId) != "" {
			e.ClusterVPC, e.ResolvedBy = aws.ToString(in.VpcId), "the VPC of the nodes' instances, from their spec.providerID"
		}
	}
	if !t.ForceVPC {
		return e
	}
	inv.Notes = append(inv.Notes, Note{Resource: id,
		Message: fmt.Sprintf("VPC %s is used only because of --force-vpc: it holds none of the %d nodes' instances and has no cluster tag", id, len(t.Instances)),
		Fix:     "check that this VPC really is the cluster's before applying"})
	return nil
}

func discoverVPC(ctx context.Context, c *Clients, inv *Inventory, vpcID string, t Target, check func(ec2types.Vpc, string) error) error {
	vpcFilter := []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}
	vpcs, err := c.EC2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{vpcID}})
	if err != nil {
		if strings.HasPrefix(errorCode(err), "InvalidVpcID") {
			return fmt.Errorf("VPC %s does not exist in %s; check --vpc-id and --region", vpcID, c.Region)
		}
		return Explain("DescribeVpcs", err)
	}
	if len(vpcs.Vpcs) != 1 {
		return fmt.Errorf("VPC %s does not exist in %s; check --vpc-id and --region", vpcID, c.Region)
	}
	v := vpcs.Vpcs[0]
	inv.VPC = VPC{ID: vpcID, Name: tagValue(v.Tags, "Name")}
	for _, a := range v.CidrBlockAssociationSet {
		if a.CidrBlockState == nil || a.CidrBlockState.State == ec2types.VpcCidrBlockStateCodeAssociated {
			inv.VPC.IPv4CIDRs = append(inv.VPC.IPv4CIDRs, aws.ToString(a.CidrBlock))
		}
	}
	if len(inv.VPC.IPv4CIDRs) == 0 && v.CidrBlock != nil {
		inv.VPC.IPv4CIDRs = []string{aws.ToString(v.CidrBlock)}
	}
	for _, a := range v.Ipv6CidrBlockAssociationSet {
		if a.Ipv6CidrBlockState != nil && !activeState(string(a.Ipv6CidrBlockState.State)) {
			continue
		}
		inv.VPC.IPv6CIDR, inv.VPC.IPv6AssociationID = aws.ToString(a.Ipv6CidrBlock), aws.ToString(a.AssociationId)
		break
	}
	// Checked before the VPC's own tag can name the cluster: a foreign VPC
	// tagged for another cluster must not prove itself.
	if err := check(v, inv.InfraID); err != nil {
		return err
	}
	if inv.InfraID == "" {
		inv.InfraID = clusterTag(v.Tags)
	}
	clusterKey := ""
	if inv.InfraID != "" {
		clusterKey = ClusterTagPrefix + inv.InfraID
	}

	// Everything else of the VPC, in parallel (each a paginated list,
	// filtered by VPC where the API honours it), then put together.
	var (
		subnets   []ec2types.Subnet
		tables    []ec2types.RouteTable
		igws      []ec2types.InternetGateway
		eigws     []ec2types.EgressOnlyInternetGateway
		nats      []ec2types.NatGateway
		instances []ec2types.Instance
		types     map[string]bool
		groups    []ec2types.SecurityGroup
		enis      []ec2types.NetworkInterface
		acls      []ec2types.NetworkAcl
		lbs       Inventory
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		subnets, err = allPages(gctx, "DescribeSubnets", ec2.NewDescribeSubnetsPaginator(c.EC2, &ec2.DescribeSubnetsInput{Filters: vpcFilter, MaxResults: aws.Int32(pageSize)}),
			func(o *ec2.DescribeSubnetsOutput) []ec2types.Subnet { return o.Subnets })
		return err
	})
	var routedEIGWs, ownEIGWs []ec2types.EgressOnlyInternetGateway
	g.Go(func() (err error) {
		tables, err = allPages(gctx, "DescribeRouteTables", ec2.NewDescribeRouteTablesPaginator(c.EC2, &ec2.DescribeRouteTablesInput{Filters: vpcFilter, MaxResults: aws.Int32(100)}),
			func(o *ec2.DescribeRouteTablesOutput) []ec2types.RouteTable { return o.RouteTables })
		if err != nil {
			return err
		}
		routedEIGWs, err = egressOnlyGateways(gctx, c, routedEgressOnlyGateways(tables), nil)
		return err
	})
	g.Go(func() (err error) {
		// The gateway an earlier apply created may not be routed yet (it
		// stopped in between): found by the tag it was created with.
		ownEIGWs, err = egressOnlyGateways(gctx, c, nil, []ec2types.Filter{{Name: aws.String("tag:" + ManagedByTag), Values: []string{ManagedByValue}}})
		return err
	})
	g.Go(func() error {
		out, err := c.EC2.DescribeInternetGateways(gctx, &ec2.DescribeInternetGatewaysInput{Filters: []ec2types.Filter{
			{Name: aws.String("attachment.vpc-id"), Values: []string{vpcID}},
		}})
		if err != nil {
			return Explain("DescribeInternetGateways", err)
		}
		igws = out.InternetGateways
		return nil
	})
	g.Go(func() (err error) {
		nats, err = allPages(gctx, "DescribeNatGateways", ec2.NewDescribeNatGatewaysPaginator(c.EC2, &ec2.DescribeNatGatewaysInput{Filter: vpcFilter, MaxResults: aws.Int32(pageSize)}),
			func(o *ec2.DescribeNatGatewaysOutput) []ec2types.NatGateway { return o.NatGateways })
		return err
	})
	g.Go(func() error {
		// Instances: the nodes' and those tagged for the cluster; then
		// whether their types can have IPv6.
		reservations, err := allPages(gctx, "DescribeInstances", ec2.NewDescribeInstancesPaginator(c.EC2, &ec2.DescribeInstancesInput{Filters: vpcFilter, MaxResults: aws.Int32(pageSize)}),
			func(o *ec2.DescribeInstancesOutput) []ec2types.Reservation { return o.Reservations })
		if err != nil {
			return err
		}
		for _, r := range reservations {
			for _, in := range r.Instances {
				if in.State != nil && (in.State.Name == ec2types.InstanceStateNameTerminated || in.State.Name == ec2types.InstanceStateNameShuttingDown) {
					continue
				}
				_, isNode := t.Instances[aws.ToString(in.InstanceId)]
				if isNode || (clusterKey != "" && hasTag(in.Tags, clusterKey)) {
					instances = append(instances, in)
				}
			}
		}
		types, err = instanceTypes(gctx, c, instances)
		return err
	})
	g.Go(func() (err error) {
		groups, err = allPages(gctx, "DescribeSecurityGroups", ec2.NewDescribeSecurityGroupsPaginator(c.EC2, &ec2.DescribeSecurityGroupsInput{Filters: vpcFilter, MaxResults: aws.Int32(pageSize)}),
			func(o *ec2.DescribeSecurityGroupsOutput) []ec2types.SecurityGroup { return o.SecurityGroups })
		return err
	})
	g.Go(func() (err error) {
		enis, err = allPages(gctx, "DescribeNetworkInterfaces", ec2.NewDescribeNetworkInterfacesPaginator(c.EC2, &ec2.DescribeNetworkInterfacesInput{Filters: vpcFilter, MaxResults: aws.Int32(pageSize)}),
			func(o *ec2.DescribeNetworkInterfacesOutput) []ec2types.NetworkInterface { return o.NetworkInterfaces })
		return err
	})
	g.Go(func() (err error) {
		acls, err = readACLs(gctx, c, vpcFilter)
		return err
	})
	g.Go(func() error { return discoverLoadBalancers(gctx, c, &lbs, vpcID, clusterKey) })
	if err := g.Wait(); err != nil {
		return err
	}
	inv.LoadBalancers = lbs.LoadBalancers
	eigws = append(routedEIGWs, ownEIGWs...)
	slices.SortStableFunc(eigws, func(a, b ec2types.EgressOnlyInternetGateway) int {
		return strings.Compare(aws.ToString(a.EgressOnlyInternetGatewayId), aws.ToString(b.EgressOnlyInternetGatewayId))
	})
	eigws = slices.CompactFunc(eigws, func(a, b ec2types.EgressOnlyInternetGateway) bool {
		return aws.ToString(a.EgressOnlyInternetGatewayId) == aws.ToString(b.EgressOnlyInternetGatewayId)
	})

	// Subnets: those tagged for the cluster, or all of the VPC when none is.
	for _, s := range subnets {
		for _, a := range s.Ipv6CidrBlockAssociationSet {
			if a.Ipv6CidrBlockState == nil || activeState(string(a.Ipv6CidrBlockState.State)) {
				inv.VPC.UsedIPv6Blocks = append(inv.VPC.UsedIPv6Blocks, aws.ToString(a.Ipv6CidrBlock))
			}
		}
	}
	allSubnets := subnets
	if clusterKey != "" && slices.ContainsFunc(subnets, func(s ec2types.Subnet) bool { return hasTag(s.Tags, clusterKey) }) {
		subnets = slices.DeleteFunc(slices.Clone(subnets), func(s ec2types.Subnet) bool { return !hasTag(s.Tags, clusterKey) })
	} else {
		// No subnet names the cluster: all of the VPC's are taken, except
		// those another cluster owns (a shared VPC).
		subnets = slices.DeleteFunc(slices.Clone(subnets), func(s ec2types.Subnet) bool { return otherCluster(s.Tags, clusterKey) != "" })
	}
	for _, g := range igws {
		inv.InternetGateways = append(inv.InternetGateways, Gateway{ID: aws.ToString(g.InternetGatewayId), Name: tagValue(g.Tags, "Name")})
	}
	for _, g := range eigws {
		if !slices.ContainsFunc(g.Attachments, func(a ec2types.InternetGatewayAttachment) bool {
			return aws.ToString(a.VpcId) == vpcID && a.State != ec2types.AttachmentStatusDetached
		}) {
			continue
		}
		inv.EgressOnlyGateways = append(inv.EgressOnlyGateways, Gateway{
			ID: aws.ToString(g.EgressOnlyInternetGatewayId), Name: tagValue(g.Tags, "Name"),
			Managed: tagValue(g.Tags, ManagedByTag) == ManagedByValue,
		})
	}
	for _, g := range nats {
		if g.State == ec2types.NatGatewayStateDeleted || g.State == ec2types.NatGatewayStateDeleting {
			continue
		}
		inv.NATGateways = append(inv.NATGateways, Gateway{ID: aws.ToString(g.NatGatewayId), Name: tagValue(g.Tags, "Name")})
	}
	inv.Subnets, inv.RouteTables = classifySubnets(subnets, allSubnets, tables, clusterKey)
	inv.NetworkACLs = classifyACLs(acls, inv.Subnets, allSubnets, clusterKey)
	for _, s := range allSubnets {
		id := aws.ToString(s.SubnetId)
		if !slices.ContainsFunc(inv.Subnets, func(c Subnet) bool { return c.ID == id }) {
			if inv.VPC.OtherSubnets == nil {
				inv.VPC.OtherSubnets = map[string]string{}
			}
			inv.VPC.OtherSubnets[id] = otherCluster(s.Tags, clusterKey)
		}
	}

	groupIDs := map[string]bool{}
	for _, in := range instances {
		inst := Instance{
			ID: aws.ToString(in.InstanceId), Name: tagValue(in.Tags, "Name"), Type: string(in.InstanceType),
			IPv6Supported: types[string(in.InstanceType)], SubnetID: aws.ToString(in.SubnetId),
		}
		if cp, ok := t.Instances[inst.ID]; ok {
			inst.ControlPlane = cp
		} else {
			inst.ControlPlane = strings.Contains(inst.Name, "-master-") || strings.Contains(inst.Name, "control-plane")
		}
		if in.State != nil {
			inst.State = string(in.State.Name)
		}
		if m := in.MetadataOptions; m != nil {
			inst.MetadataIPv6 = m.HttpProtocolIpv6 == ec2types.InstanceMetadataProtocolStateEnabled
		}
		for _, ni := range in.NetworkInterfaces {
			if ni.Attachment != nil && aws.ToInt32(ni.Attachment.DeviceIndex) == 0 {
				inst.PrimaryENI = aws.ToString(ni.NetworkInterfaceId)
			}
		}
		for _, g := range in.SecurityGroups {
			groupIDs[aws.ToString(g.GroupId)] = true
		}
		inv.Instances = append(inv.Instances, inst)
	}
	sort.Slice(inv.Instances, func(a, b int) bool {
		return inv.Instances[a].Name+inv.Instances[a].ID < inv.Instances[b].Name+inv.Instances[b].ID
	})

	// Security groups: tagged for the cluster, or used by its instances.
	for _, g := range groups {
		id := aws.ToString(g.GroupId)
		if !groupIDs[id] && (clusterKey == "" || !hasTag(g.Tags, clusterKey)) {
			continue
		}
		inv.SecurityGroups = append(inv.SecurityGroups, SecurityGroup{
			ID: id, Name: aws.ToString(g.GroupName), Ingress: rules(g.IpPermissions), Egress: rules(g.IpPermissionsEgress),
		})
	}
	sort.Slice(inv.SecurityGroups, func(a, b int) bool { return inv.SecurityGroups[a].Name < inv.SecurityGroups[b].Name })

	// ENIs of the cluster's subnets.
	inSubnet := map[string]bool{}
	for _, s := range inv.Subnets {
		inSubnet[s.ID] = true
	}
	for _, ni := range enis {
		if !inSubnet[aws.ToString(ni.SubnetId)] {
			continue
		}
		e := ENI{ID: aws.ToString(ni.NetworkInterfaceId), SubnetID: aws.ToString(ni.SubnetId)}
		if ni.Attachment != nil {
			e.InstanceID = aws.ToString(ni.Attachment.InstanceId)
			e.Primary = aws.ToInt32(ni.Attachment.DeviceIndex) == 0
		}
		for _, a := range ni.Ipv6Addresses {
			e.IPv6Addresses = append(e.IPv6Addresses, aws.ToString(a.Ipv6Address))
		}
		inv.NetworkInterfaces = append(inv.NetworkInterfaces, e)
	}
	sort.Slice(inv.NetworkInterfaces, func(a, b int) bool { return inv.NetworkInterfaces[a].ID < inv.NetworkInterfaces[b].ID })
	return nil
}

// routedEgressOnlyGateways are the egress-only gateways the tables route to
// (active routes only: a blackhole route names a deleted gateway, which
// DescribeEgressOnlyInternetGateways by ID would refuse).
func routedEgressOnlyGateways(tables []ec2types.RouteTable) []string {
	var ids []string
	for _, t := range tables {
		for _, r := range t.Routes {
			if id := aws.ToString(r.EgressOnlyInternetGatewayId); id != "" && r.State != ec2types.RouteStateBlackhole && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// egressOnlyGateways lists egress-only internet gateways narrowed on the
// server, never the whole region: by ID, or by filters (this call has no
// VPC filter; its documented filters are tag:<key> and tag-key). The caller
// still checks each one's VPC attachment. Paginated.
func egressOnlyGateways(ctx context.Context, c *Clients, ids []string, filters []ec2types.Filter) ([]ec2types.EgressOnlyInternetGateway, error) {
	items := func(o *ec2.DescribeEgressOnlyInternetGatewaysOutput) []ec2types.EgressOnlyInternetGateway {
		return o.EgressOnlyInternetGateways
	}
	if len(filters) > 0 {
		return allPages(ctx, "DescribeEgressOnlyInternetGateways", ec2.NewDescribeEgressOnlyInternetGatewaysPaginator(c.EC2,
			&ec2.DescribeEgressOnlyInternetGatewaysInput{Filters: filters, MaxResults: aws.Int32(255)}), items)
	}
	var out []ec2types.EgressOnlyInternetGateway
	for start := 0; start < len(ids); start += 200 {
		page, err := allPages(ctx, "DescribeEgressOnlyInternetGateways", ec2.NewDescribeEgressOnlyInternetGatewaysPaginator(c.EC2,
			&ec2.DescribeEgressOnlyInternetGatewaysInput{EgressOnlyInternetGatewayIds: ids[start:min(start+200, len(ids))]}), items)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
	}
	return out, nil
}

// ec2Pager is what the SDK's EC2 paginators have in common.
type ec2Pager[O any] interface {
	HasMorePages() bool
	NextPage(context.Context, ...func(*ec2.Options)) (O, error)
}

// allPages reads every page of an EC2 list and collects its items.
func allPages[O, T any](ctx context.Context, op string, p ec2Pager[O], items func(O) []T) ([]T, error) {
	var out []T
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, Explain(op, err)
		}
		out = append(out, items(page)...)
	}
	return out, nil
}

// activeState is false for disassociating/disassociated/failed blocks. moto
// reports the state as a Python dict literal; only the words matter.
func activeState(s string) bool {
	s = strings.ToLower(s)
	return !strings.Contains(s, "disassociat") && !strings.Contains(s, "fail")
}

// classifySubnets turns the cluster's subnets and the VPC's route tables
// into the inventory's, keeping the tables the cluster's subnets use. all
// are every subnet of the VPC: a table that subnets outside the cluster use
// too lists them, so the plan can leave it alone.
func classifySubnets(subnets, all []ec2types.Subnet, tables []ec2types.RouteTable, clusterKey string) ([]Subnet, []RouteTable) {
	explicit := map[string]string{}
	mainTable := ""
	byID := map[string]*RouteTable{}
	var rts []*RouteTable
	for _, t := range tables {
		rt := &RouteTable{ID: aws.ToString(t.RouteTableId), Name: tagValue(t.Tags, "Name"), OtherCluster: otherCluster(t.Tags, clusterKey)}
		for _, a := range t.Associations {
			if aws.ToBool(a.Main) {
				rt.Main, mainTable = true, rt.ID
			}
			if s := aws.ToString(a.SubnetId); s != "" {
				explicit[s] = rt.ID
			}
		}
		for _, r := range t.Routes {
			target := firstNonEmpty(aws.ToString(r.GatewayId), aws.ToString(r.NatGatewayId), aws.ToString(r.EgressOnlyInternetGatewayId),
				aws.ToString(r.InstanceId), aws.ToString(r.NetworkInterfaceId), aws.ToString(r.TransitGatewayId), aws.ToString(r.VpcPeeringConnectionId))
			if strings.HasPrefix(aws.ToString(r.GatewayId), "igw-") {
				rt.InternetGateway = aws.ToString(r.GatewayId)
			}
			switch {
			case aws.ToString(r.DestinationCidrBlock) == "0.0.0.0/0":
				rt.IPv4Default = target
			case aws.ToString(r.DestinationIpv6CidrBlock) == "::/0":
				rt.IPv6Default = target
			}
		}
		byID[rt.ID] = rt
		rts = append(rts, rt)
	}
	var out []Subnet
	used := map[string]bool{}
	for _, s := range subnets {
		sub := Subnet{
			ID: aws.ToString(s.SubnetId), Name: tagValue(s.Tags, "Name"), AZ: aws.ToString(s.AvailabilityZone),
			IPv4CIDR: aws.ToString(s.CidrBlock), AssignIPv6OnCreation: aws.ToBool(s.AssignIpv6AddressOnCreation),
		}
		for _, a := range s.Ipv6CidrBlockAssociationSet {
			if a.Ipv6CidrBlockState != nil && !activeState(string(a.Ipv6CidrBlockState.State)) {
				continue
			}
			sub.IPv6CIDR, sub.IPv6AssociationID = aws.ToString(a.Ipv6CidrBlock), aws.ToString(a.AssociationId)
			break
		}
		sub.RouteTableID = explicit[sub.ID]
		if sub.RouteTableID == "" {
			sub.RouteTableID = mainTable
		}
		if rt := byID[sub.RouteTableID]; rt != nil {
			sub.Public = rt.InternetGateway != ""
			rt.SubnetIDs = append(rt.SubnetIDs, sub.ID)
			used[rt.ID] = true
		}
		out = append(out, sub)
	}
	sort.Slice(out, func(a, b int) bool { return ipv4Less(out[a].IPv4CIDR, out[b].IPv4CIDR) })
	for _, s := range all {
		id := aws.ToString(s.SubnetId)
		if slices.ContainsFunc(out, func(c Subnet) bool { return c.ID == id }) {
			continue
		}
		table := explicit[id]
		if table == "" {
			table = mainTable // implicitly: what makes the main table risky to change
		}
		if rt := byID[table]; rt != nil {
			rt.ForeignSubnetIDs = append(rt.ForeignSubnetIDs, id)
		}
	}
	var tablesOut []RouteTable
	for _, rt := range rts {
		if used[rt.ID] {
			sort.Strings(rt.SubnetIDs)
			sort.Strings(rt.ForeignSubnetIDs)
			tablesOut = append(tablesOut, *rt)
		}
	}
	sort.Slice(tablesOut, func(a, b int) bool { return tablesOut[a].ID < tablesOut[b].ID })
	return out, tablesOut
}

func instanceTypes(ctx context.Context, c *Clients, instances []ec2types.Instance) (map[string]bool, error) {
	seen := map[string]bool{}
	var names []ec2types.InstanceType
	for _, in := range instances {
		if !seen[string(in.InstanceType)] {
			seen[string(in.InstanceType)] = true
			names = append(names, in.InstanceType)
		}
	}
	out := map[string]bool{}
	for start := 0; start < len(names); start += 100 {
		batch := names[start:min(start+100, len(names))]
		res, err := c.EC2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: batch})
		if err != nil {
			return nil, Explain("DescribeInstanceTypes", err)
		}
		for _, t := range res.InstanceTypes {
			out[string(t.InstanceType)] = t.NetworkInfo != nil && aws.ToBool(t.NetworkInfo.Ipv6Supported)
		}
	}
	return out, nil
}

func discoverLoadBalancers(ctx context.Context, c *Clients, inv *Inventory, vpcID, clusterKey string) error {
	var v2 []LoadBalancer
	p := elbv2.NewDescribeLoadBalancersPaginator(c.ELBv2, &elbv2.DescribeLoadBalancersInput{PageSize: aws.Int32(400)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return Explain("elasticloadbalancing:DescribeLoadBalancers", err)
		}
		for _, lb := range out.LoadBalancers {
			if aws.ToString(lb.VpcId) != vpcID {
				continue
			}
			l := LoadBalancer{
				Name: aws.ToString(lb.LoadBalancerName), ARN: aws.ToString(lb.LoadBalancerArn), Type: string(lb.Type),
				Scheme: string(lb.Scheme), IPAddressType: string(lb.IpAddressType), DNSName: aws.ToString(lb.DNSName),
				CanonicalHostedZoneID: aws.ToString(lb.CanonicalHostedZoneId), SecurityGroups: lb.SecurityGroups,
			}
			for _, az := range lb.AvailabilityZones {
				l.SubnetIDs = append(l.SubnetIDs, aws.ToString(az.SubnetId))
			}
			v2 = append(v2, l)
		}
	}
	for start := 0; start < len(v2); start += 20 {
		batch := v2[start:min(start+20, len(v2))]
		arns := make([]string, len(batch))
		for i, l := range batch {
			arns[i] = l.ARN
		}
		out, err := c.ELBv2.DescribeTags(ctx, &elbv2.DescribeTagsInput{ResourceArns: arns})
		if err != nil {
			return Explain("elasticloadbalancing:DescribeTags", err)
		}
		tags := map[string]map[string]string{}
		for _, td := range out.TagDescriptions {
			m := map[string]string{}
			for _, t := range td.Tags {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			tags[aws.ToString(td.ResourceArn)] = m
		}
		adoptLoadBalancers(inv, batch, clusterKey, tags, func(l LoadBalancer) string { return l.ARN })
	}

	var classic []LoadBalancer
	cp := elb.NewDescribeLoadBalancersPaginator(c.ELB, &elb.DescribeLoadBalancersInput{PageSize: aws.Int32(400)})
	for cp.HasMorePages() {
		out, err := cp.NextPage(ctx)
		if err != nil {
			return Explain("elasticloadbalancing:DescribeLoadBalancers (classic)", err)
		}
		for _, lb := range out.LoadBalancerDescriptions {
			if aws.ToString(lb.VPCId) != vpcID {
				continue
			}
			classic = append(classic, LoadBalancer{
				Name: aws.ToString(lb.LoadBalancerName), Type: "classic", Scheme: aws.ToString(lb.Scheme),
				IPAddressType: "ipv4", DNSName: aws.ToString(lb.DNSName), SubnetIDs: lb.Subnets, SecurityGroups: lb.SecurityGroups,
				CanonicalHostedZoneID: aws.ToString(lb.CanonicalHostedZoneNameID),
			})
		}
	}
	for start := 0; start < len(classic); start += 20 {
		batch := classic[start:min(start+20, len(classic))]
		names := make([]string, len(batch))
		for i, l := range batch {
			names[i] = l.Name
		}
		out, err := c.ELB.DescribeTags(ctx, &elb.DescribeTagsInput{LoadBalancerNames: names})
		if err != nil {
			return Explain("elasticloadbalancing:DescribeTags (classic)", err)
		}
		tags := map[string]map[string]string{}
		for _, td := range out.TagDescriptions {
			m := map[string]string{}
			for _, t := range td.Tags {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			tags[aws.ToString(td.LoadBalancerName)] = m
		}
		adoptLoadBalancers(inv, batch, clusterKey, tags, func(l LoadBalancer) string { return l.Name })
	}
	sort.SliceStable(inv.LoadBalancers, func(a, b int) bool { return inv.LoadBalancers[a].Name < inv.LoadBalancers[b].Name })
	return nil
}

func rules(perms []ec2types.IpPermission) []Rule {
	var out []Rule
	for _, p := range perms {
		r := Rule{Protocol: aws.ToString(p.IpProtocol), FromPort: portOr(p.FromPort), ToPort: portOr(p.ToPort)}
		for _, x := range p.IpRanges {
			r.IPv4 = append(r.IPv4, aws.ToString(x.CidrIp))
		}
		for _, x := range p.Ipv6Ranges {
			r.IPv6 = append(r.IPv6, aws.ToString(x.CidrIpv6))
		}
		for _, g := range p.UserIdGroupPairs {
			r.Groups = append(r.Groups, aws.ToString(g.GroupId))
		}
		out = append(out, r)
	}
	return out
}

// portOr is the port, with "all" (absent) as -1 as EC2 itself reports it.
func portOr(p *int32) int32 {
	if p == nil {
		return -1
	}
	return *p
}

func clusterTag(tags []ec2types.Tag) string {
	for _, t := range tags {
		if k := aws.ToString(t.Key); strings.HasPrefix(k, ClusterTagPrefix) {
			return strings.TrimPrefix(k, ClusterTagPrefix)
		}
	}
	return ""
}

// otherCluster is the infraID of another cluster that tags name: one that
// owns the resource, or any when this cluster's own tag is absent (a
// resource shared by other clusters only). "" when none.
func otherCluster(tags []ec2types.Tag, clusterKey string) string {
	mine := clusterKey != "" && hasTag(tags, clusterKey)
	for _, t := range tags {
		k := aws.ToString(t.Key)
		if !strings.HasPrefix(k, ClusterTagPrefix) || k == clusterKey {
			continue
		}
		if !mine || aws.ToString(t.Value) == "owned" {
			return strings.TrimPrefix(k, ClusterTagPrefix)
		}
	}
	return ""
}

func hasTag(tags []ec2types.Tag, key string) bool {
	return slices.ContainsFunc(tags, func(t ec2types.Tag) bool { return aws.ToString(t.Key) == key })
}

func tagValue(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// adoptLoadBalancers adds to the inventory the load balancers of batch that
// carry the cluster tag (all of them when clusterKey is empty), with the
// Service that owns each. tags are by load balancer, as id names it.
func adoptLoadBalancers(inv *Inventory, batch []LoadBalancer, clusterKey string, tags map[string]map[string]string, id func(LoadBalancer) string) {
	for _, lb := range batch {
		t, ok := tags[id(lb)]
		if !ok {
			continue
		}
		if _, owned := t[clusterKey]; clusterKey != "" && !owned {
			continue
		}
		lb.Service = t[ServiceNameTag]
		inv.LoadBalancers = append(inv.LoadBalancers, lb)
	}
}
