package convert

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/workloads"
)

func node(name, providerID string, podCIDRs ...string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{ProviderID: providerID, PodCIDRs: podCIDRs}}
}

// The workloads phase runs after the network while the pod network lacks
// IPv6 and the network phase still changes something; a network already
// converted whose plugin lags is not a reason to wait for the network
// phase (Apply waits for the pod CIDRs instead).
func TestWorkloadsAfterNetworkOnlyWhileItChanges(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-x", UID: "rs", Controller: ptrTrue()}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.128.0.5", PodIPs: []corev1.PodIP{{IP: "10.128.0.5"}}}}
	kc := fake.NewClientset(pod)
	v4 := []corev1.Node{node("a", "", "10.128.0.0/23")}
	dual := []corev1.Node{node("a", "", "10.128.0.0/23", "fd01:0:0:1::/64")}
	for _, tc := range []struct {
		name      string
		nodes     []corev1.Node
		network   *PhasePlan
		wantAfter string
	}{
		{"network still to change", v4, &PhasePlan{Action: ActionChange}, PhaseNetwork},
		{"network not selected", v4, nil, PhaseNetwork},
		{"network already converted, plugin lagging", v4, &PhasePlan{Action: ActionNothing}, ""},
		{"pod network has IPv6", dual, &PhasePlan{Action: ActionChange}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &Facts{Clients: &kube.Clients{Kube: kc}, Nodes: tc.nodes, planned: map[string]PhasePlan{}}
			if tc.network != nil {
				f.planned[PhaseNetwork] = *tc.network
			}
			p, err := (&WorkloadsPhase{Options: workloads.Options{MaxUnavailable: 1}}).Plan(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			if p.Action != ActionChange || p.Workloads == nil || p.Workloads.Evicts != 1 {
				t.Fatalf("plan %+v", p)
			}
			if p.After != tc.wantAfter {
				t.Errorf("after %q, want %q (%s)", p.After, tc.wantAfter, p.Summary)
			}
		})
	}
}

func ptrTrue() *bool { b := true; return &b }

// eniIPv6 maps each node to its instance's primary ENI's IPv6 addresses
// through the providerID; a node whose instance is not in the discovery
// has none, and without a discovery nothing is known.
func TestENIIPv6ByNode(t *testing.T) {
	f := &Facts{Nodes: []corev1.Node{
		node("n1", "aws:///us-east-1a/i-1"), node("n2", "aws:///us-east-1b/i-2"), node("bare", ""),
	}}
	if eniIPv6(nil, f) != nil {
		t.Error("no discovery: want nil (unknown)")
	}
	inv := &awsx.Inventory{
		Instances: []awsx.Instance{{ID: "i-1", PrimaryENI: "eni-1"}, {ID: "i-2", PrimaryENI: "eni-2"}, {ID: "i-9", PrimaryENI: "eni-9"}},
		NetworkInterfaces: []awsx.ENI{
			{ID: "eni-1", InstanceID: "i-1", Primary: true, IPv6Addresses: []string{"2600::1"}},
			{ID: "eni-2", InstanceID: "i-2", Primary: true},
			{ID: "eni-9", InstanceID: "i-9", Primary: true, IPv6Addresses: []string{"2600::9"}},
		},
	}
	got := eniIPv6(inv, f)
	if len(got) != 2 || len(got["n1"]) != 1 || got["n1"][0] != "2600::1" || len(got["n2"]) != 0 {
		t.Errorf("eniIPv6 = %v", got)
	}
	if _, ok := got["bare"]; ok {
		t.Errorf("a node without a providerID got ENI addresses: %v", got)
	}
}
