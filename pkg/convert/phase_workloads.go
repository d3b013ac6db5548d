package convert

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/workloads"
)

// PhaseWorkloads re-creates the pods that lack an IPv6 pod IP.
const PhaseWorkloads = "workloads"

// WorkloadsPhase re-creates, through the Eviction API so that
// PodDisruptionBudgets hold, every running pod without an IPv6 pod IP
// (workloads): a pod keeps the addresses it started with.
type WorkloadsPhase struct {
	Options workloads.Options
}

func (*WorkloadsPhase) Name() string { return PhaseWorkloads }

func (w *WorkloadsPhase) converter(f *Facts) *workloads.Converter {
	return &workloads.Converter{Kube: f.Clients.Kube, Options: w.Options}
}

// podNetworkHasIPv6 says whether every node has an IPv6 pod CIDR: only then
// does a re-created pod come back with an IPv6 address.
func podNetworkHasIPv6(nodes []corev1.Node) bool {
	for i := range nodes {
		if _, v6 := ipfamily.Cover(ipfamily.NodePodCIDRs(&nodes[i])); !v6 {
			return false
		}
	}
	return len(nodes) > 0
}

func (w *WorkloadsPhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	wp, err := w.converter(f).Plan(ctx)
	if err != nil {
		return PhasePlan{}, err
	}
	p := PhasePlan{Workloads: wp}
	if wp.Evicts == 0 {
		p.Action = ActionNothing
		p.Summary = fmt.Sprintf("no selected pod needs re-creating (%d already have IPv6, %d left alone, each with its reason in the plan)", wp.DualStack, wp.Skips)
		return p, nil
	}
	p.Action = ActionChange
	p.Summary = fmt.Sprintf("re-create %d pods without an IPv6 pod IP through evictions (PodDisruptionBudgets hold; %d at a time; cluster DNS, istiod and gateways first; %d left alone)",
		wp.Evicts, wp.Options.MaxUnavailable, wp.Skips)
	shown := 0
	for _, it := range wp.Pods {
		if it.Action != workloads.ActionEvict {
			continue
		}
		if shown == 10 {
			p.Details = append(p.Details, fmt.Sprintf("and %d more (-o json lists every one)", wp.Evicts-shown))
			break
		}
		d := it.Ref()
		if it.Owner != nil {
			d += fmt.Sprintf(" (%s %s)", it.Owner.Kind, it.Owner.Name)
		}
		if len(it.PDBs) > 0 {
			d += fmt.Sprintf(", PodDisruptionBudget %v", it.PDBs)
		}
		p.Details = append(p.Details, d)
		shown++
	}
	for _, it := range wp.Pods {
		if it.Action == workloads.ActionSkip && it.Reason == workloads.ReasonNoController {
			p.Details = append(p.Details, fmt.Sprintf("left alone: %s: %s", it.Ref(), it.Reason))
		}
	}
	p.Details = append(p.Details, wp.Notes...)
	if net, ok := f.Planned(PhaseNetwork); !podNetworkHasIPv6(f.Nodes) && (!ok || net.Mutating()) {
		// Data: a pod re-created before the cluster network has IPv6
		// comes back IPv4-only. (A network already converted whose
		// plugin has not given every node its IPv6 subnet yet is waited
		// for when the phase applies.)
		p.After, p.Needs = PhaseNetwork, "the cluster network gives new pods no IPv6 address yet"
		p.Summary = "after the network: " + p.Summary
	}
	return p, nil
}

// Diff compares the pods two plans evict.
func (*WorkloadsPhase) Diff(was, now PhasePlan) string {
	if was.Workloads == nil || now.Workloads == nil {
		return ""
	}
	return workloads.Diff(was.Workloads, now.Workloads)
}

// Apply evicts exactly the planned pods (each read again first: one
// replaced since is left alone) and waits for their replacements.
func (w *WorkloadsPhase) Apply(ctx context.Context, f *Facts, p PhasePlan, run *Run) (Done, error) {
	if p.Workloads == nil {
		return Done{}, errors.New("internal error: the workloads phase was applied without a plan")
	}
	if err := w.waitPodNetwork(ctx, f, run); err != nil {
		return Done{}, err
	}
	c := w.converter(f)
	c.Log = run.Log
	run.Progress.Start(fmt.Sprintf("%s: re-creating %d pods", run.Label, p.Workloads.Evicts))
	res, err := c.Apply(ctx, p.Workloads)
	run.Progress.Done("")
	changed := res != nil && (res.Recreated > 0 || res.Removed > 0 || res.Evicted > 0)
	if err != nil {
		return Done{Changed: changed}, fmt.Errorf("workloads: %w", err)
	}
	msg := fmt.Sprintf("%d pods re-created with both families", res.Recreated)
	if res.AlreadyReplaced > 0 {
		msg += fmt.Sprintf(", %d already replaced", res.AlreadyReplaced)
	}
	if res.Removed > 0 {
		msg += fmt.Sprintf(", %d pods without a controller removed (--force)", res.Removed)
	}
	return Done{Changed: changed, Message: msg}, nil
}

// waitPodNetwork waits until every node has an IPv6 pod CIDR: the network
// plugin allocates the nodes' IPv6 subnets as it rolls the new cluster
// network out, which may finish a moment after the network phase saw it
// accepted.
func (w *WorkloadsPhase) waitPodNetwork(ctx context.Context, f *Facts, run *Run) error {
	if err := f.RefreshNodes(ctx); err != nil {
		return err
	}
	if podNetworkHasIPv6(f.Nodes) {
		return nil
	}
	timeout := w.Options.Timeout
	if timeout <= 0 {
		timeout = workloads.DefaultTimeout
	}
	run.Progress.Start(fmt.Sprintf("%s: waiting for every node to have an IPv6 pod CIDR (timeout %s)", run.Label, timeout))
	defer run.Progress.Done("")
	err := kube.WaitAll(ctx, kube.NodesLW(f.Clients.Kube), &corev1.Node{}, timeout, func(objs map[string]runtime.Object) (bool, error) {
		var nodes []corev1.Node
		for _, n := range kube.Nodes(objs) {
			nodes = append(nodes, *n)
		}
		return podNetworkHasIPv6(nodes), nil
	})
	if err != nil {
		return fmt.Errorf("workloads: not every node has an IPv6 pod CIDR, so re-created pods would come back IPv4-only; nothing was evicted (run the network phase first, or wait for the network plugin to finish): %w", err)
	}
	return f.RefreshNodes(ctx)
}

// DefaultWorkloadsOptions are upgrade's: every namespace, one pod at a time.
func DefaultWorkloadsOptions() workloads.Options {
	return workloads.Options{MaxUnavailable: 1}
}
