package aws

// LoadBalancerDualStack is the change that switches one NLB to dualstack,
// with the same journal ID `aws plan` gives it, so whichever command makes
// it, `aws apply` sees it done and `aws rollback` undoes it.
func LoadBalancerDualStack(inv *Inventory, name, arn, previous, reason string) Change {
	p := &Plan{}
	p.add(Change{Operation: "SetIpAddressType", Resource: name, Phase: PhaseAddresses, Reason: reason,
		Parameters: map[string]string{"loadBalancerArn": arn, "ipAddressType": "dualstack", "previousIpAddressType": previous, "vpcId": inv.VPC.ID}})
	return p.Changes[0]
}
