package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Layer is the journal layer of the IngressController change.
const Layer = "router"

// OpPatch is the journal operation of the IngressController patch.
const OpPatch = "patch-ingresscontroller"

// JournalID is the one entry of the layer.
const JournalID = Layer + "/" + OpPatch + "/" + Namespace + "/" + Name

// Plan actions.
const (
	ActionChange  = "change"
	ActionNothing = "nothing"
)

// ErrChanged is an IngressController that changed since the plan.
var ErrChanged = errors.New("changed since the plan: plan again (nothing was overwritten)")

// Plan is what the router change would do.
type Plan struct {
	Action  string `json:"action"`
	Summary string `json:"summary"`
	Current State  `json:"current"`
	// Patch is the JSON merge patch of the IngressController (with the
	// resourceVersion the plan read when applied).
	Patch string   `json:"patch,omitempty"`
	Notes []string `json:"notes,omitempty"`
}

// Ref names the IngressController.
const Ref = "ingresscontroller " + Namespace + "/" + Name

// nlbPatch is the documented change: providerParameters type AWS, aws.type NLB.
func nlbPatch(resourceVersion string) []byte {
	p := map[string]any{"spec": map[string]any{"endpointPublishingStrategy": map[string]any{"loadBalancer": map[string]any{
		"providerParameters": map[string]any{"type": "AWS", "aws": map[string]any{"type": TypeNLB}}}}}}
	if resourceVersion != "" {
		p["metadata"] = map[string]any{"resourceVersion": resourceVersion}
	}
	b, _ := json.Marshal(p)
	return b
}

// MakePlan judges st.
func MakePlan(st *State) *Plan {
	p := &Plan{Action: ActionNothing, Current: *st}
	switch {
	case !st.Found:
		p.Summary = "no default IngressController (" + Namespace + "/" + Name + "): not OpenShift, or its ingress operator's API is not served; nothing to change"
	case st.Strategy != "LoadBalancerService":
		p.Summary = fmt.Sprintf("the default IngressController publishes its router as %s, not through a cloud load balancer; nothing to change", orUnset(st.Strategy))
	case st.EffectiveLBType() == TypeNLB:
		p.Summary = "the default IngressController already asks for an NLB"
		if st.Service != nil && !st.Service.NLB {
			p.Summary += "; its router Service still has its Classic ELB: the ingress operator is re-creating it"
		}
	default:
		p.Action = ActionChange
		p.Patch = string(nlbPatch(""))
		old := "its Classic ELB"
		if st.Service != nil && st.Service.Hostname != "" {
			old += " " + st.Service.Hostname
		}
		p.Summary = fmt.Sprintf("patch %s: endpointPublishingStrategy.loadBalancer.providerParameters.aws.type Classic -> NLB, so the router (*.apps, the console, OAuth) can get a dual-stack load balancer", Ref)
		p.Notes = []string{
			"the ingress operator owns " + ServiceNamespace + "/" + ServiceName + " and re-creates it: " + old + " is deleted and an NLB made; this tool never patches that Service",
			"*.apps, the console and OAuth are unreachable for minutes, until the new NLB answers and the *.apps records follow it",
			"the router's hostname changes: anything outside the cluster that names the old one (a CNAME, an allow-list) must follow",
			"the new NLB is IPv4 until `aws apply` (or upgrade's aws phase) makes it dualstack",
			"rollback restores the previous providerParameters exactly; the operator then re-creates the Service behind a Classic ELB: another outage, another hostname",
		}
	}
	return p
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// Result is what Apply or Rollback did.
type Result struct {
	Status string `json:"status"` // changed, already, undone, skipped, failed
	// HostnameBefore and HostnameAfter are the router Service's.
	HostnameBefore string `json:"hostnameBefore,omitempty"`
	HostnameAfter  string `json:"hostnameAfter,omitempty"`
	Message        string `json:"message,omitempty"`
}

// Journal is where the previous providerParameters are recorded.
type Journal interface {
	Load(ctx context.Context) (*journal.Journal, error)
	PutAll(ctx context.Context, entries []journal.Entry) error
}

// Changer applies and takes back the router change.
type Changer struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Journal Journal
	// Timeout bounds the wait for the operator's new Service.
	Timeout time.Duration
	// Progress, when set, hears how the wait goes.
	Progress func(string)
}

func (c *Changer) progress(msg string) {
	if c.Progress != nil {
		c.Progress(msg)
	}
}

