package aws

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Placeholders in change parameters for values that exist only once an
// earlier change of the same apply has been made.
const (
	VPCIPv6Placeholder   = "${vpc-ipv6-cidr}"
	EgressIGWPlaceholder = "${egress-only-internet-gateway}"
)

// Phases: changes of one phase are independent of each other and run in
// parallel; a phase starts when the one before it is done. Rollback runs the
// phases backwards.
const (
	PhaseVPC          = 1 // the VPC's /56, the egress-only internet gateway
	PhaseSubnetsRules = 2 // subnet /64s, ::/0 routes, security group and network ACL mirrors
	PhaseSubnetAttrs  = 3 // AssignIpv6AddressOnCreation
	PhaseInstanceType = 4 // stop/modify/start, one instance at a time
	PhaseAddresses    = 5 // ENI addresses, load balancers dualstack
)

// PhaseNames say what each phase does, for the plan's header.
var PhaseNames = map[int]string{
	PhaseVPC:          "the VPC's IPv6 /56 and the egress-only internet gateway",
	PhaseSubnetsRules: "subnet /64s, ::/0 routes, security group rules and network ACL entries",
	PhaseSubnetAttrs:  "subnets give new instances IPv6",
	PhaseInstanceType: "instance type changes, one instance at a time (only with --allow-instance-type-change)",
	PhaseAddresses:    "IPv6 addresses on the instances' ENIs, load balancers dualstack",
}

// Change is one AWS operation of a plan. Field names are stable (-o json).
type Change struct {
	ID         string            `json:"id"`
	Operation  string            `json:"operation"`
	Resource   string            `json:"resource"`
	Reason     string            `json:"reason"`
	Parameters map[string]string `json:"parameters"`
	Phase      int               `json:"phase"`
}

