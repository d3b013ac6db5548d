package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// PlanCluster says which cluster a plan is for, so a saved plan is never
// applied to another.
type PlanCluster struct {
	// ID is the UID of the kube-system namespace: stable for the life of a
	// cluster, different for every cluster.
	ID        string    `json:"id"`
	Server    string    `json:"server,omitempty"`
	VPCID     string    `json:"vpcId,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// PlanSettings are the flags that shape a plan; a saved plan carries them,
// so applying it plans with the same ones.
type PlanSettings struct {
	Phases          []string `json:"phases"`
	ForceNetwork    bool     `json:"forceNetwork,omitempty"`
	RecreateGateway bool     `json:"recreateGateway,omitempty"`
	NewInstanceType string   `json:"allowInstanceTypeChange,omitempty"`
	// AllowControlPlaneRestart and ForceVPC are the flags of the same names.
	AllowControlPlaneRestart bool `json:"allowControlPlaneRestart,omitempty"`
	ForceVPC                 bool `json:"forceVpc,omitempty"`
}

// clusterID reads the identity of the cluster.
func clusterID(ctx context.Context, kc kubernetes.Interface) (string, error) {
	ns, err := kc.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if apierrors.IsForbidden(err) {
		return "", nil // not allowed to know: the drift check still guards
	}
	if err != nil {
		return "", fmt.Errorf("reading the cluster's identity (namespace kube-system): %w", err)
	}
	return string(ns.UID), nil
}

// loadPlan reads a plan saved from `upgrade --dry-run=client -o json`;
// a file that is not one is bad input.
func loadPlan(path string) (*UpgradeResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, cli.Usagef("--plan %s: %v", path, err)
	}
	var saved UpgradeResult
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

// comparePlans lists how the plan made now differs from the saved one.
func comparePlans(saved, now UpgradePlan) []string {
	var diffs []string
	if saved.Cluster.ID != now.Cluster.ID {
		return []string{fmt.Sprintf("it is for another cluster (kube-system UID %s, this one is %s)", orNone(saved.Cluster.ID), orNone(now.Cluster.ID))}
	}
	byName := map[string]PhasePlan{}
	for _, p := range now.Phases {
		byName[p.Name] = p
	}
	for _, was := range saved.Phases {
		is, ok := byName[was.Name]
		if !ok {
			diffs = append(diffs, was.Name+": not planned now")
			continue
		}
		if was.Action != is.Action {
			diffs = append(diffs, fmt.Sprintf("%s: was %s, is now %s (%s)", was.Name, was.Action, is.Action, is.Summary))
			continue
		}
		switch {
		case was.AWS != nil && is.AWS != nil:
			if d := planDiff(was.AWS, is.AWS); d != "" {
				diffs = append(diffs, "aws: "+d)
			}
		case was.Network != nil && is.Network != nil:
			a, _ := json.Marshal(was.Network.Patch)
			b, _ := json.Marshal(is.Network.Patch)
			if string(a) != string(b) {
				diffs = append(diffs, fmt.Sprintf("network: the patch was %s, is now %s (the Network config changed)", a, b))
			}
		case was.Gateway != nil && is.Gateway != nil:
			if !slices.Equal(was.Details, is.Details) {
				diffs = append(diffs, fmt.Sprintf("gateway: was [%s], is now [%s]", strings.Join(was.Details, "; "), strings.Join(is.Details, "; ")))
			}
		}
	}
	if len(saved.Blockers) == 0 && len(now.Blockers) > 0 {
		diffs = append(diffs, "blocked now: "+strings.Join(now.Blockers, "; "))
	}
	return diffs
}
