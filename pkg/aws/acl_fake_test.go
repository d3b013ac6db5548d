package aws

import (
	"context"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The fake's network ACLs: as EC2 keeps them, each entry unique by
// direction and rule number.

func aclRule(n int32, egress bool, proto, action, cidr string, from, to int32) ec2types.NetworkAclEntry {
	e := ec2types.NetworkAclEntry{RuleNumber: aws.Int32(n), Egress: aws.Bool(egress), Protocol: aws.String(proto), RuleAction: ec2types.RuleAction(action)}
	if cidr != "" && !strings.Contains(cidr, ":") {
		e.CidrBlock = aws.String(cidr)
	} else {
		e.Ipv6CidrBlock = aws.String(cidr)
	}
	switch proto {
	case "6", "17":
		e.PortRange = &ec2types.PortRange{From: aws.Int32(from), To: aws.Int32(to)}
	case "1", "58":
		e.IcmpTypeCode = &ec2types.IcmpTypeCode{Type: aws.Int32(from), Code: aws.Int32(to)}
	}
	return e
}

func aclAssoc(acl string, subnets ...string) []ec2types.NetworkAclAssociation {
	var out []ec2types.NetworkAclAssociation
	for _, s := range subnets {
		out = append(out, ec2types.NetworkAclAssociation{NetworkAclId: aws.String(acl), SubnetId: aws.String(s), NetworkAclAssociationId: aws.String("aclassoc-" + s)})
	}
	return out
}

// withACLs gives the fake VPC a modified default ACL on the public subnets,
// a custom one on the private subnets and the other cluster's own.
func (f *fakeCloud) withACLs() *fakeCloud {
	c1, c2 := ClusterTagPrefix+"c1", ClusterTagPrefix+"c2"
	deny := func(egress bool) ec2types.NetworkAclEntry {
		return aclRule(32767, egress, "-1", "deny", "0.0.0.0/0", 0, 0)
	}
	f.acls = []*ec2types.NetworkAcl{
		{NetworkAclId: aws.String("acl-default"), VpcId: aws.String("vpc-1"), IsDefault: aws.Bool(true),
			Associations: aclAssoc("acl-default", "subnet-pub-a", "subnet-pub-b"),
			Entries: []ec2types.NetworkAclEntry{aclRule(90, false, "6", "deny", "0.0.0.0/0", 23, 23), aclRule(100, false, "-1", "allow", "0.0.0.0/0", 0, 0), deny(false),
				aclRule(100, true, "-1", "allow", "0.0.0.0/0", 0, 0), deny(true)}},
		{NetworkAclId: aws.String("acl-priv"), VpcId: aws.String("vpc-1"), Tags: tags("Name", "c1-private", c1, "owned"),
			Associations: aclAssoc("acl-priv", "subnet-priv-a", "subnet-priv-b"),
			Entries: []ec2types.NetworkAclEntry{
				aclRule(100, false, "6", "allow", "0.0.0.0/0", 443, 443), aclRule(101, false, "-1", "allow", "10.0.0.0/16", 0, 0),
				aclRule(102, false, "6", "allow", "0.0.0.0/0", 1024, 65535), aclRule(110, false, "1", "allow", "0.0.0.0/0", 3, 4),
				aclRule(120, false, "6", "allow", "192.168.0.0/16", 22, 22), deny(false),
				aclRule(100, true, "-1", "allow", "0.0.0.0/0", 0, 0), deny(true)}},
		{NetworkAclId: aws.String("acl-other"), VpcId: aws.String("vpc-1"), Tags: tags(c2, "owned"),
			Associations: aclAssoc("acl-other", "subnet-other"),
			Entries:      []ec2types.NetworkAclEntry{aclRule(100, false, "-1", "allow", "0.0.0.0/0", 0, 0), deny(false)}},
	}
	return f
}

func (f *fakeCloud) acl(id string) *ec2types.NetworkAcl {
	for _, a := range f.acls {
		if aws.ToString(a.NetworkAclId) == id {
			return a
		}
	}
	return nil
}

func (f *fakeCloud) DescribeNetworkAcls(_ context.Context, in *ec2.DescribeNetworkAclsInput, _ ...func(*ec2.Options)) (*ec2.DescribeNetworkAclsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeNetworkAclsOutput{}
	for _, a := range f.acls {
		if len(in.NetworkAclIds) > 0 && !slices.Contains(in.NetworkAclIds, aws.ToString(a.NetworkAclId)) {
			continue
		}
		if matches(in.Filters, func(n string) ([]string, bool) {
			if n == "vpc-id" {
				return []string{aws.ToString(a.VpcId)}, true
			}
			return nil, false
		}) {
			out.NetworkAcls = append(out.NetworkAcls, clone(*a))
		}
	}
	if len(in.NetworkAclIds) > 0 && len(out.NetworkAcls) == 0 {
		return nil, apiError("InvalidNetworkAclID.NotFound", "%v", in.NetworkAclIds)
	}
	return out, nil
}

func (f *fakeCloud) CreateNetworkAclEntry(_ context.Context, in *ec2.CreateNetworkAclEntryInput, _ ...func(*ec2.Options)) (*ec2.CreateNetworkAclEntryOutput, error) {
	id := aws.ToString(in.NetworkAclId)
	if aws.ToBool(in.DryRun) {
		return nil, apiError("DryRunOperation", "would have succeeded")
	}
	return &ec2.CreateNetworkAclEntryOutput{}, f.change("CreateNetworkAclEntry", id, func() error {
		a := f.acl(id)
		if a == nil {
			return apiError("InvalidNetworkAclID.NotFound", "%s", id)
		}
		if slices.ContainsFunc(a.Entries, func(e ec2types.NetworkAclEntry) bool {
			return aws.ToInt32(e.RuleNumber) == aws.ToInt32(in.RuleNumber) && aws.ToBool(e.Egress) == aws.ToBool(in.Egress)
		}) {
			return apiError("NetworkAclEntryAlreadyExists", "rule %d", aws.ToInt32(in.RuleNumber))
		}
		a.Entries = append(a.Entries, ec2types.NetworkAclEntry{RuleNumber: in.RuleNumber, Egress: in.Egress, Protocol: in.Protocol, RuleAction: in.RuleAction,
			CidrBlock: in.CidrBlock, Ipv6CidrBlock: in.Ipv6CidrBlock, PortRange: in.PortRange, IcmpTypeCode: in.IcmpTypeCode})
		return nil
	})
}

func (f *fakeCloud) DeleteNetworkAclEntry(_ context.Context, in *ec2.DeleteNetworkAclEntryInput, _ ...func(*ec2.Options)) (*ec2.DeleteNetworkAclEntryOutput, error) {
	id := aws.ToString(in.NetworkAclId)
	return &ec2.DeleteNetworkAclEntryOutput{}, f.change("DeleteNetworkAclEntry", id, func() error {
		a := f.acl(id)
		if a == nil {
			return apiError("InvalidNetworkAclID.NotFound", "%s", id)
		}
		n := len(a.Entries)
		a.Entries = slices.DeleteFunc(a.Entries, func(e ec2types.NetworkAclEntry) bool {
			return aws.ToInt32(e.RuleNumber) == aws.ToInt32(in.RuleNumber) && aws.ToBool(e.Egress) == aws.ToBool(in.Egress)
		})
		if len(a.Entries) == n {
			return apiError("InvalidNetworkAclEntry.NotFound", "rule %d", aws.ToInt32(in.RuleNumber))
		}
		return nil
	})
}
