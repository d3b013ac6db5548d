package convert

import (
	"context"
	"fmt"
)

// ValidatePhase proves the result over both families (validate). Its plan
// is the checks it will make; Prove runs them and says how they went.
type ValidatePhase struct {
	// Summary is what the plan says it will prove.
	Summary string
	Prove   func(ctx context.Context, run *Run) (string, error)
}

func (*ValidatePhase) Name() string { return PhaseValidate }

func (v *ValidatePhase) Plan(context.Context, *Facts) (PhasePlan, error) {
	return PhasePlan{Action: ActionCheck, Summary: v.Summary}, nil
}

func (v *ValidatePhase) Apply(ctx context.Context, _ *Facts, _ PhasePlan, run *Run) (Done, error) {
	msg, err := v.Prove(ctx, run)
	if err != nil {
		return Done{}, fmt.Errorf("validate: %w", err)
	}
	return Done{Message: msg}, nil
}
