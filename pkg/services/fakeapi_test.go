package services

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
)

// fakeAPI is a client-go fake whose Service patches follow the
// kube-apiserver's rules for families (pkg/registry/core/service/storage,
// initIPFamilyFields) closely enough for this package: resourceVersion
// preconditions, families the cluster's service ranges lack refused as
// "not configured on this cluster", the second cluster IP allocated or
// released, a PreferDualStack Service given both families whenever its
// policy changes on a dual-stack cluster, server-side dry runs not stored.
// The e2e test checks the same against the real apiserver.
type fakeAPI struct {
	*fake.Clientset
	mu      sync.Mutex
	dual    bool // the cluster has an IPv6 service range
	rv      int
	nextIP  int
	patches []patchCall // every patch, in order
}

type patchCall struct {
	ref    string
	body   string
	dryRun bool
}

func newFakeAPI(t *testing.T, dual bool, objs ...runtime.Object) *fakeAPI {
	t.Helper()
	f := &fakeAPI{Clientset: fake.NewClientset(), dual: dual, rv: 100, nextIP: 1}
	for _, o := range objs {
		if svc, ok := o.(*corev1.Service); ok {
			svc.ResourceVersion = f.bump()
			if svc.UID == "" {
				svc.UID = types.UID("uid-" + svc.Namespace + "-" + svc.Name)
			}
		}
		if err := f.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	f.PrependReactor("patch", "services", f.patchService)
	return f
}

func (f *fakeAPI) bump() string {
	f.rv++
	return strconv.Itoa(f.rv)
}

var svcGVR = corev1.SchemeGroupVersion.WithResource("services")

func (f *fakeAPI) get(ns, name string) *corev1.Service {
	o, err := f.Tracker().Get(svcGVR, ns, name)
	if err != nil {
		return nil
	}
	return o.(*corev1.Service)
}

// touch changes a Service behind the plan's back.
func (f *fakeAPI) touch(t *testing.T, ns, name string, change func(*corev1.Service)) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	svc := f.get(ns, name).DeepCopy()
	change(svc)
	svc.ResourceVersion = f.bump()
	if err := f.Tracker().Update(svcGVR, svc, ns); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeAPI) realPatches() []patchCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []patchCall
	for _, p := range f.patches {
		if !p.dryRun {
			out = append(out, p)
		}
	}
	return out
}

