package harness

import (
	"context"
	"fmt"
	"sort"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// PDBRecord is what a PDBWatch saw of one PodDisruptionBudget's status, as
// the disruption controller wrote it.
type PDBRecord struct {
	// Satisfied: once seen with its status computed for the current spec
	// (observedGeneration == generation) and currentHealthy >= desiredHealthy.
	Satisfied bool
	// MinMargin is the least currentHealthy - desiredHealthy seen since it
	// was Satisfied (its value at that moment when nothing lower came).
	MinMargin int32
	// Violations counts the statuses seen, once Satisfied, with
	// currentHealthy < desiredHealthy.
	Violations int
	// Last is the last status seen.
	Last policyv1.PodDisruptionBudgetStatus

	lastRV string // the resourceVersion Last came with
}

// WorkloadRecord is what a PDBWatch saw of one Deployment or StatefulSet
// whose pods a PDB selects: its pods that are Ready and not being deleted.
type WorkloadRecord struct {
	Kind, Namespace, Name string
	Replicas              int32
	// Reached: once seen with Replicas such pods.
	Reached bool
	// MinReady is the least count seen since it Reached.
	MinReady int
	Ready    int // the last count
}

// PDBWatch follows PDBs, pods, Deployments and StatefulSets (informers on
// every namespace) and records, on every change, each PDB's margin and each
// covered workload's Ready pods, so a test can check that no budget was
// ever broken while the tool evicted pods.
type PDBWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	pods  cache.Indexer
	pdbs  cache.Indexer
	deps  cache.Indexer
	stss  cache.Indexer
	mu    sync.Mutex
	pdbR  map[string]*PDBRecord      // ns/name
	loadR map[string]*WorkloadRecord // Kind/ns/name
}

// StartPDBWatch starts the watch and returns once its caches are filled
// and a first record is taken.
func StartPDBWatch(ctx context.Context, kc kubernetes.Interface) (*PDBWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &PDBWatch{cancel: cancel, done: make(chan struct{}), pdbR: map[string]*PDBRecord{}, loadR: map[string]*WorkloadRecord{}}
	f := informers.NewSharedInformerFactory(kc, 0)
	pods, pdbs := f.Core().V1().Pods().Informer(), f.Policy().V1().PodDisruptionBudgets().Informer()
	deps, stss := f.Apps().V1().Deployments().Informer(), f.Apps().V1().StatefulSets().Informer()
	w.pods, w.pdbs, w.deps, w.stss = pods.GetIndexer(), pdbs.GetIndexer(), deps.GetIndexer(), stss.GetIndexer()
	synced := false
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.recordIf(&synced) },
		UpdateFunc: func(any, any) { w.recordIf(&synced) },
		DeleteFunc: func(any) { w.recordIf(&synced) },
	}
	for _, inf := range []cache.SharedIndexInformer{pods, pdbs, deps, stss} {
		if _, err := inf.AddEventHandler(h); err != nil {
			cancel()
			return nil, err
		}
	}
	f.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		f.Shutdown()
		close(w.done)
	}()
	if !cache.WaitForCacheSync(ctx.Done(), pods.HasSynced, pdbs.HasSynced, deps.HasSynced, stss.HasSynced) {
		cancel()
		<-w.done
		return nil, fmt.Errorf("the PDB watch's caches did not sync: %w", ctx.Err())
	}
	w.mu.Lock()
	synced = true
	w.mu.Unlock()
	w.recordIf(&synced)
	return w, nil
}

// Stop ends the watch.
func (w *PDBWatch) Stop() {
	w.cancel()
	<-w.done
}

// recordIf takes a record once the caches are filled (a half-filled cache
// would show budgets and workloads short of pods they have).
func (w *PDBWatch) recordIf(synced *bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if *synced {
		w.record()
	}
}

