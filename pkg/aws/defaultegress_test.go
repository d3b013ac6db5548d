package aws

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// egressFake holds security groups and records the egress revocations.
type egressFake struct {
	EC2API
	groups  []ec2types.SecurityGroup
	revoked []string
}

func (f *egressFake) DescribeSecurityGroups(_ context.Context, in *ec2.DescribeSecurityGroupsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	var out []ec2types.SecurityGroup
	for _, g := range f.groups {
		if slices.Contains(in.GroupIds, aws.ToString(g.GroupId)) {
			out = append(out, g)
		}
	}
	return &ec2.DescribeSecurityGroupsOutput{SecurityGroups: out}, nil
}

func (f *egressFake) RevokeSecurityGroupEgress(_ context.Context, in *ec2.RevokeSecurityGroupEgressInput, _ ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupEgressOutput, error) {
	for _, p := range in.IpPermissions {
		if aws.ToString(p.IpProtocol) != "-1" || len(p.Ipv6Ranges) != 1 || aws.ToString(p.Ipv6Ranges[0].CidrIpv6) != "::/0" || len(p.IpRanges) > 0 {
			panic("revoked more than the default ::/0 egress")
		}
	}
	f.revoked = append(f.revoked, aws.ToString(in.GroupId))
	return &ec2.RevokeSecurityGroupEgressOutput{}, nil
}

func TestRevokeDefaultIPv6EgressTakesOnlyThatRule(t *testing.T) {
	all := func(v4, v6 bool) []ec2types.IpPermission {
		p := ec2types.IpPermission{IpProtocol: aws.String("-1")}
		if v4 {
			p.IpRanges = []ec2types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}
		}
		if v6 {
			p.Ipv6Ranges = []ec2types.Ipv6Range{{CidrIpv6: aws.String("::/0")}}
		}
		return []ec2types.IpPermission{p}
	}
	f := &egressFake{groups: []ec2types.SecurityGroup{
		{GroupId: aws.String("sg-elb"), IpPermissionsEgress: all(true, true)},
		{GroupId: aws.String("sg-v4only"), IpPermissionsEgress: all(true, false)},
		{GroupId: aws.String("sg-other"), IpPermissionsEgress: all(true, true)}, // not asked for
		{GroupId: aws.String("sg-tcp"), IpPermissionsEgress: []ec2types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443),
			Ipv6Ranges: []ec2types.Ipv6Range{{CidrIpv6: aws.String("::/0")}}}}},
	}}
	got, err := RevokeDefaultIPv6Egress(context.Background(), &Clients{EC2: f}, []string{"sg-elb", "sg-v4only", "sg-tcp"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"sg-elb"}) || !slices.Equal(f.revoked, []string{"sg-elb"}) {
		t.Fatalf("changed %q, revoked %q; want only sg-elb", got, f.revoked)
	}
	if got, err := RevokeDefaultIPv6Egress(context.Background(), &Clients{EC2: f}, nil); err != nil || got != nil {
		t.Fatalf("no groups: %q %v", got, err)
	}
}
