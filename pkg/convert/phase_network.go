package convert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cmtext"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/ipfamily"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// NetworkPhase adds IPv6 to the cluster network (network): on OpenShift the
// Network config patch and the wait for the network operator.
type NetworkPhase struct {
	Request network.Request
	Force   bool
	Timeout time.Duration
	Journal *journal.Store
	// Tool is how the user calls this tool ("kubectl dualstack").
	Tool    string
	Command func(sub string) string
}

func (*NetworkPhase) Name() string { return PhaseNetwork }

func (n *NetworkPhase) overlay(f *Facts, dry cli.DryRun, log io.Writer, report func(*network.Result)) *network.Overlay {
	return &network.Overlay{
		Kube: f.Clients.Kube, Dynamic: f.Clients.Dynamic, Journal: n.Journal,
		DryRun: dry, Request: n.Request, Force: n.Force, Timeout: n.Timeout,
		Command: n.Tool, Log: log, Report: report,
		Confirm: func(context.Context, string, string) error { return nil }, // the engine asked once
	}
}

func (n *NetworkPhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	var p PhasePlan
	res := &network.Result{Cluster: f.Platform, Action: "convert", DryRun: string(cli.DryRunClient)}
	switch f.Platform.Kind {
	case platform.OpenShift:
		res.Mode = "openshift"
	case platform.Kubeadm:
		return n.planKubeadm(ctx, f)
	case platform.KindKind:
		p.Blockers = []string{fmt.Sprintf("kind cannot change the cluster network in place: re-create the cluster with the kind config `%s` prints, then run upgrade again", n.Command("network"))}
		return p, nil
	default:
		p.Blockers = []string{fmt.Sprintf("%s network handles OpenShift, kubeadm and kind clusters; this one looks like %s (%s), whose network is configured by its provider",
			n.Tool, f.Platform.Kind, strings.Join(f.Platform.Evidence, "; "))}
		return p, nil
	}
	var got *network.Result
	err := n.overlay(f, cli.DryRunClient, io.Discard, func(r *network.Result) { got = r }).Convert(ctx, res, f.Nodes)
	if got == nil {
		if err == nil {
			err = errors.New("no result")
		}
		return p, err
	}
	p.Network = got
	added := ""
	if got.Added != nil {
		var s []string
		if got.Added.ClusterNetwork != nil {
			s = append(s, fmt.Sprintf("clusterNetwork %s (hostPrefix %d)", got.Added.ClusterNetwork.CIDR, got.Added.ClusterNetwork.HostPrefix))
		}
		if got.Added.ServiceNetwork != "" {
			s = append(s, "serviceNetwork "+got.Added.ServiceNetwork)
		}
		added = strings.Join(s, ", ")
	}
	for _, op := range got.Patch {
		b, _ := json.Marshal(op)
		p.Details = append(p.Details, "patch "+string(b))
	}
	switch got.Outcome {
	case network.OutcomeAlreadyDualStack:
		p.Action, p.Summary = ActionNothing, got.Message
	case network.OutcomeDryRun:
		p.Action = ActionChange
		if len(got.Patch) == 0 {
			p.Summary = "IPv6 is already requested in " + network.NetworkResource + ": wait for the network operator to apply it"
		} else {
			p.Summary = fmt.Sprintf("append %s to %s, then wait for the network operator", added, network.NetworkResource)
		}
	case network.OutcomePreflightFailed:
		p.Action = ActionChange
		p.Summary = fmt.Sprintf("append %s to %s, then wait for the network operator", added, network.NetworkResource)
		for _, pr := range got.Preflight {
			switch {
			case pr.Check == "node-internal-ips":
				// Data: the nodes report IPv6 addresses once the aws
				// phase gave their ENIs one and the nodes phase had the
				// cloud provider report it.
				p.After, p.Needs = PhaseNodes, pr.Message
				p.Summary = "after the nodes: " + p.Summary
				p.Details = append(p.Details, "after the nodes: "+pr.Message+" (the aws phase gives the instances IPv6, the nodes phase has the nodes report it)")
			case pr.Forceable && n.Force:
				p.Details = append(p.Details, "WARN (--force-network): "+pr.Message)
			case pr.Forceable:
				p.Blockers = append(p.Blockers, pr.Message+"; "+pr.Fix+" (upgrade: --force-network)")
			default:
				p.Blockers = append(p.Blockers, pr.Message+"; fix: "+pr.Fix)
			}
		}
	default:
		p.Blockers = append(p.Blockers, fmt.Sprintf("unexpected plan from network (%s): %s", got.Outcome, got.Message))
	}
	return p, nil
}

// Diff compares the Network patches of two plans.
func (*NetworkPhase) Diff(was, now PhasePlan) string {
	if was.Network == nil || now.Network == nil {
		return ""
	}
	a, _ := json.Marshal(was.Network.Patch)
	b, _ := json.Marshal(now.Network.Patch)
	if string(a) != string(b) {
		return fmt.Sprintf("the patch was %s, is now %s (the Network config changed)", a, b)
	}
	return ""
}