// Apply patches the IngressController as planned (the plan's
// resourceVersion: a change since is ErrChanged), journalled first, then
// waits until the ingress operator has re-created the router Service with
// an NLB and its load balancer has a hostname.
func (c *Changer) Apply(ctx context.Context, p *Plan) (*Result, error) {
	if p.Action != ActionChange {
		return &Result{Status: "already", Message: p.Summary}, nil
	}
	res := &Result{}
	var oldSvc types.UID
	if s := p.Current.Service; s != nil {
		res.HostnameBefore, oldSvc = s.Hostname, s.UID
	}
	entry := journal.Entry{ID: JournalID, Layer: Layer, Operation: OpPatch, Resource: "ingresscontroller/" + Namespace + "/" + Name, State: journal.Pending,
		Undo: map[string]string{"uid": string(p.Current.UID), "plannedResourceVersion": p.Current.ResourceVersion,
			"original": p.Current.ProviderParameters, "serviceUID": string(oldSvc), "hostnameBefore": res.HostnameBefore}}
	if err := c.Journal.PutAll(ctx, []journal.Entry{entry}); err != nil {
		return nil, fmt.Errorf("recording the previous providerParameters in the journal before the patch (nothing was changed): %w", err)
	}
	ics := c.Dynamic.Resource(IngressControllersGVR).Namespace(Namespace)
	got, err := ics.Patch(ctx, Name, types.MergePatchType, nlbPatch(p.Current.ResourceVersion), metav1.PatchOptions{})
	if err != nil {
		if kube.Refused(err) {
			entry.State = journal.Failed
			entry.Undo["notMade"] = err.Error()
			_ = putFinal(ctx, c.Journal, entry)
		}
		if apierrors.IsConflict(err) {
			return nil, fmt.Errorf("%s: %w", Ref, ErrChanged)
		}
		return nil, kube.Explain("patching "+Ref, err)
	}
	if got.GetUID() != p.Current.UID {
		return nil, fmt.Errorf("%s was re-created since the plan: %w", Ref, ErrChanged)
	}
	pp, _, _ := unstructured.NestedMap(got.Object, providerPath...)
	b, _ := json.Marshal(pp)
	entry.State = journal.Done
	entry.Undo["applied"] = string(b)
	entry.Undo["appliedResourceVersion"] = got.GetResourceVersion()
	if err := putFinal(ctx, c.Journal, entry); err != nil {
		return nil, fmt.Errorf("patched %s but could not record it as done in the journal (its pending entry stays, so rollback still finds it): %w", Ref, err)
	}
	res.Status = "changed"
	svc, err := c.waitService(ctx, oldSvc, true)
	if err != nil {
		res.Message = fmt.Sprintf("patched %s (journalled); %v", Ref, err)
		return res, errors.New(res.Message)
	}
	res.HostnameAfter = svc.Hostname
	res.Message = fmt.Sprintf("the ingress operator re-created %s/%s behind an NLB: %s (was %s)", ServiceNamespace, ServiceName, svc.Hostname, orUnset(res.HostnameBefore))
	return res, nil
}

var servicesGVR = schema.GroupVersionResource{Version: "v1", Resource: "services"}

// waitService follows the router Service until it is another one than
// old, of the wanted kind, with a load balancer hostname.
func (c *Changer) waitService(ctx context.Context, old types.UID, nlb bool) (*ServiceState, error) {
	kind := map[bool]string{true: "an NLB", false: "a Classic ELB"}[nlb]
	c.progress(fmt.Sprintf("waiting for the ingress operator to re-create %s/%s with %s (timeout %s)", ServiceNamespace, ServiceName, kind, c.Timeout))
	var found *ServiceState
	err := kube.WaitAll(ctx, kube.NamedLW(c.Dynamic, servicesGVR, ServiceNamespace, ServiceName), &unstructured.Unstructured{}, c.Timeout,
		func(objs map[string]runtime.Object) (bool, error) {
			o, ok := objs[ServiceNamespace+"/"+ServiceName].(*unstructured.Unstructured)
			if !ok {
				c.progress("the router Service is deleted; waiting for the ingress operator to create it again")
				return false, nil
			}
			var svc corev1.Service
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &svc); err != nil {
				return false, err
			}
			s := serviceState(&svc)
			if s.UID == old || s.NLB != nlb || svc.DeletionTimestamp != nil {
				return false, nil
			}
			if s.Hostname == "" {
				c.progress("the router Service is re-created; waiting for its load balancer")
				return false, nil
			}
			found = s
			return true, nil
		})
	if err != nil {
		return nil, fmt.Errorf("the ingress operator has not re-created %s/%s with %s and its load balancer: %w", ServiceNamespace, ServiceName, kind, err)
	}
	return found, nil
}

