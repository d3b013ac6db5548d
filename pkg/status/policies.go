package status

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/policies"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

// PolicyFacts are the cluster's NetworkPolicies.
type PolicyFacts struct {
	Items []networkingv1.NetworkPolicy
	Err   error // set when they could not be listed
}

// policyRanges are the cluster's ranges in both families, as the facts
// know them: the twins the NetworkPolicies' ipBlocks would get.
func policyRanges(f *Facts, command string) policies.Ranges {
	in := policies.RangeInput{Command: func(s string) string { return command + " " + s }}
	if on := f.OpenShift; on != nil && on.Err == nil {
		in.PodNetwork, in.ServiceNetwork = on.StatusClusterNetwork, on.StatusServiceNetwork
	} else if f.ServiceCIDRs.Source == "ServiceCIDR objects" {
		in.ServiceNetwork = f.ServiceCIDRs.CIDRs
	}
	if u := f.Underlay; u != nil && u.Inventory != nil {
		in.VPCIPv4, in.VPCIPv6 = u.Inventory.VPC.IPv4CIDRs, u.Inventory.VPC.IPv6CIDR
	}
	return in.Make()
}

// policyChecks judge the NetworkPolicies (overlay) and, on AWS, the
// instances' IPv6 metadata endpoint against them (underlay).
func policyChecks(f *Facts, command string) (metadata, netpol *report.Check) {
	var plan *policies.Plan
	if f.Policies.Err == nil {
		plan = policies.Judged(f.Policies.Items, policyRanges(f, command))
	}
	return metadataCheck(f, plan, command), networkPolicyCheck(f, plan, command)
}

// guardsMetadata says whether a finding is about a block that keeps pods
// from (or lets them reach) the metadata service over IPv4.
func guardsMetadata(fd policies.Finding) bool {
	is := func(c string) bool {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		return err == nil && p.Masked() == policies.MetadataIPv4
	}
	return is(fd.IPv4.CIDR) || slices.ContainsFunc(fd.IPv4.Except, is)
}

// metadataGaps names the policies whose IPv4 blocks guard the metadata
// service without an IPv6 twin, and those whose IPv6 block opens it.
func metadataGaps(plan *policies.Plan) (missing, open []string) {
	if plan == nil {
		return nil, nil
	}
	for _, it := range plan.Policies {
		for _, fd := range it.Findings {
			if !guardsMetadata(fd) {
				continue
			}
			switch fd.Action {
			case policies.BlockConflict:
				open = append(open, it.Ref())
			case policies.BlockAdd, policies.BlockUnmapped:
				missing = append(missing, it.Ref())
			}
		}
	}
	return dedupe(missing), dedupe(open)
}

// metadataCheck: AWS serves instance metadata on fd00:ec2::254 too when an
// instance's HttpProtocolIpv6 is enabled, so once pods have IPv6 they reach
// it there unless a NetworkPolicy stops them.
func metadataCheck(f *Facts, plan *policies.Plan, command string) *report.Check {
	if f.Underlay == nil || f.Underlay.Inventory == nil {
		return nil // not on AWS, or aws-reachable already says why not
	}
	inv := f.Underlay.Inventory
	var on []string
	for _, in := range inv.Instances {
		if in.MetadataIPv6 {
			on = append(on, in.ID)
		}
	}
	missing, open := metadataGaps(plan)
	c := &report.Check{Layer: report.LayerUnderlay, Name: "metadata-ipv6", Status: report.Pass}
	addr := policies.MetadataIPv6.Addr().String()
	if len(on) == 0 {
		c.Message = fmt.Sprintf("the IPv6 instance metadata endpoint (%s, HttpProtocolIpv6) is disabled on all %d instances: pods reach the metadata service on %s only",
			addr, len(inv.Instances), policies.MetadataIPv4.Addr())
		if len(missing)+len(open) > 0 {
			c.Message += fmt.Sprintf("; before enabling it, give the NetworkPolicies that keep pods from %s their IPv6 twin (%s; see network-policy-ipv6)",
				policies.MetadataIPv4.Addr(), names(dedupe(append(missing, open...))))
		}
		return c
	}
	c.Message = fmt.Sprintf("HttpProtocolIpv6 is enabled on %d of %d instances (%s): the metadata service answers on %s too, and pods with IPv6 reach it there unless a NetworkPolicy stops them",
		len(on), len(inv.Instances), names(on), addr)
	disable := "or disable the endpoint where pods need no metadata over IPv6 (aws ec2 modify-instance-metadata-options --instance-id ID --http-protocol-ipv6 disabled)"
	switch {
	case len(open) > 0:
		c.Status = report.Fail
		c.Message += fmt.Sprintf("; NetworkPolicies that keep pods from %s have an IPv6 block that lets them reach %s: %s",
			policies.MetadataIPv4.Addr(), addr, names(open))
		c.Remediation = fmt.Sprintf("add %s to the except list of their IPv6 block (%s policies plan names each), %s", policies.MetadataIPv6, command, disable)
	case len(missing) > 0:
		c.Status = report.Warn
		c.Message += fmt.Sprintf("; NetworkPolicies keep pods from %s but have no IPv6 twin: %s", policies.MetadataIPv4.Addr(), names(missing))
		c.Remediation = fmt.Sprintf("%s policies apply (adds the twins, e.g. ::/0 except %s), %s", command, policies.MetadataIPv6, disable)
	case plan == nil:
		c.Status = report.Warn
		c.Message += "; the NetworkPolicies could not be read (see network-policy-ipv6)"
	default:
		c.Message += fmt.Sprintf("; every NetworkPolicy that keeps pods from %s keeps them from %s too", policies.MetadataIPv4.Addr(), addr)
	}
	return c
}

