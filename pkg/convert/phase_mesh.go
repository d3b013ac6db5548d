package convert

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/mesh"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/services"
)

// PhaseMesh switches Istio to dual-stack.
const PhaseMesh = "mesh"

// MeshPhase turns on Istio's dual-stack mode through the install method
// found (mesh): istiod's env and the proxies' mesh config, and istiod's own
// Service both families.
type MeshPhase struct {
	Options mesh.Options
	Journal *journal.Store
}

func (*MeshPhase) Name() string { return PhaseMesh }

func (m *MeshPhase) converter(f *Facts, j *journal.Store) *mesh.Converter {
	return &mesh.Converter{Kube: f.Clients.Kube, Dynamic: f.Clients.Dynamic, Helm: mesh.HelmFor(f.Clients), Journal: j, Options: m.Options}
}

func (m *MeshPhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	mp, err := m.converter(f, nil).Plan(ctx)
	if err != nil {
		return PhasePlan{}, err
	}
	p := PhasePlan{Mesh: mp, Summary: mp.Summary}
	switch mp.Action {
	case mesh.ActionNothing:
		p.Action = ActionNothing
		p.Details = append(p.Details, mp.Notes...)
		return p, nil
	case mesh.ActionBlocked:
		p.Blockers = append(p.Blockers, mp.Blocker)
		return p, nil
	}
	p.Action = ActionChange
	if mp.Env != nil {
		p.Details = append(p.Details, fmt.Sprintf("env %s=true in %s/%s (container %s)", "ISTIO_DUAL_STACK", mp.Namespace, mp.Istiod, mesh.DiscoveryContainer))
	}
	if mc := mp.MeshConfig; mc != nil && mc.Change {
		for _, d := range mc.Diff {
			p.Details = append(p.Details, fmt.Sprintf("mesh config %s/%s [%s]: %s", mc.Namespace, mc.Name, mc.Key, d))
		}
	}
	if h := mp.Helm; h != nil {
		for _, c := range h.Changes {
			p.Details = append(p.Details, fmt.Sprintf("helm release %s/%s (revision %d): %s=%s", h.Namespace, h.Release, h.Revision, strings.Join(c.Path, "."), c.Target))
		}
	}
	if sp := mp.ServiceChange(); sp != nil {
		p.Details = append(p.Details, fmt.Sprintf("Service %s/%s: %s %v -> %s %v", sp.Namespace, sp.Name, sp.Policy, sp.Families, sp.TargetPolicy, sp.TargetFamilies))
		if m.needsServiceRange(ctx, f, sp) {
			// Data: the network phase gives the cluster its IPv6 service range.
			p.After, p.Needs = PhaseNetwork, "the cluster has no IPv6 service range yet for istiod's Service"
			p.Summary = "after the network: " + p.Summary
		}
	}
	for _, g := range mp.Gateways {
		p.Details = append(p.Details, fmt.Sprintf("Gateway %s/%s: ConfigMap %s with the Service overlay, spec.infrastructure.parametersRef to it (istiod re-renders Service %s)", g.Namespace, g.Name, g.ConfigMap, g.Service))
		if p.After == "" && m.gatewayNeedsServiceRange(ctx, f, g) {
			p.After, p.Needs = PhaseNetwork, "the cluster has no IPv6 service range yet for the Gateway Services istiod generates"
			p.Summary = "after the network: " + p.Summary
		}
	}
	if len(mp.IstioctlFlags) > 0 {
		p.Details = append(p.Details, fmt.Sprintf("the next `istioctl install` keeps it only with: %v", mp.IstioctlFlags))
	}
	p.Details = append(p.Details, mp.Notes...)
	return p, nil
}

// needsServiceRange asks the apiserver, with a server-side dry run of the
// planned patch, whether it can give istiod's Service its second family.
func (m *MeshPhase) needsServiceRange(ctx context.Context, f *Facts, sp *mesh.ServicePlan) bool {
	got, err := services.DryRunShape(ctx, f.Clients.Kube, sp.Namespace, sp.Name, services.Shape{Policy: sp.TargetPolicy, Families: sp.TargetFamilies})
	if err != nil {
		return services.FamilyNotConfigured(err)
	}
	return len(got.Families) < 2 || got.Policy == "" || got.Policy == corev1.IPFamilyPolicySingleStack
}

// gatewayNeedsServiceRange: the same question for a Gateway's Service.
func (m *MeshPhase) gatewayNeedsServiceRange(ctx context.Context, f *Facts, g *mesh.GatewayPlan) bool {
	return m.needsServiceRange(ctx, f, &mesh.ServicePlan{Namespace: g.Namespace, Name: g.Service, TargetPolicy: m.policy(),
		TargetFamilies: []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}})
}

func (m *MeshPhase) policy() corev1.IPFamilyPolicy {
	if m.Options.Policy == "" {
		return corev1.IPFamilyPolicyPreferDualStack
	}
	return m.Options.Policy
}

// Diff compares what two mesh plans change.
func (*MeshPhase) Diff(was, now PhasePlan) string {
	if was.Mesh == nil || now.Mesh == nil {
		return ""
	}
	return mesh.Diff(was.Mesh, now.Mesh)
}

// Apply applies the plan (planned again first when it waited for the
// network, and applied only if it changes the same objects the same way),
// then waits for istiod's rollout.
func (m *MeshPhase) Apply(ctx context.Context, f *Facts, p PhasePlan, run *Run) (Done, error) {
	if p.Mesh == nil {
		return Done{}, errors.New("internal error: the mesh phase was applied without a plan")
	}
	c := m.converter(f, m.Journal)
	c.Log = run.Log
	mp := p.Mesh
	if p.After != "" {
		now, err := c.Plan(ctx)
		if err != nil {
			return Done{}, fmt.Errorf("mesh: %w", err)
		}
		if d := mesh.Diff(mp, now); d != "" {
			return Done{}, fmt.Errorf("mesh: Istio's objects %w (%s); nothing was changed by this phase: run upgrade again", ErrPlanDrift, d)
		}
		mp = now
	}
	run.Progress.Start(fmt.Sprintf("%s: %s", run.Label, mp.Summary))
	res, err := c.Apply(ctx, mp)
	run.Progress.Done("")
	changed := res != nil && len(res.Changed) > 0
	if err != nil {
		return Done{Changed: changed}, fmt.Errorf("mesh: %w", err)
	}
	return Done{Changed: changed, Message: res.Message}, nil
}
