package aws

import (
	"context"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// RevokeDefaultIPv6Egress takes the allow-all egress rule to ::/0 out of
// the groups ids. AWS gives that rule to a group created while its VPC has
// an IPv6 block; rollback calls this for the groups of a load balancer it
// re-created before it removed the block, so the group ends as the one it
// replaces began: egress to 0.0.0.0/0 only. It returns the groups changed.
func RevokeDefaultIPv6Egress(ctx context.Context, c *Clients, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out, err := c.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: ids})
	if err != nil {
		return nil, Explain("ec2:DescribeSecurityGroups", err)
	}
	var changed []string
	for _, g := range out.SecurityGroups {
		for _, p := range g.IpPermissionsEgress {
			if aws.ToString(p.IpProtocol) != "-1" || !slices.ContainsFunc(p.Ipv6Ranges, func(r ec2types.Ipv6Range) bool { return aws.ToString(r.CidrIpv6) == "::/0" }) {
				continue
			}
			_, err := c.EC2.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: g.GroupId, IpPermissions: []ec2types.IpPermission{
				{IpProtocol: aws.String("-1"), Ipv6Ranges: []ec2types.Ipv6Range{{CidrIpv6: aws.String("::/0")}}},
			}})
			if err != nil {
				return changed, Explain("ec2:RevokeSecurityGroupEgress", err)
			}
			changed = append(changed, aws.ToString(g.GroupId))
		}
	}
	return changed, nil
}