// planKubeadm plans the kubeadm network: the ConfigMaps this tool
// updates, and the host-side changes it waits for.
func (n *NetworkPhase) planKubeadm(ctx context.Context, f *Facts) (PhasePlan, error) {
	var p PhasePlan
	res := &network.Result{Cluster: f.Platform, Mode: "kubeadm", Action: "convert", DryRun: string(cli.DryRunClient)}
	if err := n.overlay(f, cli.DryRunClient, io.Discard, nil).ConvertKubeadm(ctx, res, f.Nodes); err != nil {
		return p, err
	}
	p.Network = res
	if res.Plan == nil {
		p.Action, p.Summary = ActionNothing, res.Message
		return p, nil
	}
	var api, host []string
	for _, c := range res.Plan.Changes {
		line := fmt.Sprintf("%s %s: %s -> %s (%s)", c.Component, c.Setting, orDash(c.Current), c.Desired, c.Where)
		if c.InAPI {
			api = append(api, line)
			p.Details = append(p.Details, "this tool: "+line)
		} else {
			host = append(host, line)
			p.Details = append(p.Details, "you, on the host: "+line)
		}
	}
	p.Action = ActionChange
	p.Summary = fmt.Sprintf("update %d settings in kubeadm-config and kube-proxy, then wait for the %d host-side changes to show in the API and restart kube-proxy", len(api), len(host))
	return p, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (n *NetworkPhase) Apply(ctx context.Context, f *Facts, p PhasePlan, run *Run) (Done, error) {
	if f.Platform.Kind == platform.Kubeadm {
		res := &network.Result{Cluster: f.Platform, Mode: "kubeadm", Action: "convert"}
		run.Progress.Start(fmt.Sprintf("%s: %s", run.Label, p.Summary))
		ov := n.overlay(f, cli.DryRunNone, run.Log, nil)
		var confirmed []cmtext.Edit
		if p.Network != nil && p.Network.Plan != nil {
			confirmed = p.Network.Plan.Edits
		}
		ov.ExpectEdits = &confirmed
		err := ov.ConvertKubeadm(ctx, res, f.Nodes)
		run.Progress.Done("")
		if err != nil {
			return Done{Changed: res.Plan != nil && len(res.Plan.Edits) > 0}, fmt.Errorf("network (%s): %w", res.Outcome, err)
		}
		return Done{Changed: res.Outcome == network.OutcomeConverted, Message: res.Message}, nil
	}
	if err := n.waitNodesIPv6(ctx, f, run); err != nil {
		return Done{}, err
	}
	res := &network.Result{Cluster: f.Platform, Action: "convert", Mode: "openshift"}
	var got *network.Result
	err := n.overlay(f, cli.DryRunNone, run.Log, func(r *network.Result) { got = r }).Convert(ctx, res, f.Nodes)
	if got != nil && got.Outcome == network.OutcomeAlreadyDualStack {
		return Done{Message: got.Message}, nil
	}
	if err != nil {
		if got != nil && got.Message != "" {
			return Done{Changed: true}, fmt.Errorf("network (%s): %s", got.Outcome, got.Message)
		}
		return Done{}, fmt.Errorf("network: %w", err)
	}
	if got == nil {
		return Done{}, errors.New("network: no result")
	}
	return Done{Message: got.Message, Changed: true}, nil
}

// waitNodesIPv6 gives the nodes time to report the IPv6 addresses the
// underlay gave their instances, then reads them again for the preflight.
func (n *NetworkPhase) waitNodesIPv6(ctx context.Context, f *Facts, run *Run) error {
	hasIPv6 := func(node *corev1.Node) bool { return len(ipfamily.NodeInternalIPs(node, ipfamily.IPv6)) > 0 }
	if err := f.RefreshNodes(ctx); err != nil {
		return err
	}
	without := 0
	for i := range f.Nodes {
		if !hasIPv6(&f.Nodes[i]) {
			without++
		}
	}
	if without == 0 {
		return nil
	}
	run.Progress.Start(fmt.Sprintf("%s: waiting for %d of %d nodes to report an IPv6 InternalIP (timeout %s)", run.Label, without, len(f.Nodes), n.Timeout))
	defer run.Progress.Done("")
	err := kube.WaitAll(ctx, kube.NodesLW(f.Clients.Kube), &corev1.Node{}, n.Timeout, func(objs map[string]runtime.Object) (bool, error) {
		all := kube.Nodes(objs)
		w := 0
		for _, node := range all {
			if !hasIPv6(node) {
				w++
			}
		}
		run.Progress.Update(fmt.Sprintf("%s: %d of %d nodes without an IPv6 InternalIP", run.Label, w, len(all)))
		return w == 0, nil
	})
	var timedOut *kube.TimeoutError
	if errors.As(err, &timedOut) {
		return fmt.Errorf("nodes did not report IPv6 InternalIPs within --timeout %s (run the nodes phase: it names what each node lacks): %w", n.Timeout, err)
	}
	if err != nil {
		return fmt.Errorf("waiting for the nodes' IPv6 InternalIPs: %w", err)
	}
	return f.RefreshNodes(ctx)
}