// networkPolicyCheck names the NetworkPolicies whose ipBlocks cover only
// IPv4: once pods have IPv6, the peers they allow over IPv4 are blocked
// over IPv6.
func networkPolicyCheck(f *Facts, plan *policies.Plan, command string) *report.Check {
	c := &report.Check{Layer: report.LayerOverlay, Name: "network-policy-ipv6"}
	if f.Policies.Err != nil {
		c.Status, c.Message = report.Warn, fmt.Sprintf("cannot read the NetworkPolicies: %v", f.Policies.Err)
		c.Remediation = "needs list on networkpolicies (networking.k8s.io) in all namespaces"
		return c
	}
	if len(plan.Policies) == 0 {
		c.Status = report.Pass
		c.Message = fmt.Sprintf("none of the %d NetworkPolicies has an IPv4 ipBlock", len(f.Policies.Items))
		return c
	}
	var adds, others []string
	var refs []string
	for _, it := range plan.Policies {
		for _, fd := range it.Findings {
			switch fd.Action {
			case policies.BlockAdd:
				adds = append(adds, it.Ref()+" "+fd.String())
				refs = append(refs, it.Ref())
			case policies.BlockUnmapped, policies.BlockConflict:
				others = append(others, it.Ref()+" "+fd.String())
				refs = append(refs, it.Ref())
			}
		}
	}
	if len(refs) == 0 {
		c.Status = report.Pass
		c.Message = fmt.Sprintf("every IPv4 ipBlock of the %d NetworkPolicies that have one has its IPv6 twin", len(plan.Policies))
		return c
	}
	c.Status = report.Warn
	c.Message = fmt.Sprintf("%d NetworkPolicies have ipBlocks that cover only IPv4 (%s); once pods have IPv6, what they allow over IPv4 is blocked over IPv6",
		len(dedupe(refs)), names(dedupe(refs)))
	if allNodesHavePodIPv6(f.Nodes) {
		c.Status = report.Fail
		c.Message = strings.Replace(c.Message, "once pods have IPv6, what", "the pod network has IPv6: what", 1)
	}
	if len(adds) > 0 {
		c.Message += "; twins to add: " + examples(adds[:min(len(adds), maxNamed)], len(adds))
	}
	if len(others) > 0 {
		c.Message += "; no twin to derive: " + examples(others[:min(len(others), maxNamed)], len(others))
	}
	switch {
	case len(adds) > 0 && len(others) > 0:
		c.Remediation = fmt.Sprintf("%[1]s policies plan, then %[1]s policies apply (adds the twins it can derive); give the others their IPv6 peers by hand", command)
	case len(adds) > 0:
		c.Remediation = fmt.Sprintf("%[1]s policies plan, then %[1]s policies apply (adds the IPv6 twins next to the IPv4 blocks)", command)
	default:
		c.Remediation = fmt.Sprintf("give them their IPv6 peers by hand (%s policies plan says why none can be derived)", command)
	}
	return c
}
