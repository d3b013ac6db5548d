package status

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/dns"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

// UnderlayFacts is the cluster's AWS network, or why it could not be read.
type UnderlayFacts struct {
	Inventory *awsx.Inventory
	Err       error
	// DNS is the dns phase's plan from the records as they are, with the
	// load balancers the aws phase would make dual-stack (nil: not read,
	// DNSErr says why).
	DNS    *dns.Plan
	DNSErr error
}

// underlayTimeout bounds the AWS part of status: an unreachable AWS (no
// credentials, no network) must not hold the whole report up.
const underlayTimeout = 20 * time.Second

func gatherUnderlay(ctx context.Context, info platform.Info, nodes []corev1.Node, dc dynamic.Interface, profile string) *UnderlayFacts {
	ctx, cancel := context.WithTimeout(ctx, underlayTimeout)
	defer cancel()
	c, err := awsx.NewClients(ctx, awsx.ConfigOptions{Region: info.AWSRegion, Profile: profile, ServiceEndpoints: info.EndpointMap(), MaxAttempts: 2})
	if err != nil {
		return &UnderlayFacts{Err: err}
	}
	inv, err := awsx.Discover(ctx, c, awsx.Target{InfraID: info.InfraID, Instances: awsx.NodeInstances(nodes), NodeNames: awsx.NodeNames(nodes)})
	u := &UnderlayFacts{Inventory: inv, Err: err}
	if err == nil {
		u.DNS, u.DNSErr = gatherDNS(ctx, c, dc, inv)
	}
	return u
}

func gatherDNS(ctx context.Context, c *awsx.Clients, dc dynamic.Interface, inv *awsx.Inventory) (*dns.Plan, error) {
	zo, err := dns.ClusterZoneOptions(ctx, dc, inv.VPC.ID, inv.Region, nil)
	if err != nil {
		return nil, err
	}
	zones, err := dns.FindZones(ctx, c.Route53, zo)
	if err != nil {
		return nil, err
	}
	return dns.MakePlan(ctx, c.Route53, zones, dns.Targets(inv, awsx.MakePlan(inv, awsx.PlanOptions{})), "")
}

