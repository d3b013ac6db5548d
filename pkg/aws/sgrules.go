package aws

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// The rules of one security group and direction are one call each way:
// AuthorizeSecurityGroupIngress/Egress and their Revoke take a list of
// permissions. The plan keeps one change per rule (and the journal one
// entry per rule), so a rollback after a partial apply still undoes exactly
// what was made.

// ExistedBeforeKey marks a rule's journal entry when the rule was already
// there, not made by apply (someone added it between the plan and the
// apply): rollback leaves it.
const ExistedBeforeKey = "existedBefore"

// make makes one unit of changes: one change, or the rules of one group
// and direction in one call.
func (a *applier) make(ctx context.Context, changes []Change, unit []int) ([]Result, []map[string]string) {
	cs := make([]Change, len(unit))
	for k, i := range unit {
		cs[k] = changes[i]
	}
	if len(cs) == 1 && !isRuleChange(cs[0].Operation) {
		r, undo := a.one(ctx, cs[0])
		return []Result{r}, []map[string]string{undo}
	}
	return a.authorizeGroup(ctx, cs)
}

// ruleDescription is the description apply gives the IPv6 range of a rule
// it makes: how a rule made by an earlier attempt is told from one that
// was there before.
func ruleDescription(p map[string]string) string {
	return "kubectl-dualstack: IPv6 mirror of " + p["mirrorOf"]
}

// authorize asks EC2 for the rules in one call.
func (a *applier) authorize(ctx context.Context, op, group string, perms []ec2types.IpPermission, dry bool) error {
	var err error
	if op == "AuthorizeSecurityGroupIngress" {
		_, err = a.c.EC2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(group), IpPermissions: perms, DryRun: aws.Bool(dry)})
	} else {
		_, err = a.c.EC2.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: aws.String(group), IpPermissions: perms, DryRun: aws.Bool(dry)})
	}
	return err
}

// authorizeGroup makes cs, rules of one group and direction, in one call.
// EC2 refuses the whole call (InvalidPermission.Duplicate) when one of them
// exists: then the group as it is now says which (authorizeMissing).
func (a *applier) authorizeGroup(ctx context.Context, cs []Change) ([]Result, []map[string]string) {
	op, group := cs[0].Operation, cs[0].Parameters["groupId"]
	perms := make([]ec2types.IpPermission, len(cs))
	for k, c := range cs {
		perms[k] = permission(c.Parameters)
	}
	results := make([]Result, len(cs))
	undos := make([]map[string]string, len(cs))
	if a.o.DryRunServer {
		err := a.authorize(ctx, op, group, perms, true)
		for k, c := range cs {
			switch {
			case err == nil:
				results[k] = resultOf(c, StatusNotChecked, "")
			case errorCode(err) == "DryRunOperation":
				results[k] = resultOf(c, StatusDryRun, "")
			default:
				results[k] = resultOf(c, StatusFailed, explainChange(c, err))
			}
		}
		return results, undos
	}
	for k := range cs {
		undos[k] = map[string]string{}
	}
	err := a.authorize(ctx, op, group, perms, false)
	if errorCode(err) == "InvalidPermission.Duplicate" {
		err = a.authorizeMissing(ctx, op, group, cs, undos)
	}
	for k, c := range cs {
		if err != nil {
			results[k] = resultOf(c, StatusFailed, explainChange(c, err))
			undos[k] = nil
			continue
		}
		results[k] = resultOf(c, StatusApplied, "")
	}
	return results, undos
}

// authorizeMissing makes, in one call, those of cs the group does not have
// now. A rule it has with apply's description is ours (an earlier attempt
// made it and its answer was lost): rollback revokes it. A rule it has with
// another description was there before: recorded as such, rollback leaves
// it.
func (a *applier) authorizeMissing(ctx context.Context, op, group string, cs []Change, undos []map[string]string) error {
	out, err := a.c.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{group}})
	if err != nil {
		return fmt.Errorf("some of the rules exist already, and reading the group to find which failed: %w", err)
	}
	var have []ec2types.IpPermission
	for _, g := range out.SecurityGroups {
		if op == "AuthorizeSecurityGroupIngress" {
			have = append(have, g.IpPermissions...)
		} else {
			have = append(have, g.IpPermissionsEgress...)
		}
	}
	var rest []ec2types.IpPermission
	for k, c := range cs {
		p := permission(c.Parameters)
		desc, found := ipv6RangeDescription(have, p)
		switch {
		case !found:
			rest = append(rest, p)
		case desc != ruleDescription(c.Parameters):
			undos[k][ExistedBeforeKey] = "true"
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return a.authorize(ctx, op, group, rest, false)
}

// ipv6RangeDescription finds p's (one) IPv6 range among the group's
// permissions with p's protocol and ports, and returns its description.
func ipv6RangeDescription(have []ec2types.IpPermission, p ec2types.IpPermission) (string, bool) {
	want := aws.ToString(p.Ipv6Ranges[0].CidrIpv6)
	for _, h := range have {
		if !samePorts(h, p) {
			continue
		}
		for _, r := range h.Ipv6Ranges {
			if aws.ToString(r.CidrIpv6) == want {
				return aws.ToString(r.Description), true
			}
		}
	}
	return "", false
}

// samePorts: the same protocol and port range (any ports for "all").
func samePorts(a, b ec2types.IpPermission) bool {
	pa, pb := normProtocol(aws.ToString(a.IpProtocol)), normProtocol(aws.ToString(b.IpProtocol))
	if pa != pb {
		return false
	}
	return pa == "-1" || (portOr(a.FromPort) == portOr(b.FromPort) && portOr(a.ToPort) == portOr(b.ToPort))
}

// revokeRules undoes the journal's rules of one group and direction in one
// call; those that existed before apply are left. If EC2 refuses the call
// because some are gone already, each is revoked on its own (gone is
// undone).
func revokeRules(ctx context.Context, c *Clients, es []journal.Entry) error {
	var perms []ec2types.IpPermission
	for _, e := range es {
		if e.Undo[ExistedBeforeKey] != "true" {
			perms = append(perms, revokePermission(e.Undo))
		}
	}
	if len(perms) == 0 {
		return nil
	}
	op, group := es[0].Operation, es[0].Undo["groupId"]
	revoke := func(perms []ec2types.IpPermission) error {
		var err error
		if op == "AuthorizeSecurityGroupIngress" {
			_, err = c.EC2.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(group), IpPermissions: perms})
		} else {
			_, err = c.EC2.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: aws.String(group), IpPermissions: perms})
		}
		return err
	}
	err := revoke(perms)
	if len(perms) == 1 || errorCode(err) != "InvalidPermission.NotFound" {
		return err
	}
	for _, p := range perms {
		if err := ignoreCode(revoke([]ec2types.IpPermission{p}), notFound...); err != nil {
			return err
		}
	}
	return nil
}
