package network

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// OperatorName is the ClusterOperator of the cluster network operator.
const OperatorName = "network"

// OperatorStatus is the network ClusterOperator's conditions ("True",
// "False" or "" when absent) and the Degraded reason and message.
type OperatorStatus struct {
	Available   string `json:"available"`
	Progressing string `json:"progressing"`
	Degraded    string `json:"degraded"`
	Reason      string `json:"reason,omitempty"`
	Message     string `json:"message,omitempty"`
}

// Settled is Available=True, Progressing=False, Degraded=False.
func (o OperatorStatus) Settled() bool {
	return o.Available == "True" && o.Progressing == "False" && o.Degraded == "False"
}

func (o OperatorStatus) String() string {
	return fmt.Sprintf("Available=%s Progressing=%s Degraded=%s", orUnknown(o.Available), orUnknown(o.Progressing), orUnknown(o.Degraded))
}

// OperatorStatusFrom reads a ClusterOperator's conditions.
func OperatorStatusFrom(obj *unstructured.Unstructured) OperatorStatus {
	var o OperatorStatus
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		status, _ := m["status"].(string)
		switch m["type"] {
		case "Available":
			o.Available = status
		case "Progressing":
			o.Progressing = status
		case "Degraded":
			o.Degraded = status
			if status == "True" {
				o.Reason, _ = m["reason"].(string)
				o.Message, _ = m["message"].(string)
			}
		}
	}
	return o
}

// ReadOperatorStatus GETs the network ClusterOperator.
func ReadOperatorStatus(ctx context.Context, dc dynamic.Interface) (OperatorStatus, error) {
	obj, err := dc.Resource(platform.ClusterOperatorsGVR).Get(ctx, OperatorName, metav1.GetOptions{})
	if err != nil {
		return OperatorStatus{}, err
	}
	return OperatorStatusFrom(obj), nil
}

// Goal is what the wait waits for.
type Goal struct {
	// Present must all be in status (clusterNetwork CIDRs and serviceNetwork);
	// Absent must all be gone from it.
	PresentCluster, PresentService []string
	AbsentCluster, AbsentService   []string
	// FailOnDegraded ends the wait as soon as the operator reports Degraded.
	FailOnDegraded bool
}

// Observed is the last state the wait saw.
type Observed struct {
	Network  *NetworkConfig `json:"network,omitempty"`
	Operator OperatorStatus `json:"operator"`
}

func (g Goal) reached(o Observed) bool {
	if o.Network == nil || !o.Operator.Settled() {
		return false
	}
	cluster := CIDRs(o.Network.StatusClusterNetwork)
	for _, c := range g.PresentCluster {
		if !slices.Contains(cluster, c) {
			return false
		}
	}
	for _, c := range g.PresentService {
		if !slices.Contains(o.Network.StatusServiceNetwork, c) {
			return false
		}
	}
	for _, c := range g.AbsentCluster {
		if slices.Contains(cluster, c) {
			return false
		}
	}
	for _, c := range g.AbsentService {
		if slices.Contains(o.Network.StatusServiceNetwork, c) {
			return false
		}
	}
	return true
}

// Describe is the one-line state for the progress line.
func (o Observed) Describe() string {
	var b strings.Builder
	if o.Network != nil {
		fmt.Fprintf(&b, "status clusterNetwork [%s] serviceNetwork [%s]; ", strings.Join(CIDRs(o.Network.StatusClusterNetwork), ", "), strings.Join(o.Network.StatusServiceNetwork, ", "))
	}
	b.WriteString("operator " + o.Operator.String())
	return b.String()
}

// DegradedError is the operator refusing or failing the change.
type DegradedError struct{ Operator OperatorStatus }

func (e *DegradedError) Error() string {
	return fmt.Sprintf("the network operator is Degraded (%s): %s", e.Operator.Reason, e.Operator.Message)
}

// ErrTimeout is returned (wrapped) when --timeout expires first.
var ErrTimeout = errors.New("timed out")

// Wait watches the Network config and the network ClusterOperator (no
// polling) until goal is reached, the operator degrades (when the goal says
// so), or timeout. update is called with every new state.
func Wait(ctx context.Context, dc dynamic.Interface, goal Goal, timeout time.Duration, update func(Observed)) (Observed, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	events := make(chan *unstructured.Unstructured)
	errs := make(chan error, 2)
	go func() { errs <- watchNamed(ctx, dc, platform.NetworksGVR, NetworkConfigName, events) }()
	go func() { errs <- watchNamed(ctx, dc, platform.ClusterOperatorsGVR, OperatorName, events) }()

	var seen Observed
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return seen, fmt.Errorf("%w after %s; last seen: %s", ErrTimeout, timeout, seen.Describe())
			}
			return seen, ctx.Err()
		case err := <-errs:
			if err != nil && ctx.Err() == nil {
				return seen, err
			}
		case obj := <-events:
			if obj.GetKind() == "ClusterOperator" {
				seen.Operator = OperatorStatusFrom(obj)
			} else {
				seen.Network = NetworkConfigFrom(obj)
			}
			if update != nil {
				update(seen)
			}
			if goal.FailOnDegraded && seen.Operator.Degraded == "True" {
				return seen, &DegradedError{Operator: seen.Operator}
			}
			if goal.reached(seen) {
				return seen, nil
			}
		}
	}
}

// watchNamed sends every version of one cluster-scoped object to out until
// ctx ends: a list (for the current state and a resourceVersion), then a
// watch from there, re-listing when the watch ends or its resourceVersion
// expires, as client-go's reflector does. No polling.
func watchNamed(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, name string, out chan<- *unstructured.Unstructured) error {
	opts := metav1.ListOptions{FieldSelector: "metadata.name=" + name}
	send := func(obj *unstructured.Unstructured) bool {
		select {
		case out <- obj:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		list, err := dc.Resource(gvr).List(ctx, opts)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading %s/%s: %w", gvr.GroupResource(), name, err)
		}
		for i := range list.Items {
			if !send(list.Items[i].DeepCopy()) {
				return nil
			}
		}
		w, err := dc.Resource(gvr).Watch(ctx, metav1.ListOptions{FieldSelector: opts.FieldSelector,
			ResourceVersion: list.GetResourceVersion(), AllowWatchBookmarks: true})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watching %s/%s: %w", gvr.GroupResource(), name, err)
		}
		if !drain(ctx, w, send) {
			return nil
		}
	}
	return nil
}

// drain forwards a watch's objects until it closes (true: re-list) or ctx
// ends (false).
func drain(ctx context.Context, w watch.Interface, send func(*unstructured.Unstructured) bool) bool {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case ev, ok := <-w.ResultChan():
			if !ok {
				return true
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if obj, ok := ev.Object.(*unstructured.Unstructured); ok && !send(obj) {
					return false
				}
			case watch.Error:
				return true // e.g. 410 Gone: the resourceVersion expired; list again
			}
		}
	}
}
