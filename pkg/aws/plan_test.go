package aws

import (
	"strings"
	"testing"
)

func TestSubnetBlockAndAllocation(t *testing.T) {
	b, err := SubnetBlock("2600:1f18:abcd:ef00::/56", 3)
	if err != nil || b != "2600:1f18:abcd:ef03::/64" {
		t.Fatalf("SubnetBlock: %q %v", b, err)
	}
	if n := blockIndex("2600:1f18:abcd:ef00::/56", "2600:1f18:abcd:efff::/64"); n != 255 {
		t.Errorf("blockIndex: %d", n)
	}
	got, err := AllocateBlocks(3, map[int]bool{0: true, 2: true}, 256)
	if err != nil || len(got) != 3 || got[0] != 1 || got[1] != 3 || got[2] != 4 {
		t.Errorf("AllocateBlocks: %v %v", got, err)
	}
	if _, err := AllocateBlocks(255, map[int]bool{0: true, 1: true}, 256); err == nil {
		t.Error("more than the free /64s must fail")
	}
}

func TestICMPMapping(t *testing.T) {
	for _, tc := range []struct {
		typ, code, wt, wc int32
		ok                bool
	}{
		{-1, -1, -1, -1, true}, {3, 4, 2, 0, true}, {8, -1, 128, -1, true}, {5, 0, 0, 0, false},
	} {
		gt, gc, ok := icmpv6For(tc.typ, tc.code)
		if ok != tc.ok || (ok && (gt != tc.wt || gc != tc.wc)) {
			t.Errorf("icmp %d/%d -> %d/%d %t", tc.typ, tc.code, gt, gc, ok)
		}
	}
}

func inventory() *Inventory {
	return &Inventory{Region: "us-east-1", InfraID: "c1",
		VPC: VPC{ID: "vpc-1", IPv4CIDRs: []string{"10.0.0.0/16"}, IPv6CIDR: "2600::/56", UsedIPv6Blocks: []string{"2600:0:0:0::/64"}},
		Subnets: []Subnet{
			{ID: "subnet-a", IPv4CIDR: "10.0.0.0/20", Public: true, RouteTableID: "rtb-pub", IPv6CIDR: "2600::/64", AssignIPv6OnCreation: true},
			{ID: "subnet-b", IPv4CIDR: "10.0.128.0/20", RouteTableID: "rtb-priv"},
		},
		RouteTables: []RouteTable{
			{ID: "rtb-pub", InternetGateway: "igw-1", IPv4Default: "igw-1", IPv6Default: "igw-1"},
			{ID: "rtb-priv", IPv4Default: "nat-1"},
		},
		SecurityGroups: []SecurityGroup{{ID: "sg-1", Name: "node",
			Ingress: []Rule{
				{Protocol: "tcp", FromPort: 22, ToPort: 22, IPv4: []string{"10.0.0.0/16", "192.168.0.0/16"}},
				{Protocol: "tcp", FromPort: 443, ToPort: 443, IPv4: []string{"0.0.0.0/0"}, IPv6: []string{"::/0"}},
				{Protocol: "icmp", FromPort: 3, ToPort: 4, IPv4: []string{"0.0.0.0/0"}},
				{Protocol: "-1", FromPort: -1, ToPort: -1, Groups: []string{"sg-1"}},
			},
			Egress: []Rule{{Protocol: "-1", FromPort: -1, ToPort: -1, IPv4: []string{"0.0.0.0/0"}}},
		}},
		Instances:         []Instance{{ID: "i-1", Type: "m1.large", PrimaryENI: "eni-1"}, {ID: "i-2", Type: "m6i.large", IPv6Supported: true, PrimaryENI: "eni-2"}},
		NetworkInterfaces: []ENI{{ID: "eni-1", Primary: true}, {ID: "eni-2", Primary: true}},
		LoadBalancers: []LoadBalancer{
			{Name: "nlb", ARN: "arn:nlb", Type: "network", Scheme: "internal", IPAddressType: "ipv4", SubnetIDs: []string{"subnet-b"}},
			{Name: "elb", Type: "classic", IPAddressType: "ipv4", Service: "ns/svc"},
		},
	}
}

func TestPlanFromPartlyDualStackVPC(t *testing.T) {
	p := MakePlan(inventory(), PlanOptions{})
	byOp := map[string][]Change{}
	for _, c := range p.Changes {
		byOp[c.Operation] = append(byOp[c.Operation], c)
	}
	if len(byOp["AssociateVpcCidrBlock"]) != 0 {
		t.Error("VPC already has a /56")
	}
	if s := byOp["AssociateSubnetCidrBlock"]; len(s) != 1 || s[0].Parameters["ipv6CidrBlock"] != "2600:0:0:1::/64" {
		t.Errorf("subnet blocks: %+v", s)
	}
	if r := byOp["CreateRoute"]; len(r) != 1 || r[0].Resource != "rtb-priv" || r[0].Parameters["egressOnlyInternetGatewayId"] != EgressIGWPlaceholder {
		t.Errorf("routes: %+v", r)
	}
	if len(byOp["CreateEgressOnlyInternetGateway"]) != 1 || !strings.Contains(byOp["CreateEgressOnlyInternetGateway"][0].Parameters["tags"], "kubernetes.io/cluster/c1=owned") {
		t.Errorf("egress-only gateway: %+v", byOp["CreateEgressOnlyInternetGateway"])
	}
	ing := byOp["AuthorizeSecurityGroupIngress"]
	if len(ing) != 2 {
		t.Fatalf("ingress mirrors: %+v", ing)
	}
	for _, c := range ing {
		switch c.Parameters["mirrorOf"] {
		case "10.0.0.0/16":
			if c.Parameters["cidrIpv6"] != "2600::/56" {
				t.Errorf("VPC CIDR mirror: %+v", c)
			}
		case "0.0.0.0/0":
			if c.Parameters["ipProtocol"] != "58" || c.Parameters["fromPort"] != "2" || c.Parameters["toPort"] != "0" {
				t.Errorf("ICMP mirror: %+v", c)
			}
		default:
			t.Errorf("unexpected mirror %+v", c)
		}
	}
	if e := byOp["AuthorizeSecurityGroupEgress"]; len(e) != 1 || e[0].Parameters["ipProtocol"] != "-1" || e[0].Parameters["cidrIpv6"] != "::/0" {
		t.Errorf("egress: %+v", e)
	}
	if a := byOp["AssignIpv6Addresses"]; len(a) != 1 || a[0].Resource != "eni-2" {
		t.Errorf("ENI addresses only where the type supports IPv6: %+v", a)
	}
	if l := byOp["SetIpAddressType"]; len(l) != 1 || !strings.Contains(l[0].Reason, "internal") {
		t.Errorf("NLB: %+v", l)
	}
	notes := ""
	for _, n := range p.Notes {
		notes += n.Message + " | " + n.Fix + "\n"
	}
	for _, want := range []string{"192.168.0.0/16", "m1.large", "`kubectl dualstack gateway --recreate`"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}

	p = MakePlan(inventory(), PlanOptions{NewInstanceType: "m6i.large"})
	n := 0
	for _, c := range p.Changes {
		if c.Operation == "ModifyInstanceAttribute" && c.Phase == PhaseInstanceType {
			n++
		}
	}
	if n != 1 {
		t.Errorf("instance type change with the flag: %d", n)
	}
}