func (w *PDBWatch) record() {
	var selectors []struct {
		ns  string
		sel labels.Selector
	}
	for _, o := range w.pdbs.List() {
		p := o.(*policyv1.PodDisruptionBudget)
		if sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector); err == nil && !sel.Empty() {
			selectors = append(selectors, struct {
				ns  string
				sel labels.Selector
			}{p.Namespace, sel})
		}
		key := p.Namespace + "/" + p.Name
		r := w.pdbR[key]
		if r == nil {
			r = &PDBRecord{}
			w.pdbR[key] = r
		}
		if p.ResourceVersion == r.lastRV {
			continue // another object changed; this one was recorded
		}
		r.Last, r.lastRV = p.Status, p.ResourceVersion
		margin := p.Status.CurrentHealthy - p.Status.DesiredHealthy
		switch {
		case !r.Satisfied && p.Status.ObservedGeneration == p.Generation && margin >= 0:
			r.Satisfied, r.MinMargin = true, margin
		case r.Satisfied && margin < r.MinMargin:
			r.MinMargin = margin
		}
		if r.Satisfied && margin < 0 {
			r.Violations++
		}
	}
	covered := func(ns string, l map[string]string) bool {
		for _, s := range selectors {
			if s.ns == ns && s.sel.Matches(labels.Set(l)) {
				return true
			}
		}
		return false
	}
	type workload struct {
		kind     string
		meta     metav1.ObjectMeta
		replicas int32
		selector *metav1.LabelSelector
		template map[string]string
	}
	var loads []workload
	for _, o := range w.deps.List() {
		d := o.(*appsv1.Deployment)
		loads = append(loads, workload{"Deployment", d.ObjectMeta, ptrOr(d.Spec.Replicas, 1), d.Spec.Selector, d.Spec.Template.Labels})
	}
	for _, o := range w.stss.List() {
		s := o.(*appsv1.StatefulSet)
		loads = append(loads, workload{"StatefulSet", s.ObjectMeta, ptrOr(s.Spec.Replicas, 1), s.Spec.Selector, s.Spec.Template.Labels})
	}
	for _, l := range loads {
		if !covered(l.meta.Namespace, l.template) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(l.selector)
		if err != nil {
			continue
		}
		ready := 0
		for _, o := range w.pods.List() {
			p := o.(*corev1.Pod)
			if p.Namespace == l.meta.Namespace && p.DeletionTimestamp == nil && sel.Matches(labels.Set(p.Labels)) && podIsReady(p) {
				ready++
			}
		}
		key := l.kind + "/" + l.meta.Namespace + "/" + l.meta.Name
		r := w.loadR[key]
		if r == nil {
			r = &WorkloadRecord{Kind: l.kind, Namespace: l.meta.Namespace, Name: l.meta.Name}
			w.loadR[key] = r
		}
		r.Replicas, r.Ready = l.replicas, ready
		switch {
		case !r.Reached && int32(ready) >= l.replicas:
			r.Reached, r.MinReady = true, ready
		case r.Reached && ready < r.MinReady:
			r.MinReady = ready
		}
	}
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// PDBs returns the records by "namespace/name".
func (w *PDBWatch) PDBs() map[string]PDBRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]PDBRecord{}
	for k, r := range w.pdbR {
		out[k] = *r
	}
	return out
}

// Workloads returns the records by "Kind/namespace/name".
func (w *PDBWatch) Workloads() map[string]WorkloadRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]WorkloadRecord{}
	for k, r := range w.loadR {
		out[k] = *r
	}
	return out
}

// Violations describes every PDB seen with currentHealthy < desiredHealthy
// after it was satisfied; none means no budget was ever broken.
func (w *PDBWatch) Violations() []string {
	var out []string
	for k, r := range w.PDBs() {
		if r.Violations > 0 {
			out = append(out, fmt.Sprintf("pdb %s: currentHealthy - desiredHealthy went down to %d (%d statuses below 0)", k, r.MinMargin, r.Violations))
		}
	}
	sort.Strings(out)
	return out
}

// Summary is one line per PDB and covered workload with its minimum, for
// a test's log.
func (w *PDBWatch) Summary() []string {
	var out []string
	for k, r := range w.PDBs() {
		out = append(out, fmt.Sprintf("pdb %s: min margin %d (satisfied %v, violations %d; now healthy %d/%d desired, %d allowed)",
			k, r.MinMargin, r.Satisfied, r.Violations, r.Last.CurrentHealthy, r.Last.DesiredHealthy, r.Last.DisruptionsAllowed))
	}
	for k, r := range w.Workloads() {
		out = append(out, fmt.Sprintf("%s: min Ready %d of %d (reached %v, now %d)", k, r.MinReady, r.Replicas, r.Reached, r.Ready))
	}
	sort.Strings(out)
	return out
}
