package convert

import (
	"context"
	"fmt"
	"strings"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
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
