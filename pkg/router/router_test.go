package router

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

func ingressController(providerParameters map[string]any) *unstructured.Unstructured {
	lb := map[string]any{"scope": "External"}
	if providerParameters != nil {
		lb["providerParameters"] = providerParameters
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
		"metadata": map[string]any{"namespace": Namespace, "name": Name, "uid": "ic-uid", "resourceVersion": "7"},
		"spec":     map[string]any{"endpointPublishingStrategy": map[string]any{"type": "LoadBalancerService", "loadBalancer": lb}},
	}}
	return u
}

func routerSvc(nlb bool, host string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ServiceNamespace, Name: ServiceName, UID: "svc-uid"}}
	if nlb {
		s.Annotations = map[string]string{AnnotationLBType: "nlb"}
	}
	s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: host}}
	return s
}

func dyn(objs ...runtime.Object) *dynfake.FakeDynamicClient {
	return dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{IngressControllersGVR: "IngressControllerList", {Version: "v1", Resource: "services"}: "ServiceList"}, objs...)
}

func TestMakePlan(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		ic     *unstructured.Unstructured
		svc    *corev1.Service
		action string
		says   string
	}{
		{"classic by default", ingressController(nil), routerSvc(false, "a1.elb"), ActionChange, "Classic -> NLB"},
		{"classic named", ingressController(map[string]any{"type": "AWS", "aws": map[string]any{"type": "Classic"}}), routerSvc(false, "a1.elb"), ActionChange, "Classic -> NLB"},
		{"NLB already", ingressController(map[string]any{"type": "AWS", "aws": map[string]any{"type": "NLB"}}), routerSvc(true, "n1.elb"), ActionNothing, "already asks for an NLB"},
		{"NLB asked, Service not yet re-created", ingressController(map[string]any{"type": "AWS", "aws": map[string]any{"type": "NLB"}}), routerSvc(false, "a1.elb"), ActionNothing, "re-creating it"},
		{"no IngressController", nil, nil, ActionNothing, "no default IngressController"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var objs []runtime.Object
			if tc.ic != nil {
				objs = append(objs, tc.ic)
			}
			var kobjs []runtime.Object
			if tc.svc != nil {
				kobjs = append(kobjs, tc.svc)
			}
			st, err := Read(ctx, fake.NewClientset(kobjs...), dyn(objs...))
			if err != nil {
				t.Fatal(err)
			}
			p := MakePlan(st)
			if p.Action != tc.action || !strings.Contains(p.Summary, tc.says) {
				t.Fatalf("%s %q, want %s with %q", p.Action, p.Summary, tc.action, tc.says)
			}
			if p.Action == ActionChange {
				notes := strings.Join(p.Notes, "\n")
				for _, want := range []string{"re-creates it", "unreachable for minutes", "hostname changes", "never patches that Service"} {
					if !strings.Contains(notes, want) {
						t.Errorf("the plan does not say %q:\n%s", want, notes)
					}
				}
			}
		})
	}
}

type memJournal struct{ j journal.Journal }

func (m *memJournal) Load(context.Context) (*journal.Journal, error) {
	return &journal.Journal{Entries: append([]journal.Entry(nil), m.j.Entries...)}, nil
}

func (m *memJournal) PutAll(_ context.Context, es []journal.Entry) error {
	for _, e := range es {
		found := false
		for i := range m.j.Entries {
			if m.j.Entries[i].ID == e.ID {
				m.j.Entries[i], found = e, true
			}
		}
		if !found {
			m.j.Entries = append(m.j.Entries, e)
		}
	}
	return nil
}

// TestRollbackRestoresExactly: the previous providerParameters come back as
// they were (absent ones removed), and an IngressController changed by
// someone else since is left alone.
func TestRollbackRestoresExactly(t *testing.T) {
	ctx := context.Background()
	applied := map[string]any{"type": "AWS", "aws": map[string]any{"type": "NLB"}}
	appliedJSON, _ := json.Marshal(applied)
	classic := map[string]any{"type": "AWS", "aws": map[string]any{"type": "Classic", "classicLoadBalancer": map[string]any{"connectionIdleTimeout": "2m"}}}
	classicJSON, _ := json.Marshal(classic)
	for _, tc := range []struct {
		name     string
		original string
		current  map[string]any
		status   string
		want     string // the providerParameters after, as JSON ("" absent)
	}{
		{"absent before: removed", "", applied, "undone", ""},
		{"Classic with its parameters before: put back", string(classicJSON), applied, "undone", string(classicJSON)},
		{"changed by someone else since: left alone", "", map[string]any{"type": "AWS", "aws": map[string]any{"type": "NLB", "networkLoadBalancer": map[string]any{}}}, "skipped", `{"aws":{"networkLoadBalancer":{},"type":"NLB"},"type":"AWS"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dc := dyn(ingressController(tc.current))
			kc := fake.NewClientset(routerSvc(false, "a2.elb")) // the operator already re-created it
			j := &memJournal{}
			_ = j.PutAll(ctx, []journal.Entry{{ID: JournalID, Layer: Layer, Operation: OpPatch, Resource: "ingresscontroller/default", State: journal.Done,
				Undo: map[string]string{"uid": "ic-uid", "original": tc.original, "applied": string(appliedJSON)}}})
			res, err := (&Changer{Kube: kc, Dynamic: dc, Journal: j}).Rollback(ctx)
			if err != nil || len(res) != 1 || res[0].Status != tc.status {
				t.Fatalf("rollback: %v %+v", err, res)
			}
			st, err := Read(ctx, kc, dc)
			if err != nil {
				t.Fatal(err)
			}
			if st.ProviderParameters != tc.want {
				t.Fatalf("providerParameters after: %s, want %s", st.ProviderParameters, tc.want)
			}
			if e, _ := j.j.Get(JournalID); e.State != journal.Undone {
				t.Fatalf("journal entry: %+v", e)
			}
		})
	}
}