// underlayChecks judge the AWS network: one check per kind of resource.
func underlayChecks(u *UnderlayFacts, command string) []report.Check {
	if u == nil {
		return nil
	}
	underlayFix := command + " aws plan, then " + command + " aws apply"
	if u.Err != nil {
		// Blame the credentials only when AWS said so: any other failure
		// (a throttled call, a region without the cluster) has its own fix,
		// and the message already names it.
		fix := "fix what the message says, then re-run; `" + command + " aws discover` shows the same error in full"
		if msg := strings.ToLower(u.Err.Error()); strings.Contains(msg, "credentials") || strings.Contains(msg, "access denied") {
			fix = "provide AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID...) with the read-only policy of `" + command + " aws iam-policy --for plan`"
		}
		return []report.Check{{Layer: report.LayerUnderlay, Name: "aws-reachable", Status: report.Warn,
			Message:     "cannot read the cluster's AWS network, so the underlay is not checked: " + u.Err.Error(),
			Remediation: fix}}
	}
	inv := u.Inventory
	var out []report.Check
	// Nodes whose instance is gone were skipped by discovery: say so by name.
	var gone []string
	fix := ""
	for _, n := range inv.Notes {
		if strings.HasPrefix(n.Resource, "node/") {
			gone = append(gone, n.Message)
			if fix == "" {
				fix = n.Fix
			}
		}
	}
	if len(gone) > 0 {
		out = append(out, report.Check{Layer: report.LayerUnderlay, Name: "node-instances", Status: report.Warn,
			Message: strings.Join(gone, "; "), Remediation: fix})
	}
	p := awsx.MakePlan(inv, awsx.PlanOptions{})
	pending := map[string][]string{}
	for _, c := range p.Changes {
		pending[c.Operation] = append(pending[c.Operation], c.Resource)
	}
	check := func(name, ok string, fail []string, what string) report.Check {
		c := report.Check{Layer: report.LayerUnderlay, Name: name, Status: report.Pass, Message: ok}
		if len(fail) > 0 {
			c.Status = report.Fail
			c.Message = fmt.Sprintf("%s: %s", what, names(dedupe(fail)))
			c.Remediation = underlayFix
		}
		return c
	}
	out = append(out, check("vpc-ipv6", fmt.Sprintf("VPC %s has IPv6 %s", inv.VPC.ID, inv.VPC.IPv6CIDR),
		pending["AssociateVpcCidrBlock"], "the VPC has no IPv6 /56"))
	out = append(out, check("subnet-ipv6", fmt.Sprintf("%d subnets have an IPv6 /64 and AssignIpv6AddressOnCreation", len(inv.Subnets)),
		append(pending["AssociateSubnetCidrBlock"], pending["ModifySubnetAttribute"]...), "subnets without an IPv6 /64 or AssignIpv6AddressOnCreation"))
	out = append(out, check("ipv6-routes", fmt.Sprintf("%d route tables have ::/0", len(inv.RouteTables)),
		pending["CreateRoute"], "route tables without ::/0"))
	out = append(out, check("egress-only-gateway", "private subnets have an egress-only internet gateway",
		pending["CreateEgressOnlyInternetGateway"], "no egress-only internet gateway for the private subnets of VPC"))
	out = append(out, check("security-group-ipv6", fmt.Sprintf("%d security groups mirror their IPv4 rules for IPv6", len(inv.SecurityGroups)),
		append(pending["AuthorizeSecurityGroupIngress"], pending["AuthorizeSecurityGroupEgress"]...), "security groups missing IPv6 mirrors of IPv4 rules"))
	acl := check("network-acl-ipv6", fmt.Sprintf("%d network ACLs of the cluster's subnets pass IPv6 as they pass IPv4", len(inv.NetworkACLs)),
		pending["CreateNetworkAclEntry"], "network ACLs without the IPv6 twins of their IPv4 entries (they drop IPv6)")
	for _, n := range p.Notes {
		if strings.HasPrefix(n.Resource, "acl-") && strings.Contains(n.Message, "gets no IPv6 entries") {
			if acl.Status == report.Pass {
				acl.Status, acl.Message, acl.Remediation = report.Warn, n.Message, n.Fix
			} else {
				acl.Message += "; " + n.Message
			}
		}
	}
	out = append(out, acl)
	var noType []string
	for _, n := range p.Notes {
		if strings.HasPrefix(n.Resource, "i-") {
			noType = append(noType, n.Resource)
		}
	}
	inst := check("instance-ipv6", fmt.Sprintf("%d instances support IPv6 and have an IPv6 address", len(inv.Instances)),
		append(noType, pending["AssignIpv6Addresses"]...), "instances without IPv6 support or without an IPv6 address on their primary ENI")
	if len(noType) > 0 {
		inst.Remediation = "change the instance type (" + command + " aws apply --allow-instance-type-change=<type>), then " + underlayFix
	}
	out = append(out, inst)
	classic := 0
	for _, l := range inv.LoadBalancers {
		if l.Type == "classic" {
			classic++
		}
	}
	lbOK := fmt.Sprintf("%d NLBs/ALBs are dualstack", len(inv.LoadBalancers)-classic)
	if classic > 0 {
		// A Classic ELB cannot be dualstack: said, not counted as passing.
		lbOK += fmt.Sprintf("; %d Classic ELBs cannot serve IPv6 (see ingress-load-balancer and openshift-router)", classic)
	}
	lb := check("load-balancer-ipv6", lbOK, pending["SetIpAddressType"], "NLBs/ALBs with IpAddressType ipv4")
	out = append(out, lb)
	if c, ok := dnsCheck(u, command); ok {
		out = append(out, c)
	}
	return out
}

// dnsCheck judges the names users reach the cluster by: an alias A record
// to a load balancer that is (or becomes) dual-stack without its AAAA
// twin answers IPv4 only. No check without zones (a cluster with no
// Route 53 names).
func dnsCheck(u *UnderlayFacts, command string) (report.Check, bool) {
	c := report.Check{Layer: report.LayerUnderlay, Name: "dns-aaaa"}
	switch {
	case u.DNSErr != nil:
		c.Status, c.Message = report.Warn, "cannot read the cluster's Route 53 records, so its names are not checked: "+u.DNSErr.Error()
		c.Remediation = "grant the read actions of `" + command + " aws iam-policy --for plan` (route53:ListResourceRecordSets and others), then re-run"
		return c, true
	case u.DNS == nil || len(u.DNS.Zones) == 0:
		return c, false
	}
	var zones []string
	for _, z := range u.DNS.Zones {
		zones = append(zones, z.Name)
	}
	if n := len(u.DNS.Changes); n > 0 {
		var lacking []string
		for _, ch := range u.DNS.Changes {
			lacking = append(lacking, ch.Name)
		}
		c.Status = report.Fail
		c.Message = fmt.Sprintf("%d name(s) in %s have no AAAA record though their load balancer is or becomes dual-stack, so clients resolving them get IPv4 only: %s",
			n, strings.Join(zones, ", "), names(dedupe(lacking)))
		c.Remediation = command + " upgrade (its dns phase), or " + command + " dns apply once the load balancers are dual-stack"
		return c, true
	}
	c.Status = report.Pass
	c.Message = fmt.Sprintf("%d alias record(s) to dual-stack load balancers in %s have their AAAA", u.DNS.Counts.WithAAAA, strings.Join(zones, ", "))
	return c, true
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range list {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
