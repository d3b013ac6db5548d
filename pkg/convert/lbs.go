package convert

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/client-go/dynamic"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/dns"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// LoadBalancers finds the gateway's load balancer in the account's
// network and switches an NLB to dualstack with the underlay's own apply,
// so the change is journalled exactly as `aws apply` journals it and
// `aws rollback` undoes it. The first lookup uses the account's last
// discovery (the one the plan was made from); later lookups, which wait for
// a change, discover again.
func (a *Account) LoadBalancers(store *journal.Store) gateway.LoadBalancers {
	return &loadBalancers{account: a, journal: store}
}

type loadBalancers struct {
	account *Account
	journal *journal.Store
	inv     *awsx.Inventory
	looked  bool
}

func (g *loadBalancers) ByHostname(ctx context.Context, host string) (*gateway.LoadBalancer, error) {
	var err error
	if g.looked {
		g.inv, err = g.account.Refresh(ctx)
	} else {
		g.inv, err = g.account.Inventory(ctx)
	}
	if err != nil {
		return nil, err
	}
	g.looked = true
	has6 := map[string]bool{}
	for _, s := range g.inv.Subnets {
		has6[s.ID] = s.IPv6CIDR != ""
	}
	for _, lb := range g.inv.LoadBalancers {
		if !strings.EqualFold(strings.TrimSuffix(lb.DNSName, "."), strings.TrimSuffix(host, ".")) {
			continue
		}
		out := &gateway.LoadBalancer{Name: lb.Name, ARN: lb.ARN, Type: lb.Type, IPAddressType: lb.IPAddressType, DNSName: lb.DNSName,
			CanonicalHostedZoneID: lb.CanonicalHostedZoneID}
		for _, id := range lb.SubnetIDs {
			if !has6[id] {
				out.SubnetsWithoutIPv6 = append(out.SubnetsWithoutIPv6, id)
			}
		}
		return out, nil
	}
	return nil, nil
}

func (g *loadBalancers) SetDualStack(ctx context.Context, lb *gateway.LoadBalancer) error {
	if g.inv == nil {
		return fmt.Errorf("internal error: %s switched before it was looked up", lb.Name)
	}
	change := awsx.LoadBalancerDualStack(g.inv, lb.Name, lb.ARN, lb.IPAddressType, "the Istio ingress gateway's NLB")
	results, err := awsx.Apply(ctx, g.account.AWS, g.inv, &awsx.Plan{Changes: []awsx.Change{change}}, awsx.ApplyOptions{Journal: g.journal})
	g.account.Invalidate()
	if err != nil {
		return err
	}
	if len(results) != 1 || results[0].Status != awsx.StatusApplied {
		return fmt.Errorf("SetIpAddressType on %s did not apply: %+v", lb.Name, results)
	}
	return nil
}

// Names moves a gateway's Route 53 alias records from one load balancer to
// another (gateway --migrate): the zones are found as the dns phase finds
// them (--hosted-zone, the cluster's DNS config, the VPC's private zones),
// and the moves are journalled in the dns-move layer.
func (a *Account) Names(dyn dynamic.Interface, store *journal.Store, zoneIDs []string) gateway.Names {
	return &routeNames{account: a, dyn: dyn, journal: store, zoneIDs: zoneIDs}
}

type routeNames struct {
	account *Account
	dyn     dynamic.Interface
	journal *journal.Store
	zoneIDs []string
	zones   []dns.Zone // found by Prepare
	plan    *dns.MovePlan
}

func (n *routeNames) Prepare(ctx context.Context) error {
	if n.zones != nil {
		return nil
	}
	inv, err := n.account.Inventory(ctx)
	if err != nil {
		return err
	}
	zo, err := dns.ClusterZoneOptions(ctx, n.dyn, inv.VPC.ID, inv.Region, n.zoneIDs)
	if err != nil {
		return err
	}
	zones, err := dns.FindZones(ctx, n.account.AWS.Route53, zo)
	var bad *dns.BadInputError
	if errors.As(err, &bad) {
		return &cli.UsageError{Err: err}
	}
	if err != nil {
		return err
	}
	n.zones = zones
	if n.zones == nil {
		n.zones = []dns.Zone{}
	}
	return nil
}

func (n *routeNames) PlanMoves(ctx context.Context, from string, to *gateway.LoadBalancer, resource string) (*dns.MovePlan, string, error) {
	if err := n.Prepare(ctx); err != nil {
		if denied(err) {
			// Without Route 53 access the records are the user's to move.
			return nil, fmt.Sprintf("Route 53 refused (%v): no record was moved.\n%s", err, dns.ManualMoves(from, to.DNSName)), nil
		}
		return nil, "", err
	}
	zones := n.zones
	p, err := dns.PlanMoves(ctx, n.account.AWS.Route53, zones, from, dns.LBTarget{DNSName: to.DNSName, HostedZoneID: to.CanonicalHostedZoneID}, resource)
	if denied(err) {
		return nil, fmt.Sprintf("Route 53 refused (%v): no record was moved.\n%s", err, dns.ManualMoves(from, to.DNSName)), nil
	}
	if err != nil {
		return nil, "", err
	}
	n.plan = p
	if len(p.Moves) == 0 {
		names := make([]string, 0, len(zones))
		for _, z := range zones {
			names = append(names, z.Name)
		}
		where := "no hosted zone was found (--hosted-zone names one)"
		if len(names) > 0 {
			where = "no alias record in " + strings.Join(names, ", ") + " leads to " + from
		}
		if len(p.Notes) > 0 {
			where = "no record moves:\n" + p.Describe()
		}
		return p, where + ".\n" + dns.ManualMoves(from, to.DNSName), nil
	}
	return p, p.Describe(), nil
}

// denied says whether AWS refused a call for want of permission (also
// once awsx.Explain put it in words, which keeps no error code).
func denied(err error) bool {
	if err == nil {
		return false
	}
	switch awsx.ErrorCode(err) {
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
		return true
	}
	return strings.Contains(err.Error(), ": access denied (")
}

func (n *routeNames) ApplyMoves(ctx context.Context) error {
	if n.plan == nil {
		return fmt.Errorf("internal error: record moves applied before they were planned")
	}
	_, err := dns.ApplyMoves(ctx, n.account.AWS.Route53, n.plan, dns.ApplyOptions{Journal: n.journal})
	return err
}
