package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// hardenedWorld is an OpenShift cluster whose account looks like real
// ones: custom IPv4-only ACLs, a modified default ACL, a second cluster in
// the same VPC, and the installer's Route 53 zones.
func hardenedWorld(t *testing.T) (*harness.APIServer, *harness.OpenShiftOnAWS, []string) {
	return openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{IPI: moto.IPIOptions{
		NetworkACLs: true, OtherCluster: "other-q9z8w", HostedZones: &moto.HostedZoneOptions{}}})
}

// recordLines are every record of the world's zones, one line each.
func recordLines(t *testing.T, w *moto.World) []string {
	t.Helper()
	cfg, _ := awsTLS.AWSConfig(context.Background(), "")
	r := route53.NewFromConfig(cfg)
	var out []string
	for _, z := range []moto.HostedZone{w.PublicZone, w.PrivateZone} {
		p := route53.NewListResourceRecordSetsPaginator(r, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(z.ID)})
		for p.HasMorePages() {
			page, err := p.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, rs := range page.ResourceRecordSets {
				if rs.Type == r53types.RRTypeNs || rs.Type == r53types.RRTypeSoa {
					continue
				}
				target := ""
				if rs.AliasTarget != nil {
					target = "alias " + aws.ToString(rs.AliasTarget.DNSName)
				}
				for _, v := range rs.ResourceRecords {
					target += " " + aws.ToString(v.Value)
				}
				out = append(out, fmt.Sprintf("%s %s %s %s", z.Name, strings.ReplaceAll(aws.ToString(rs.Name), `\052`, "*"), rs.Type, target))
			}
		}
	}
	sort.Strings(out)
	return out
}

// aclLines are every entry of the VPC's network ACLs, one line each.
func aclLines(t *testing.T, w *moto.World) []string {
	t.Helper()
	cfg, _ := awsTLS.AWSConfig(context.Background(), "")
	out, err := ec2.NewFromConfig(cfg).DescribeNetworkAcls(context.Background(), &ec2.DescribeNetworkAclsInput{
		Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{w.VPC.ID}}}})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, a := range out.NetworkAcls {
		for _, e := range a.Entries {
			b, _ := json.Marshal(e)
			lines = append(lines, aws.ToString(a.NetworkAclId)+" "+string(b))
		}
	}
	sort.Strings(lines)
	return lines
}

// otherClusterLines are the second cluster's resources as AWS describes them.
func otherClusterLines(t *testing.T, w *moto.World) []string {
	t.Helper()
	ctx := context.Background()
	cfg, _ := awsTLS.AWSConfig(ctx, "")
	e := ec2.NewFromConfig(cfg)
	o := w.Other
	var lines []string
	add := func(v any, err error) {
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		lines = append(lines, string(b))
	}
	sub, err := e.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{o.SubnetID}})
	add(sub.Subnets, err)
	// AWS adds a local route for the VPC's IPv6 block to every route table
	// (the one shared change): the other routes are compared.
	rt, err := e.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{RouteTableIds: []string{o.RouteTableID}})
	for _, t := range rt.RouteTables {
		add(slices.DeleteFunc(t.Routes, func(r ec2types.Route) bool {
			return aws.ToString(r.DestinationIpv6CidrBlock) != "" && aws.ToString(r.GatewayId) == "local"
		}), err)
	}
	sg, err := e.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{o.SecurityGroupID}})
	add(sg.SecurityGroups, err)
	in, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{o.InstanceID}})
	for _, r := range in.Reservations {
		for _, i := range r.Instances {
			add([]any{i.InstanceType, i.State, i.NetworkInterfaces}, err)
		}
	}
	acl, err := e.DescribeNetworkAcls(ctx, &ec2.DescribeNetworkAclsInput{NetworkAclIds: []string{o.NetworkACLID}})
	add(acl.NetworkAcls, err)
	return lines
}

func lineChanges(before, after []string) (added, removed []string) {
	for _, l := range after {
		if !slices.Contains(before, l) {
			added = append(added, l)
		}
	}
	for _, l := range before {
		if !slices.Contains(after, l) {
			removed = append(removed, l)
		}
	}
	return added, removed
}