// Note is something the plan reports but does not change.
type Note struct {
	Resource string `json:"resource"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

// Cluster says which cluster and VPC a plan is for.
type Cluster struct {
	InfraID    string   `json:"infraID,omitempty"`
	Region     string   `json:"region"`
	VPCID      string   `json:"vpcId"`
	ResolvedBy []string `json:"resolvedBy,omitempty"`
}

// Plan is the change set that makes the underlay dual-stack.
type Plan struct {
	Cluster Cluster  `json:"cluster"`
	Changes []Change `json:"changes"`
	Notes   []Note   `json:"notes"`
}

// PlanOptions change what the plan may do.
type PlanOptions struct {
	// NewInstanceType, when set, is the type instances without IPv6 support
	// are changed to (stop, modify, start). Empty: they are only reported.
	NewInstanceType string
	// AllowControlPlaneRestart lets a type change stop control-plane
	// instances too (they serve the API and etcd): without it they are
	// only reported.
	AllowControlPlaneRestart bool
	// Command is how the user runs this tool ("kubectl dualstack", the
	// default, or "oc dualstack"), for the commands notes name.
	Command string
}

func (o PlanOptions) command() string {
	if o.Command == "" {
		return "kubectl dualstack"
	}
	return o.Command
}

// ClusterOf is the plan's cluster section for an inventory.
func ClusterOf(inv *Inventory) Cluster {
	return Cluster{InfraID: inv.InfraID, Region: inv.Region, VPCID: inv.VPC.ID, ResolvedBy: inv.ResolvedBy}
}

// MakePlan computes the changes from the discovered state alone; a state
// that is already dual-stack gives no changes.
func MakePlan(inv *Inventory, o PlanOptions) *Plan {
	p := &Plan{Cluster: ClusterOf(inv), Changes: []Change{}, Notes: slices.Clone(inv.Notes)}
	if p.Notes == nil {
		p.Notes = []Note{}
	}
	vpc := inv.VPC.ID
	vpc6 := inv.VPC.IPv6CIDR
	shared := sharedNote(inv)
	if vpc6 == "" {
		vpc6 = VPCIPv6Placeholder
		reason := "the VPC has no IPv6 block; every subnet's /64 is carved from an Amazon-provided /56"
		if shared != "" {
			reason += "; the one change shared with the VPC's other subnets: AWS adds a local route for the block to every route table of the VPC, theirs too"
		}
		p.add(Change{Operation: "AssociateVpcCidrBlock", Resource: vpc, Phase: PhaseVPC, Reason: reason,
			Parameters: map[string]string{"vpcId": vpc, "amazonProvidedIpv6CidrBlock": "true"}})
	}
	if shared != "" {
		p.Notes = append(p.Notes, Note{Resource: vpc, Message: shared})
	}

	// Subnet /64s: lowest free numbers, subnets in IPv4 address order.
	var need []Subnet
	for _, s := range inv.Subnets {
		if s.IPv6CIDR == "" {
			need = append(need, s)
		}
	}
	total := 256 // the /56 AssociateVpcCidrBlock gets from Amazon
	used := map[int]bool{}
	if inv.VPC.IPv6CIDR != "" {
		var err error
		if total, err = BlockCount(inv.VPC.IPv6CIDR); err != nil && len(need) > 0 {
			p.Notes = append(p.Notes, Note{Resource: vpc, Message: err.Error() + "; no /64 can be carved from it for the subnets without IPv6",
				Fix: "give the VPC an IPv6 block of /44 to /60 (an Amazon-provided /56 or one from an IPAM pool)"})
			need = nil
		}
		for _, b := range inv.VPC.UsedIPv6Blocks {
			if n := blockIndex(inv.VPC.IPv6CIDR, b); n >= 0 {
				used[n] = true
			}
		}
	}
	numbers, err := AllocateBlocks(len(need), used, total)
	if err != nil {
		p.Notes = append(p.Notes, Note{Resource: vpc, Message: err.Error(), Fix: "use fewer subnets for the cluster, or a larger IPv6 block from an IPAM pool"})
		need = nil
	}
	planned6 := map[string]bool{}
	subnet6 := map[string]string{} // a cluster subnet's IPv4 range -> its /64 (or the /64 it gets)
	for _, s := range inv.Subnets {
		if s.IPv6CIDR != "" {
			subnet6[s.IPv4CIDR] = s.IPv6CIDR
		}
	}
	for i, s := range need {
		block := fmt.Sprintf("%s/64#%d", VPCIPv6Placeholder, numbers[i])
		if inv.VPC.IPv6CIDR != "" {
			block, _ = SubnetBlock(inv.VPC.IPv6CIDR, numbers[i]) // a valid block and a number below its count
		}
		planned6[s.ID] = true
		subnet6[s.IPv4CIDR] = block
		p.add(Change{Operation: "AssociateSubnetCidrBlock", Resource: s.ID, Phase: PhaseSubnetsRules,
			Reason:     fmt.Sprintf("%s subnet %s has no IPv6 /64", visibility(s.Public), nameAndCIDR(s)),
			Parameters: map[string]string{"subnetId": s.ID, "ipv6CidrBlock": block, "blockNumber": strconv.Itoa(numbers[i]), "vpcId": vpc}})
	}
	for _, s := range inv.Subnets {
		if !s.AssignIPv6OnCreation {
			p.add(Change{Operation: "ModifySubnetAttribute", Resource: s.ID, Phase: PhaseSubnetAttrs,
				Reason:     fmt.Sprintf("instances launched in %s should get an IPv6 address (AssignIpv6AddressOnCreation)", nameOnly(s)),
				Parameters: map[string]string{"subnetId": s.ID, "assignIpv6AddressOnCreation": "true", "vpcId": vpc}})
		}
	}

	// ::/0 routes: public tables to the internet gateway, private ones to an
	// egress-only internet gateway (created once per VPC).
	eigw := ""
	for _, g := range inv.EgressOnlyGateways {
		if eigw == "" || g.Managed {
			eigw = g.ID
		}
	}
	for _, rt := range inv.RouteTables {
		if rt.IPv6Default != "" {
			continue
		}
		name := nameOrID(rt.Name, rt.ID)
		leave := func(msg, fix string) {
			p.Notes = append(p.Notes, Note{Resource: rt.ID, Message: "route table " + name + " gets no ::/0 route: " + msg, Fix: fix})
		}
		// An IPv6 default route only mirrors an IPv4 one of the same kind:
		// anything else would open a way out that IPv4 does not have, or
		// change another cluster's or another subnet's routing.
		switch v4 := rt.IPv4Default; {
		case rt.OtherCluster != "":
			leave("it is tagged for another cluster ("+ClusterTagPrefix+rt.OtherCluster+")", "that cluster's owner adds its IPv6 routes")
		case rt.Main && len(rt.ForeignSubnetIDs) > 0:
			leave(fmt.Sprintf("it is the VPC's main table, and subnets that are not the cluster's use it (%s)", strings.Join(rt.ForeignSubnetIDs, ", ")),
				"give the cluster's subnets a route table of their own, or add ::/0 by hand if every subnet using the main table should have it")
		case v4 == "":
			leave("it has no IPv4 default route (an isolated subnet): an IPv6 one would widen its egress", "add ::/0 by hand if these subnets should reach the internet over IPv6")
		case strings.HasPrefix(v4, "igw-"):
			p.add(Change{Operation: "CreateRoute", Resource: rt.ID, Phase: PhaseSubnetsRules,
				Reason:     fmt.Sprintf("public route table %s sends 0.0.0.0/0 to %s; IPv6 needs ::/0 there too", name, v4),
				Parameters: map[string]string{"routeTableId": rt.ID, "destinationIpv6CidrBlock": "::/0", "gatewayId": v4, "vpcId": vpc}})
		case strings.HasPrefix(v4, "nat-"):
			if eigw == "" {
				eigw = EgressIGWPlaceholder
				tags := "Name=" + firstNonEmpty(inv.InfraID, vpc) + "-eigw"
				if inv.InfraID != "" {
					tags += "," + ClusterTagPrefix + inv.InfraID + "=owned"
				}
				p.add(Change{Operation: "CreateEgressOnlyInternetGateway", Resource: vpc, Phase: PhaseVPC,
					Reason:     "private subnets reach the internet over IPv6 through an egress-only internet gateway (tagged owned, so the cluster's destroy removes it)",
					Parameters: map[string]string{"vpcId": vpc, "tags": tags + "," + ManagedByTag + "=" + ManagedByValue}})
			}
			p.add(Change{Operation: "CreateRoute", Resource: rt.ID, Phase: PhaseSubnetsRules,
				Reason:     fmt.Sprintf("private route table %s sends 0.0.0.0/0 to NAT gateway %s; ::/0 goes to the egress-only internet gateway", name, v4),
				Parameters: map[string]string{"routeTableId": rt.ID, "destinationIpv6CidrBlock": "::/0", "egressOnlyInternetGatewayId": eigw, "vpcId": vpc}})
		default:
			leave("its IPv4 default route goes to "+v4+", neither an internet nor a NAT gateway, so there is no known IPv6 counterpart",
				"add ::/0 by hand if that path carries IPv6")
		}
	}

	twin := func(v4 string) (string, string, bool) { return ipv6Counterpart(inv, v4, vpc6, subnet6) }
	planSecurityGroups(p, inv, twin)
	planNetworkACLs(p, inv, twin)
	planInstances(p, inv, o, planned6)
	planLoadBalancers(p, inv, o, planned6)
	return p
}

// sharedNote says what of a shared VPC the plan leaves alone ("" when
// every subnet of the VPC is the cluster's).
func sharedNote(inv *Inventory) string {
	if len(inv.VPC.OtherSubnets) == 0 {
		return ""
	}
	byOwner := map[string][]string{}
	for id, owner := range inv.VPC.OtherSubnets {
		byOwner[owner] = append(byOwner[owner], id)
	}
	var parts []string
	for _, owner := range slices.Sorted(maps.Keys(byOwner)) {
		ids := byOwner[owner]
		sort.Strings(ids)
		who := "tagged for no cluster"
		if owner != "" {
			who = "cluster " + owner + "'s"
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", strings.Join(ids, ", "), who))
	}
	return fmt.Sprintf("the VPC is shared: %d subnets are not this cluster's: %s; nothing of theirs is changed (their route tables, network ACLs, security groups, instances and load balancers are left alone)",
		len(inv.VPC.OtherSubnets), strings.Join(parts, "; "))
}

func (p *Plan) add(c Change) {
	c.ID = "underlay/" + c.Operation + "/" + c.Resource
	if d := c.Parameters["_id"]; d != "" {
		c.ID += "/" + d
		delete(c.Parameters, "_id")
	}
	p.Changes = append(p.Changes, c)
}

// counterpartFunc maps an IPv4 range to its IPv6 counterpart and says why;
// false when it has none known.
type counterpartFunc func(v4 string) (v6, why string, ok bool)

// ipv6Counterpart: 0.0.0.0/0 -> ::/0; the VPC's IPv4 range -> its IPv6
// block; a cluster subnet's IPv4 range -> its /64 (load balancer health
// checks and node rules are often written per subnet). Anything else has
// no known counterpart: reported, never invented.
func ipv6Counterpart(inv *Inventory, v4, vpc6 string, subnet6 map[string]string) (string, string, bool) {
	switch {
	case v4 == "0.0.0.0/0":
		return "::/0", "0.0.0.0/0 -> ::/0", true
	case slices.Contains(inv.VPC.IPv4CIDRs, v4):
		return vpc6, "the VPC's IPv4 range " + v4 + " -> the VPC's IPv6 block", true
	case subnet6[v4] != "":
		return subnet6[v4], "cluster subnet " + v4 + " -> its IPv6 /64", true
	}
	return "", "", false
}

func planSecurityGroups(p *Plan, inv *Inventory, counterpart counterpartFunc) {
	for _, g := range inv.SecurityGroups {
		for _, dir := range []string{"ingress", "egress"} {
			rules := g.Ingress
			if dir == "egress" {
				rules = g.Egress
			}
			seen := map[string]bool{}
			for _, r := range rules {
				for _, v4 := range r.IPv4 {
					v6, why, ok := counterpart(v4)
					if !ok {
						p.Notes = append(p.Notes, Note{Resource: g.ID,
							Message: fmt.Sprintf("%s rule %s %s %s of %s has no known IPv6 counterpart: not mirrored", dir, ruleWhat(r), peerWord(dir), v4, g.Name),
							Fix:     "add the IPv6 rule by hand if that network has IPv6"})
						continue
					}
					proto, from, to := normProtocol(r.Protocol), r.FromPort, r.ToPort
					if proto == "icmp" {
						t, c, ok := icmpv6For(from, to)
						if !ok {
							p.Notes = append(p.Notes, Note{Resource: g.ID,
								Message: fmt.Sprintf("%s ICMP type %d code %d rule from %s of %s has no ICMPv6 counterpart: not mirrored", dir, from, to, v4, g.Name)})
							continue
						}
						proto, from, to = "58", t, c
						why += ", ICMP -> ICMPv6"
					}
					if proto == "-1" {
						from, to = -1, -1
					}
					if hasIPv6Rule(rules, proto, from, to, v6) {
						continue
					}
					// Two IPv4 sources can mirror to one IPv6 permission (the
					// VPC's IPv4 ranges all map to its /56): add it once.
					perm := fmt.Sprintf("%s/%d/%d/%s", proto, from, to, v6)
					if seen[perm] {
						continue
					}
					seen[perm] = true
					key := fmt.Sprintf("%s/%d/%d/%s", proto, from, to, v4)
					op := "AuthorizeSecurityGroupIngress"
					if dir == "egress" {
						op = "AuthorizeSecurityGroupEgress"
					}
					p.add(Change{Operation: op, Resource: g.ID, Phase: PhaseSubnetsRules,
						Reason: fmt.Sprintf("IPv6 mirror of %s's %s rule %s %s %s (%s)", g.Name, dir, ruleWhat(r), peerWord(dir), v4, why),
						Parameters: map[string]string{"groupId": g.ID, "groupName": g.Name, "direction": dir, "ipProtocol": proto,
							"fromPort": itoa(from), "toPort": itoa(to), "cidrIpv6": v6, "mirrorOf": v4, "vpcId": inv.VPC.ID, "_id": key}})
				}
			}
		}
	}
}

func hasIPv6Rule(rules []Rule, proto string, from, to int32, cidr string) bool {
	for _, r := range rules {
		rp, rf, rt := normProtocol(r.Protocol), r.FromPort, r.ToPort
		if rp == "-1" {
			rf, rt = -1, -1
		}
		if rp == proto && rf == from && rt == to && slices.Contains(r.IPv6, cidr) {
			return true
		}
	}
	return false
}

func planInstances(p *Plan, inv *Inventory, o PlanOptions, planned6 map[string]bool) {
	enis := map[string]ENI{}
	for _, e := range inv.NetworkInterfaces {
		enis[e.ID] = e
	}
	for _, in := range inv.Instances {
		canIPv6 := in.IPv6Supported
		if !in.IPv6Supported {
			if o.NewInstanceType == "" {
				p.Notes = append(p.Notes, Note{Resource: in.ID,
					Message: fmt.Sprintf("instance %s is a %s, a type without IPv6 support: it gets no IPv6 address", nameOrID(in.Name, in.ID), in.Type),
					Fix:     "re-run with --allow-instance-type-change=<a current type, e.g. m6i.large> (stops and starts it), or replace the machine"})
			} else if in.ControlPlane && !o.AllowControlPlaneRestart {
				p.Notes = append(p.Notes, Note{Resource: in.ID,
					Message: fmt.Sprintf("control-plane instance %s is a %s, a type without IPv6 support: not stopped to change its type (it serves the API server and etcd), so it gets no IPv6 address", nameOrID(in.Name, in.ID), in.Type),
					Fix:     "re-run with --allow-control-plane-restart too (one instance at a time, each Node Ready again before the next), or replace the machine"})
			} else {
				canIPv6 = true
				role := "worker"
				if in.ControlPlane {
					role = "control-plane"
				}
				p.add(Change{Operation: "ModifyInstanceAttribute", Resource: in.ID, Phase: PhaseInstanceType,
					Reason: fmt.Sprintf("%s instance %s is a %s without IPv6 support: stop, change the type to %s, start (one instance at a time)", role, nameOrID(in.Name, in.ID), in.Type, o.NewInstanceType),
					Parameters: map[string]string{"instanceId": in.ID, "instanceType": o.NewInstanceType, "previousInstanceType": in.Type,
						"controlPlane": strconv.FormatBool(in.ControlPlane), "previousState": in.State, "vpcId": inv.VPC.ID}})
			}
		}
		e, ok := enis[in.PrimaryENI]
		if !ok || len(e.IPv6Addresses) > 0 || !canIPv6 {
			continue
		}
		p.add(Change{Operation: "AssignIpv6Addresses", Resource: e.ID, Phase: PhaseAddresses,
			Reason:     fmt.Sprintf("the primary network interface of %s has no IPv6 address", nameOrID(in.Name, in.ID)),
			Parameters: map[string]string{"networkInterfaceId": e.ID, "instanceId": in.ID, "ipv6AddressCount": "1", "subnetId": e.SubnetID, "vpcId": inv.VPC.ID}})
	}
}

func planLoadBalancers(p *Plan, inv *Inventory, o PlanOptions, planned6 map[string]bool) {
	has6 := map[string]bool{}
	for _, s := range inv.Subnets {
		has6[s.ID] = s.IPv6CIDR != "" || planned6[s.ID]
	}
	for _, lb := range inv.LoadBalancers {
		owner := ""
		if lb.Service != "" {
			owner = " (Service " + lb.Service + ")"
		}
		switch lb.Type {
		case "classic":
			p.Notes = append(p.Notes, Note{Resource: lb.Name,
				Message: fmt.Sprintf("Classic ELB %s%s cannot serve IPv6 in a VPC", lb.Name, owner),
				Fix:     "move its Service to a dual-stack NLB: `" + o.command() + " gateway --recreate`"})
			continue
		case "network", "application":
		default:
			continue
		}
		if lb.IPAddressType != "ipv4" {
			continue
		}
		var missing []string
		for _, s := range lb.SubnetIDs {
			if !has6[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			p.Notes = append(p.Notes, Note{Resource: lb.Name,
				Message: fmt.Sprintf("load balancer %s%s stays IPv4: its subnets %s are not cluster subnets and have no IPv6", lb.Name, owner, strings.Join(missing, ", ")),
				Fix:     "give those subnets an IPv6 /64, then re-run"})
			continue
		}
		reason := fmt.Sprintf("%s %s %s%s answers on IPv4 only; all its subnets have (or get) IPv6", lb.Scheme, lbKind(lb.Type), lb.Name, owner)
		if lb.Scheme == "internal" {
			reason += "; internal, so dualstack only adds IPv6 for clients inside the VPC"
		}
		if lb.Type == "network" {
			// Client IP preservation is per family: AWS translates IPv6
			// clients to the NLB's private IPv4 address for IPv4 targets.
			reason += "; client IP preservation keeps IPv4 clients' addresses only: IPv6 clients reach its IPv4 targets from the NLB's own IPv4 address in its subnets (proxy protocol v2 carries theirs)"
		}
		p.add(Change{Operation: "SetIpAddressType", Resource: lb.Name, Phase: PhaseAddresses, Reason: reason,
			Parameters: map[string]string{"loadBalancerArn": lb.ARN, "ipAddressType": "dualstack", "previousIpAddressType": lb.IPAddressType, "vpcId": inv.VPC.ID}})
	}
}

// SortChanges orders changes by phase, then as planned.
func SortChanges(cs []Change) {
	// Within a phase the changes run together; listing them by kind (in
	// the order the plan makes them) and then by what they change keeps
	// the same plan the same on every run, whatever order AWS listed the
	// resources in.
	rank := map[string]int{}
	for _, c := range cs {
		if _, ok := rank[c.Operation]; !ok {
			rank[c.Operation] = len(rank)
		}
	}
	sort.SliceStable(cs, func(a, b int) bool {
		x, y := cs[a], cs[b]
		switch {
		case x.Phase != y.Phase:
			return x.Phase < y.Phase
		case rank[x.Operation] != rank[y.Operation]:
			return rank[x.Operation] < rank[y.Operation]
		case x.Reason != y.Reason:
			return x.Reason < y.Reason
		}
		return x.Resource < y.Resource
	})
}

func lbKind(t string) string {
	if t == "network" {
		return "NLB"
	}
	if t == "application" {
		return "ALB"
	}
	return t
}

func visibility(public bool) string {
	if public {
		return "public"
	}
	return "private"
}

func nameOr(s Subnet) string { return nameOrID(s.Name, s.ID) }

// nameOnly names a subnet in a reason next to its ID (the RESOURCE
// column): its Name tag, or nothing more.
func nameOnly(s Subnet) string {
	if s.Name == "" {
		return "the subnet"
	}
	return s.Name
}

// nameAndCIDR is "name (10.0.0.0/20)", or "(10.0.0.0/20)" without a name.
func nameAndCIDR(s Subnet) string {
	if s.Name == "" {
		return "(" + s.IPv4CIDR + ")"
	}
	return s.Name + " (" + s.IPv4CIDR + ")"
}

// peerWord: an ingress rule admits traffic from its peer, an egress rule
// sends it to its peer.
func peerWord(dir string) string {
	if dir == "egress" {
		return "to"
	}
	return "from"
}

func nameOrID(name, id string) string {
	if name == "" {
		return id
	}
	return name + " (" + id + ")"
}

// ruleWhat is a rule's protocol and ports as a reader says them: "tcp
// 6443", "udp 30000-32767", "all traffic".
func ruleWhat(r Rule) string {
	if r.Protocol == "-1" {
		return "all traffic"
	}
	return r.Protocol + " " + portRange(r)
}

func portRange(r Rule) string {
	switch {
	case r.Protocol == "-1":
		return "all"
	case r.FromPort == r.ToPort:
		return itoa(r.FromPort)
	}
	return itoa(r.FromPort) + "-" + itoa(r.ToPort)
}
