package convert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"k8s.io/client-go/dynamic"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
)

// ValidatePhase proves the result over both families (validate): Proof is
// validate's run with its settings; each run gets a run ID of its own.
type ValidatePhase struct {
	Proof probe.Proof
}

func (*ValidatePhase) Name() string { return PhaseValidate }

func (v *ValidatePhase) Plan(ctx context.Context, f *Facts) (PhasePlan, error) {
	checks := probe.AllChecks
	var dc dynamic.Interface
	if f != nil && f.Clients != nil {
		dc = f.Clients.Dynamic
	}
	names := append(slices.Clone(v.Proof.Names), probe.OpenShiftNames(ctx, dc)...)
	if len(names) > 0 {
		checks = probe.KnownChecks
	}
	summary := fmt.Sprintf("prove it in namespace %s, for IPv4 and IPv6: %s (%d checks); everything it creates is deleted",
		v.Proof.Scenario.Namespace, strings.Join(checks, ", "), 2*len(checks))
	if len(names) > 0 {
		summary += "; dns-names resolves " + strings.Join(names, ", ")
	}
	return PhasePlan{Action: ActionCheck, Summary: summary}, nil
}

func (v *ValidatePhase) Apply(ctx context.Context, f *Facts, _ PhasePlan, run *Run) (Done, error) {
	p := v.Proof
	p.Clients, p.Log = f.Clients, run.Log
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	p.Scenario.RunID = hex.EncodeToString(id)
	var msg string
	err := p.Run(ctx, func(r probe.ProofResult, err error) error {
		var perr error
		msg, perr = proofMessage(r, err)
		return perr
	})
	switch {
	case err != nil && msg != "":
		return Done{}, fmt.Errorf("validate: %s, but %w", msg, err) // the checks passed, the cleanup did not
	case err != nil:
		return Done{}, fmt.Errorf("validate: %w", err)
	}
	return Done{Message: msg}, nil
}

// proofMessage says how validate went, in one line.
func proofMessage(r probe.ProofResult, err error) (string, error) {
	msg := fmt.Sprintf("%d/%d checks passed", r.Summary.Pass, r.Summary.Total)
	if err == nil && r.AllPassed() {
		return msg, nil
	}
	var failed []string
	for _, c := range r.Checks {
		if c.Status != "PASS" {
			failed = append(failed, fmt.Sprintf("%s %s %s: %s", c.Status, c.Name, c.Family, c.Message))
		}
	}
	detail := strings.Join(failed, "; ")
	switch {
	case r.Error != "":
		detail = r.Error
	case detail == "" && err != nil:
		detail = err.Error()
	}
	return "", fmt.Errorf("%s; %s", msg, detail)
}