func (f *fakeAPI) patchService(action k8stesting.Action) (bool, runtime.Object, error) {
	pa := action.(k8stesting.PatchActionImpl)
	f.mu.Lock()
	defer f.mu.Unlock()
	dry := slices.Contains(pa.PatchOptions.DryRun, metav1.DryRunAll)
	f.patches = append(f.patches, patchCall{ref: pa.GetNamespace() + "/" + pa.GetName(), body: string(pa.GetPatch()), dryRun: dry})
	old := f.get(pa.GetNamespace(), pa.GetName())
	if old == nil {
		return true, nil, apierrors.NewNotFound(corev1.Resource("services"), pa.GetName())
	}
	if pa.GetPatchType() != types.MergePatchType {
		return true, nil, fmt.Errorf("fake: only merge patches, got %s", pa.GetPatchType())
	}
	var p struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Spec struct {
			IPFamilyPolicy *corev1.IPFamilyPolicy `json:"ipFamilyPolicy"`
			IPFamilies     []corev1.IPFamily      `json:"ipFamilies"`
			ClusterIPs     []string               `json:"clusterIPs"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(pa.GetPatch(), &p); err != nil {
		return true, nil, apierrors.NewBadRequest(err.Error())
	}
	if rv := p.Metadata.ResourceVersion; rv != "" && rv != old.ResourceVersion {
		return true, nil, apierrors.NewConflict(corev1.Resource("services"), old.Name, fmt.Errorf("the object has been modified"))
	}
	svc := old.DeepCopy()
	if p.Spec.IPFamilyPolicy != nil {
		svc.Spec.IPFamilyPolicy = p.Spec.IPFamilyPolicy
	}
	if p.Spec.IPFamilies != nil {
		svc.Spec.IPFamilies = p.Spec.IPFamilies
	}
	if p.Spec.ClusterIPs != nil {
		svc.Spec.ClusterIPs = p.Spec.ClusterIPs
	}
	if err := f.families(old, svc); err != nil {
		return true, nil, err
	}
	if !dry {
		svc.ResourceVersion = f.bump()
		if err := f.Tracker().Update(svcGVR, svc, svc.Namespace); err != nil {
			return true, nil, err
		}
	}
	return true, svc, nil
}

// families applies the apiserver's rules to an update of old into svc.
func (f *fakeAPI) families(old, svc *corev1.Service) error {
	invalid := func(path string, v any, msg string) error {
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name,
			field.ErrorList{field.Invalid(field.NewPath("spec").Child(path), v, msg)})
	}
	policy := *svc.Spec.IPFamilyPolicy
	headless := svc.Spec.ClusterIP == corev1.ClusterIPNone
	preferUnchanged := policy == corev1.IPFamilyPolicyPreferDualStack && old.Spec.IPFamilyPolicy != nil &&
		*old.Spec.IPFamilyPolicy == policy && slices.Equal(old.Spec.IPFamilies, svc.Spec.IPFamilies) && slices.Equal(old.Spec.ClusterIPs, svc.Spec.ClusterIPs)
	if preferUnchanged {
		return nil
	}
	if policy == corev1.IPFamilyPolicySingleStack {
		if slices.Equal(old.Spec.ClusterIPs, svc.Spec.ClusterIPs) && len(svc.Spec.ClusterIPs) > 1 {
			svc.Spec.ClusterIPs = svc.Spec.ClusterIPs[:1]
		}
		if slices.Equal(old.Spec.IPFamilies, svc.Spec.IPFamilies) && len(svc.Spec.IPFamilies) > 1 {
			svc.Spec.IPFamilies = svc.Spec.IPFamilies[:1]
		}
		if len(svc.Spec.IPFamilies) == 2 {
			return invalid("ipFamilyPolicy", policy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified")
		}
	} else if len(svc.Spec.IPFamilies) < len(old.Spec.IPFamilies) {
		return invalid("ipFamilyPolicy", policy, "must be 'SingleStack' to release the secondary IP family")
	}
	if policy == corev1.IPFamilyPolicyRequireDualStack && !f.dual {
		return invalid("ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services")
	}
	for i, fam := range svc.Spec.IPFamilies {
		if fam == corev1.IPv6Protocol && !f.dual {
			return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name,
				field.ErrorList{field.Invalid(field.NewPath("spec", "ipFamilies").Index(i), fam, "not configured on this cluster")})
		}
	}
	if policy != corev1.IPFamilyPolicySingleStack && len(svc.Spec.IPFamilies) == 1 && f.dual {
		other := corev1.IPv6Protocol
		if svc.Spec.IPFamilies[0] == corev1.IPv6Protocol {
			other = corev1.IPv4Protocol
		}
		svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, other)
	}
	if headless {
		return nil
	}
	if len(svc.Spec.ClusterIPs) > len(svc.Spec.IPFamilies) {
		svc.Spec.ClusterIPs = svc.Spec.ClusterIPs[:len(svc.Spec.IPFamilies)]
	}
	for len(svc.Spec.ClusterIPs) < len(svc.Spec.IPFamilies) {
		f.nextIP++
		if svc.Spec.IPFamilies[len(svc.Spec.ClusterIPs)] == corev1.IPv6Protocol {
			svc.Spec.ClusterIPs = append(svc.Spec.ClusterIPs, fmt.Sprintf("fd02::%x", f.nextIP))
		} else {
			svc.Spec.ClusterIPs = append(svc.Spec.ClusterIPs, fmt.Sprintf("10.96.1.%d", f.nextIP))
		}
	}
	return nil
}

// memJournal is a journal in memory that remembers every write, so tests
// can see what was recorded before each patch.
type memJournal struct {
	mu      sync.Mutex
	entries []journal.Entry
	writes  [][]journal.Entry
	// onWrite, when set, runs at each write (to interleave with patches).
	onWrite func([]journal.Entry)
	fail    error
}

func (m *memJournal) Load(context.Context) (*journal.Journal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j := &journal.Journal{}
	for _, e := range m.entries {
		j.Entries = append(j.Entries, e)
	}
	return j, nil
}

func (m *memJournal) PutAll(_ context.Context, entries []journal.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.writes = append(m.writes, slices.Clone(entries))
	if m.onWrite != nil {
		m.onWrite(entries)
	}
	for _, e := range entries {
		i := slices.IndexFunc(m.entries, func(x journal.Entry) bool { return x.ID == e.ID })
		if i >= 0 {
			e.Seq = m.entries[i].Seq
			m.entries[i] = e
			continue
		}
		e.Seq = len(m.entries) + 1
		m.entries = append(m.entries, e)
	}
	return nil
}

func (m *memJournal) get(id string) (journal.Entry, bool) {
	j, _ := m.Load(context.Background())
	return j.Get(id)
}