// putFinal records an entry even after Ctrl-C.
func putFinal(ctx context.Context, j Journal, e journal.Entry) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return j.PutAll(wctx, []journal.Entry{e})
}

// Undoable is the layer's entries rollback takes back.
func Undoable(j *journal.Journal) []journal.Entry { return j.Undoable(Layer) }

func sameJSON(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	return reflect.DeepEqual(x, y)
}

// Rollback puts the previous providerParameters back exactly (removing
// them if there were none), provided the IngressController still holds
// what this tool set; then waits for the operator to re-create the router
// Service with the load balancer type it had.
func (c *Changer) Rollback(ctx context.Context) ([]journal.UndoResult, error) {
	jr, err := c.Journal.Load(ctx)
	if err != nil {
		return nil, err
	}
	var out []journal.UndoResult
	for _, e := range Undoable(jr) {
		r := journal.UndoResult{Operation: e.Operation, Resource: e.Resource}
		status, msg, err := c.undo(ctx, e)
		if err != nil {
			r.Status, r.Message = "failed", err.Error()
			out = append(out, r)
			return out, fmt.Errorf("router rollback: %w", err)
		}
		r.Status, r.Message = status, msg
		out = append(out, r)
		e.State = journal.Undone
		e.Undo = maps.Clone(e.Undo)
		e.Undo["rollbackNote"] = msg
		if err := putFinal(ctx, c.Journal, e); err != nil {
			return out, fmt.Errorf("router rollback: restored %s but could not record it in the journal (a re-run finds it restored): %w", Ref, err)
		}
	}
	return out, nil
}

func (c *Changer) undo(ctx context.Context, e journal.Entry) (string, string, error) {
	ics := c.Dynamic.Resource(IngressControllersGVR).Namespace(Namespace)
	original, applied := e.Undo["original"], e.Undo["applied"]
	for attempt := 0; ; attempt++ {
		ic, err := ics.Get(ctx, Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return "skipped", Ref + " no longer exists; left alone", nil
		case err != nil:
			return "", "", kube.Explain("reading "+Ref, err)
		case ic.GetUID() != types.UID(e.Undo["uid"]):
			return "skipped", Ref + " was re-created since (another UID); left alone", nil
		}
		cur := ""
		if pp, ok, _ := unstructured.NestedMap(ic.Object, providerPath...); ok {
			b, _ := json.Marshal(pp)
			cur = string(b)
		}
		switch {
		case sameJSON(cur, original):
			return "skipped", "already as before", nil
		case applied != "" && !sameJSON(cur, applied):
			return "skipped", fmt.Sprintf("%s was changed by someone else since this tool patched it; left alone (its previous providerParameters are in the journal entry %s)", Ref, e.ID), nil
		}
		ops := []map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": ic.GetResourceVersion()}}
		path := "/spec/endpointPublishingStrategy/loadBalancer/providerParameters"
		if original == "" {
			ops = append(ops, map[string]any{"op": "remove", "path": path})
		} else {
			var v any
			if err := json.Unmarshal([]byte(original), &v); err != nil {
				return "", "", fmt.Errorf("the journal's previous providerParameters are not JSON: %w", err)
			}
			op := "replace"
			if cur == "" {
				op = "add"
			}
			ops = append(ops, map[string]any{"op": op, "path": path, "value": v})
		}
		patch, _ := json.Marshal(ops)
		_, err = ics.Patch(ctx, Name, types.JSONPatchType, patch, metav1.PatchOptions{})
		if (apierrors.IsConflict(err) || apierrors.IsInvalid(err)) && attempt < 3 {
			continue // the test failed: read again and judge afresh
		}
		if err != nil {
			return "", "", kube.Explain("restoring the previous providerParameters of "+Ref, err)
		}
		var wasNLB bool
		if original != "" {
			var pp struct {
				AWS struct {
					Type string `json:"type"`
				} `json:"aws"`
			}
			_ = json.Unmarshal([]byte(original), &pp)
			wasNLB = pp.AWS.Type == TypeNLB
		}
		st, err := Read(ctx, c.Kube, c.Dynamic)
		var now types.UID
		if err == nil && st.Service != nil {
			now = st.Service.UID
		}
		if err == nil && st.Service != nil && st.Service.NLB == wasNLB && st.Service.Hostname != "" {
			return "undone", "restored the previous providerParameters", nil
		}
		svc, err := c.waitService(ctx, now, wasNLB)
		if err != nil {
			return "undone", fmt.Sprintf("restored the previous providerParameters; %v", err), nil
		}
		return "undone", "restored the previous providerParameters; the ingress operator re-created the router Service: " + svc.Hostname, nil
	}
}