// TestUpgradeDNSAndACLs: on an account with custom ACLs, a second cluster
// in the VPC and the installer's zones, status names the ACL and DNS
// findings; upgrade's aws and dns phases give every cluster ACL entry its
// IPv6 twin and every alias A record to a now dual-stack NLB its AAAA
// twin, in both zones, touching nothing of the other cluster and no plain
// record; status passes; rollback restores Route 53 and the ACLs exactly.
func TestUpgradeDNSAndACLs(t *testing.T) {
	api, world, env := hardenedWorld(t)
	w := world.AWS
	records, acls, other := recordLines(t, w), aclLines(t, w), otherClusterLines(t, w)

	s := parseStatus(t, plugin(t, api.Kubeconfig, env, "status", "-o", "json"))
	expectVerdicts(t, s, map[string]string{"network-acl-ipv6": "FAIL", "dns-aaaa": "FAIL"})
	for _, c := range s.Checks {
		if c.Name == "dns-aaaa" && (!strings.Contains(c.Message, "api-int."+w.ClusterDomain) || !strings.Contains(c.Remediation, "dns apply")) {
			t.Errorf("dns-aaaa does not name api-int or the fix: %+v", c)
		}
	}

	r := plugin(t, api.Kubeconfig, env, "aws", "plan")
	if !strings.Contains(r.Stdout, "the VPC is shared: 1 subnets are not this cluster's: "+w.Other.SubnetID+" (cluster other-q9z8w's); nothing of theirs is changed") ||
		!strings.Contains(r.Stdout, "the one change shared with the VPC's other subnets") {
		t.Errorf("aws plan does not say what it leaves alone of the shared VPC:\n%s", r)
	}
	r = plugin(t, api.Kubeconfig, env, "upgrade", "--phases", "aws,dns", "--dry-run=client", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("plan:\n%s", r)
	}
	var plan struct {
		Plan struct {
			Phases []struct {
				Name, Action, After string
				DNS                 struct {
					Changes []struct{ Name, ZoneName, LoadBalancer string }
					Notes   []struct{ Message string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &plan); err != nil {
		t.Fatal(err)
	}
	var planned []string
	var notes string
	for _, p := range plan.Plan.Phases {
		if p.Name != "dns" {
			continue
		}
		if p.Action != "after-underlay" || p.After != "aws" {
			t.Errorf("dns phase %s after %q, want after the aws phase", p.Action, p.After)
		}
		for _, c := range p.DNS.Changes {
			planned = append(planned, c.ZoneName+" "+c.Name)
		}
		for _, n := range p.DNS.Notes {
			notes += n.Message + "\n"
		}
	}
	d := w.ClusterDomain
	want := []string{w.BaseDomain + ". api." + d + ".", d + ". api-int." + d + ".", d + ". api." + d + "."}
	sort.Strings(planned)
	sort.Strings(want)
	if !slices.Equal(planned, want) {
		t.Errorf("planned AAAA %q, want %q", planned, want)
	}
	for _, n := range []string{"point at a Classic ELB", "*.apps." + d, "bastion." + d + ".", "none is invented"} {
		if !strings.Contains(notes, n) {
			t.Errorf("the dns notes do not say %q:\n%s", n, notes)
		}
	}

	if r := plugin(t, api.Kubeconfig, env, "upgrade", "--phases", "aws,dns", "--yes"); r.Code != 0 {
		t.Fatalf("upgrade:\n%s", r)
	}
	added, removed := lineChanges(records, recordLines(t, w))
	sort.Strings(added)
	var addedNames []string
	for _, l := range added {
		f := strings.Fields(l)
		addedNames = append(addedNames, f[0]+" "+f[1]+" "+f[2])
		ext, _ := w.LoadBalancerFor(moto.LBPurposeAPIExternal)
		internal, _ := w.LoadBalancerFor(moto.LBPurposeAPIInternal)
		if f[2] != "AAAA" || len(f) < 5 || (f[4] != ext.DNSName+"." && f[4] != internal.DNSName+".") {
			t.Errorf("added record %q is not an AAAA alias to an API NLB", l)
		}
	}
	wantAdded := []string{w.BaseDomain + ". api." + d + ". AAAA", d + ". api-int." + d + ". AAAA", d + ". api." + d + ". AAAA"}
	sort.Strings(addedNames)
	sort.Strings(wantAdded)
	if !slices.Equal(addedNames, wantAdded) || len(removed) > 0 {
		t.Errorf("records added %q (want %q), removed %q", addedNames, wantAdded, removed)
	}

	// ACLs: a twin for each IPv4 entry of the cluster's ACLs (the
	// 192.168.0.0/16 one has no counterpart), nothing wider; the other
	// cluster's untouched.
	added, removed = lineChanges(acls, aclLines(t, w))
	if len(removed) > 0 {
		t.Errorf("ACL entries removed: %q", removed)
	}
	var private, def int
	for _, l := range added {
		switch {
		case strings.Contains(l, "192.168") || strings.Contains(l, `"CidrBlock":"`) || strings.HasPrefix(l, w.Other.NetworkACLID):
			t.Errorf("unexpected ACL entry %s", l)
		case strings.HasPrefix(l, w.NetworkACLs[1].ID):
			private++
		case strings.HasPrefix(l, w.NetworkACLs[0].ID):
			def++
		}
	}
	// private: 443, the VPC range, 1024-65535, ICMP 3/4, egress all; the
	// modified default ACL: the deny on 23 and allow-all, both directions.
	if private != 5 || def != 3 {
		t.Errorf("ACL twins: %d in the private ACL (want 5), %d in the default one (want 3):\n%s", private, def, strings.Join(added, "\n"))
	}
	if a, rm := lineChanges(other, otherClusterLines(t, w)); len(a)+len(rm) > 0 {
		t.Errorf("the other cluster's resources changed:\n+ %s\n- %s", strings.Join(a, "\n+ "), strings.Join(rm, "\n- "))
	}

	s = parseStatus(t, plugin(t, api.Kubeconfig, env, "status", "-o", "json"))
	expectVerdicts(t, s, map[string]string{"network-acl-ipv6": "PASS", "dns-aaaa": "PASS"})
	// A second dns apply has nothing to do.
	if r := plugin(t, api.Kubeconfig, env, "dns", "apply", "--yes", "-o", "json"); r.Code != 0 || !strings.Contains(r.Stdout, `"outcome": "nothing-to-do"`) {
		t.Errorf("second dns apply:\n%s", r)
	}

	r = plugin(t, api.Kubeconfig, env, "rollback", "--yes")
	if r.Code != 0 {
		t.Fatalf("rollback:\n%s", r)
	}
	if a, rm := lineChanges(records, recordLines(t, w)); len(a)+len(rm) > 0 {
		t.Errorf("Route 53 after rollback:\n+ %s\n- %s\n%s", strings.Join(a, "\n+ "), strings.Join(rm, "\n- "), r)
	}
	if a, rm := lineChanges(acls, aclLines(t, w)); len(a)+len(rm) > 0 {
		t.Errorf("ACLs after rollback:\n+ %s\n- %s", strings.Join(a, "\n+ "), strings.Join(rm, "\n- "))
	}
}

// TestDNSBadInputAndAccessDenied: a --hosted-zone that does not exist, a
// private zone of another VPC or a zone of another domain is refused with
// one line and exit 2; AccessDenied on Route 53 names the action and
// changes nothing, not even the AWS network.
func TestDNSBadInputAndAccessDenied(t *testing.T) {
	api, world, env := hardenedWorld(t)
	w := world.AWS
	ctx := context.Background()
	cfg, _ := awsTLS.AWSConfig(ctx, "")
	r53 := route53.NewFromConfig(cfg)
	foreign, err := r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("example.org"), CallerReference: aws.String("foreign")})
	if err != nil {
		t.Fatal(err)
	}
	e := ec2.NewFromConfig(cfg)
	vpc, err := e.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.9.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String(w.ClusterDomain), CallerReference: aws.String("elsewhere"),
		VPC: &r53types.VPC{VPCId: vpc.Vpc.VpcId, VPCRegion: r53types.VPCRegion(w.Region)}, HostedZoneConfig: &r53types.HostedZoneConfig{PrivateZone: true}})
	if err != nil {
		t.Fatal(err)
	}
	id := func(z *r53types.HostedZone) string { return strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/") }
	for _, tc := range []struct{ zone, want string }{
		{"Z0NOSUCHZONE00000", "no such hosted zone"},
		{id(foreign.HostedZone), "is for another domain"},
		{id(elsewhere.HostedZone), "is not associated with the cluster's VPC " + w.VPC.ID},
	} {
		for _, args := range [][]string{{"dns", "plan"}, {"upgrade", "--phases", "aws,dns", "--yes"}} {
			r := plugin(t, api.Kubeconfig, env, append(args, "--hosted-zone", tc.zone)...)
			// One error line (upgrade says what it is doing on a line before).
			if r.Code != 2 || !strings.Contains(r.Stderr, tc.want) || strings.Count(r.Stderr, "error:") != 1 || r.Stdout != "" {
				t.Errorf("%v --hosted-zone %s: exit %d, want 2 and one line with %q:\n%s", args, tc.zone, r.Code, tc.want, r)
			}
		}
	}

	acls, records := aclLines(t, w), recordLines(t, w)
	proxy := awsProxy(t)
	proxy.Fail("ListResourceRecordSets", -1, harness.AWSFault{Status: 403, Code: "AccessDenied", Message: "not authorized to perform route53:ListResourceRecordSets"})
	r := plugin(t, api.Kubeconfig, proxy.Env(env), "upgrade", "--phases", "aws,dns", "--yes")
	if r.Code != 1 || !strings.Contains(r.Stdout+r.Stderr, "route53:ListResourceRecordSets") {
		t.Errorf("AccessDenied on Route 53: exit %d, want 1 naming route53:ListResourceRecordSets:\n%s", r.Code, r)
	}
	if a, rm := lineChanges(acls, aclLines(t, w)); len(a)+len(rm) > 0 {
		t.Errorf("the AWS network changed though the run was refused:\n+ %s", strings.Join(a, "\n+ "))
	}
	if a, rm := lineChanges(records, recordLines(t, w)); len(a)+len(rm) > 0 {
		t.Errorf("Route 53 changed though the run was refused: %q %q", a, rm)
	}
}
