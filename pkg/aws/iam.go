package aws

import (
	"slices"
	"strings"
)

// ReadActions are what discover, plan and status call.
var ReadActions = []string{
	"ec2:DescribeEgressOnlyInternetGateways",
	"ec2:DescribeInstanceTypes",
	"ec2:DescribeInstances",
	"ec2:DescribeInternetGateways",
	"ec2:DescribeNatGateways",
	"ec2:DescribeNetworkAcls",
	"ec2:DescribeNetworkInterfaces",
	"ec2:DescribeRouteTables",
	"ec2:DescribeSecurityGroups",
	"ec2:DescribeSubnets",
	"ec2:DescribeVpcs",
	"elasticloadbalancing:DescribeLoadBalancers",
	"elasticloadbalancing:DescribeTags",
	"route53:GetHostedZone",
	"route53:ListHostedZones",
	"route53:ListHostedZonesByVPC",
	"route53:ListResourceRecordSets",
	"route53:ListTagsForResources",
}

// WriteActions are what apply and rollback call on top of ReadActions.
// CreateTags: tagging on create (TagSpecifications) needs it.
var WriteActions = []string{
	"ec2:AssignIpv6Addresses",
	"ec2:AssociateSubnetCidrBlock",
	"ec2:AssociateVpcCidrBlock",
	"ec2:AuthorizeSecurityGroupEgress",
	"ec2:AuthorizeSecurityGroupIngress",
	"ec2:CreateEgressOnlyInternetGateway",
	"ec2:CreateNetworkAclEntry",
	"ec2:CreateRoute",
	"ec2:CreateTags",
	"ec2:DeleteEgressOnlyInternetGateway",
	"ec2:DeleteNetworkAclEntry",
	"ec2:DeleteRoute",
	"ec2:DisassociateSubnetCidrBlock",
	"ec2:DisassociateVpcCidrBlock",
	"ec2:ModifySubnetAttribute",
	"ec2:RevokeSecurityGroupEgress",
	"ec2:RevokeSecurityGroupIngress",
	"ec2:UnassignIpv6Addresses",
	"elasticloadbalancing:SetIpAddressType",
	"route53:ChangeResourceRecordSets",
	"route53:GetChange",
}

// InstanceTypeActions are needed only with --allow-instance-type-change.
var InstanceTypeActions = []string{
	"ec2:ModifyInstanceAttribute",
	"ec2:StartInstances",
	"ec2:StopInstances",
}

// PolicyStatement is one statement of an IAM policy document.
type PolicyStatement struct {
	Sid      string   `json:"Sid"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource string   `json:"Resource"`
}

// PolicyDocument is an IAM policy.
type PolicyDocument struct {
	Version   string            `json:"Version"`
	Statement []PolicyStatement `json:"Statement"`
}

// Route 53: GetHostedZone checks a --hosted-zone (and a zone the cluster's
// DNS config names); ListHostedZones and ListTagsForResources find a private
// zone by its tags; ListHostedZonesByVPC the zones of the VPC (it needs
// ec2:DescribeVpcs too, which discover has); GetChange waits for a change
// batch to be in sync.

// Policy is the least-privilege policy for the given use: "plan" (read
// only: discover, plan, status) or "apply" (everything, rollback included).
// The describe/list actions of EC2 and ELB do not support resource-level
// permissions, so Resource is "*".
func Policy(forWhat string, instanceTypeChange bool) PolicyDocument {
	doc := PolicyDocument{Version: "2012-10-17", Statement: []PolicyStatement{
		{Sid: "DualstackDiscover", Effect: "Allow", Action: slices.Clone(ReadActions), Resource: "*"},
	}}
	if forWhat == "plan" {
		return doc
	}
	doc.Statement = append(doc.Statement, PolicyStatement{Sid: "DualstackApplyRollback", Effect: "Allow", Action: slices.Clone(WriteActions), Resource: "*"})
	if instanceTypeChange {
		doc.Statement = append(doc.Statement, PolicyStatement{Sid: "DualstackInstanceTypeChange", Effect: "Allow", Action: slices.Clone(InstanceTypeActions), Resource: "*"})
	}
	return doc
}

// Actions lists every action of a policy.
func (d PolicyDocument) Actions() []string {
	var out []string
	for _, s := range d.Statement {
		out = append(out, s.Action...)
	}
	sort := slices.Clone(out)
	slices.Sort(sort)
	return sort
}

// IAMAction is the IAM action behind an operation as this package names it
// in messages ("DescribeVpcs subnet-1", "elasticloadbalancing:DescribeTags").
func IAMAction(op string) string {
	op, _, _ = strings.Cut(op, " ")
	if strings.Contains(op, ":") {
		return op
	}
	if op == "SetIpAddressType" {
		return "elasticloadbalancing:" + op
	}
	return "ec2:" + op
}
