package gateway

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// memJournal is a journal in memory.
type memJournal struct{ j journal.Journal }

func (m *memJournal) Load(context.Context) (*journal.Journal, error) { return &m.j, nil }
func (m *memJournal) PutAll(_ context.Context, es []journal.Entry) error {
	m.j.Entries = append(m.j.Entries, es...)
	return nil
}

// A re-creation whose delete went through but whose answer was lost leaves
// no Service to find by label: the plan (a dry run) finishes it from the
// journal instead of failing, and writes nothing.
func TestPlanFinishesAnInterruptedRecreation(t *testing.T) {
	j := &memJournal{j: journal.Journal{Entries: []journal.Entry{{ID: "gateway/recreate-service/istio-system/gw", Layer: Layer, Operation: OpRecreateService,
		Resource: "istio-system/gw", State: journal.Pending,
		Undo: map[string]string{"namespace": "istio-system", "name": "gw", "uid": "old-uid", "previousHostname": "old.elb.example"}}}}}
	kc := fake.NewClientset()
	r := &Runner{Kube: kc, Journal: j}
	res, err := r.Run(context.Background(), Options{Policy: corev1.IPFamilyPolicyRequireDualStack, Recreate: true, DryRun: cli.DryRunClient, Command: "kubectl dualstack"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Actions) != 1 || res.Actions[0].Kind != "recreate-service" || res.Actions[0].Status != "planned" || !strings.Contains(res.Actions[0].Detail, "journal") ||
		res.PreviousHostname != "old.elb.example" {
		t.Fatalf("plan %+v", res)
	}
	if len(j.j.Entries) != 1 || j.j.Entries[0].State != journal.Pending {
		t.Fatalf("a plan wrote the journal: %+v", j.j.Entries)
	}

	// The old Service is still there, never deleted: planned as usual (here:
	// no gateway found by label, as the fake has none labelled).
	if _, err := kc.CoreV1().Services("istio-system").Create(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "istio-system", UID: "old-uid"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Run(context.Background(), Options{Recreate: true, DryRun: cli.DryRunClient, Command: "kubectl dualstack"}); err == nil && res != nil && len(res.Actions) == 1 && strings.Contains(res.Actions[0].Detail, "journal") {
		t.Fatalf("a Service that was never deleted was planned as re-created from the journal: %+v", res)
	}
}
