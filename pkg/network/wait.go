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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
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
// polling, kube.Wait: client-go's UntilWithSync on each) until goal is
// reached, the operator degrades (when the goal says so), or timeout. update
// is called with every new state. A read that retrying cannot fix (RBAC, no
// such resource) fails at once, naming the verb and the resource.
func Wait(ctx context.Context, dc dynamic.Interface, goal Goal, timeout time.Duration, update func(Observed)) (Observed, error) {
	network := kube.Watched{What: NetworkResource,
		LW: kube.NamedLW(dc, platform.NetworksGVR, "", NetworkConfigName), Type: &unstructured.Unstructured{}}
	operator := kube.Watched{What: platform.ClusterOperatorsGVR.GroupResource().String() + "/" + OperatorName,
		LW: kube.NamedLW(dc, platform.ClusterOperatorsGVR, "", OperatorName), Type: &unstructured.Unstructured{}}
	var seen Observed
	err := kube.Wait(ctx, timeout, func(objs []map[string]runtime.Object) (bool, error) {
		seen = Observed{}
		if obj := named(objs[0], NetworkConfigName); obj != nil {
			seen.Network = NetworkConfigFrom(obj)
		}
		if obj := named(objs[1], OperatorName); obj != nil {
			seen.Operator = OperatorStatusFrom(obj)
		}
		if update != nil {
			update(seen)
		}
		if goal.FailOnDegraded && seen.Operator.Degraded == "True" {
			return false, &DegradedError{Operator: seen.Operator}
		}
		return goal.reached(seen), nil
	}, network, operator)
	var timedOut *kube.TimeoutError
	if errors.As(err, &timedOut) {
		var failing string
		if timedOut.Failing != nil {
			failing = "; still retrying after " + timedOut.Failing.Error()
		}
		return seen, fmt.Errorf("%w after %s; last seen: %s%s", ErrTimeout, timeout, seen.Describe(), failing)
	}
	return seen, err
}

// named is the cluster-scoped object called name among objs (the list is by
// name already; a server that ignored the field selector is harmless).
func named(objs map[string]runtime.Object, name string) *unstructured.Unstructured {
	obj, _ := objs["/"+name].(*unstructured.Unstructured)
	return obj
}
