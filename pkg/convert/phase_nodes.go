package convert

import (
	"context"
	"errors"
	"fmt"
	"strings"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/nodes"
)

// PhaseNodes makes the nodes report an IPv6 InternalIP.
const PhaseNodes = "nodes"

// NodesPhase makes every Node report both InternalIPs (nodes): the cloud
// provider's NodeIPFamilies lists ipv6 too, and the kubelets whose
// --node-ip hides it are named with the change they need.
type NodesPhase struct {
	Options nodes.Options
	Journal *journal.Store
}

func (*NodesPhase) Name() string { return PhaseNodes }

func (n *NodesPhase) converter(f *Facts, eni map[string][]string, j *journal.Store) *nodes.Converter {
	o := n.Options
	o.ENIIPv6 = eni
	if r := f.Platform.CloudConfig; r != nil && o.InfraCloudConfig.IsZero() {
		o.InfraCloudConfig = nodes.ConfigMapRef{Namespace: nodes.OpenShiftNamespace, Name: r.Name, Key: r.Key}
	}
	return &nodes.Converter{Kube: f.Clients.Kube, Journal: j, Options: o}
}

// eniIPv6 is, per node, the IPv6 addresses of its instance's primary ENI as
// the last discovery knows them; nil when AWS was not consulted.
func eniIPv6(inv *awsx.Inventory, f *Facts) map[string][]string {
	if inv == nil {
		return nil
	}
	instanceOf := awsx.NodeNames(f.Nodes) // instance ID -> node name
	byENI := map[string][]string{}
	for _, e := range inv.NetworkInterfaces {
		byENI[e.ID] = e.IPv6Addresses
	}
	out := map[string][]string{}
	for _, in := range inv.Instances {
		if name, ok := instanceOf[in.ID]; ok {
			out[name] = append([]string{}, byENI[in.PrimaryENI]...)
		}
	}
	return out
}

func (n *NodesPhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	var inv *awsx.Inventory
	if f.Account != nil {
		var err error
		if inv, err = f.Account.Inventory(ctx); err != nil {
			return PhasePlan{}, err
		}
	}
	eni := eniIPv6(inv, f)
	np, err := n.converter(f, eni, nil).Plan(ctx)
	if err != nil {
		return PhasePlan{}, err
	}
	p := PhasePlan{Nodes: np, Summary: np.Summary}
	switch np.Action {
	case nodes.ActionNothing:
		p.Action = ActionNothing
		return p, nil
	case nodes.ActionBlocked:
		p.Blockers = append(p.Blockers, np.Blocker)
		return p, nil
	}
	p.Action = ActionChange
	if c := np.Cloud; c != nil && c.Change {
		for _, d := range c.Diff {
			p.Details = append(p.Details, fmt.Sprintf("%s: %s", c.ConfigMapRef, d))
		}
	}
	if np.Restart != nil {
		p.Details = append(p.Details, "restart "+np.Restart.String()+" (it reads its cloud config only at start)")
	}
	shown := 0
	for _, v := range np.Nodes {
		if v.HostChange == "" {
			continue
		}
		if shown == 5 {
			p.Details = append(p.Details, fmt.Sprintf("and %d more nodes need a change on the host (-o json lists every one)", np.HostChanges-shown))
			break
		}
		p.Details = append(p.Details, "on the host of "+v.Name+": "+v.HostChange)
		shown++
	}
	p.Details = append(p.Details, np.Notes...)
	// The nodes can report an IPv6 InternalIP only once their instances'
	// ENIs have one: that is the aws phase's change.
	if eni != nil {
		var without []string
		for _, v := range np.Nodes {
			if !v.Done && len(eni[v.Name]) == 0 {
				without = append(without, v.Name)
			}
		}
		if len(without) > 0 {
			p.After = PhaseAWS
			p.Needs = fmt.Sprintf("%d of %d instances' primary ENIs have no IPv6 address yet (%s)", len(without), len(np.Nodes), firstNames(without, 3))
			p.Summary = "after the underlay: " + p.Summary
		}
	}
	return p, nil
}

func firstNames(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
}

// Diff compares the cloud config changes of two plans.
func (*NodesPhase) Diff(was, now PhasePlan) string {
	if was.Nodes == nil || now.Nodes == nil {
		return ""
	}
	return nodes.Diff(was.Nodes, now.Nodes)
}

// Apply writes the planned cloud config, restarts the cloud controller the
// plan names, then follows the nodes until each reports an IPv6 InternalIP
// (its ENI's, as the newest discovery knows it).
func (n *NodesPhase) Apply(ctx context.Context, f *Facts, p PhasePlan, run *Run) (Done, error) {
	if p.Nodes == nil {
		return Done{}, errors.New("internal error: the nodes phase was applied without a plan")
	}
	var eni map[string][]string
	if f.Account != nil {
		// The aws phase may have just given the ENIs their addresses; the
		// gateway phase reuses this discovery.
		inv, err := f.Account.Inventory(ctx)
		if err != nil {
			return Done{}, fmt.Errorf("nodes: reading the instances' ENIs: %w", err)
		}
		eni = eniIPv6(inv, f)
	}
	c := n.converter(f, eni, n.Journal)
	res, err := c.Apply(ctx, p.Nodes)
	changed := res != nil && (res.Changed || res.Restarted != nil)
	if err != nil {
		return Done{Changed: changed}, fmt.Errorf("nodes: %w", err)
	}
	if res.Message != "" {
		fmt.Fprintf(run.Log, "%s\n", res.Message)
	}
	total := len(p.Nodes.Nodes)
	run.Progress.Start(fmt.Sprintf("%s: waiting for %d nodes to report an IPv6 InternalIP (timeout %s)", run.Label, total, c.Options.Timeout))
	c.Progress = func(msg string) { run.Progress.Update(run.Label + ": " + msg) }
	wres, err := c.Wait(ctx, p.Nodes)
	run.Progress.Done("")
	if err != nil {
		return Done{Changed: changed}, fmt.Errorf("nodes: %w", err)
	}
	if err := f.RefreshNodes(ctx); err != nil {
		return Done{Changed: changed}, err
	}
	msg := fmt.Sprintf("all %d nodes report an IPv4 and an IPv6 InternalIP", wres.Total)
	if res.Message != "" {
		msg = res.Message + "; " + msg
	}
	return Done{Changed: changed, Message: msg}, nil
}
