package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
)

// loadPlan reads a plan saved from `upgrade --dry-run=client -o json`;
// a file that is not one is bad input.
func loadPlan(path string) (*convert.Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, cli.Usagef("--plan %s: %v", path, err)
	}
	var saved convert.Result
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&saved); err != nil {
		return nil, cli.Usagef("--plan %s is not a plan saved by `upgrade --dry-run=client -o json`: %v", path, err)
	}
	if saved.Plan.Settings == nil || len(saved.Plan.Phases) == 0 {
		return nil, cli.Usagef("--plan %s has no phases or settings: save a plan with `upgrade --dry-run=client -o json > FILE`", path)
	}
	if saved.Plan.Cluster.CreatedAt.IsZero() {
		return nil, cli.Usagef("--plan %s has no creation time: save a plan with `upgrade --dry-run=client -o json > FILE`", path)
	}
	return &saved, nil
}

// ErrPlanRefused says a saved plan cannot be applied as it is.
var ErrPlanRefused = errors.New("the saved plan was not applied")
