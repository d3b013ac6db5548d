package workloads

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubectl/pkg/drain"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// Statuses of one planned eviction in a Result.
const (
	// StatusRecreated: evicted, and its replacement is Ready with an IPv4
	// and an IPv6 pod IP.
	StatusRecreated = "re-created"
	// StatusRemoved: a pod without a controller, evicted because of Force;
	// nothing brings it back.
	StatusRemoved = "removed"
	// StatusAlreadyReplaced: gone, re-created (another UID), terminating or
	// given IPv6 since the plan; not evicted.
	StatusAlreadyReplaced = "already-replaced"
	// StatusEvicted: evicted, but no replacement was Ready with both
	// families within the time limit.
	StatusEvicted = "evicted"
	// StatusFailed: not evicted (a PodDisruptionBudget held it until the
	// time limit, a refusal, an error).
	StatusFailed  = "failed"
	StatusNotRun  = "not-run" // an earlier failure or Ctrl-C stopped the run first
	defaultRetry  = 5 * time.Second
	logPrefix     = "workloads: "
	evictionPerms = `create on pods/eviction (apiGroups [""], resources ["pods/eviction"], verbs ["create"])`
)

// Outcome is what became of one planned eviction.
type Outcome struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message,omitempty"`
	// Replacement is the pod that took its place, with its pod IPs.
	Replacement    string   `json:"replacement,omitempty"`
	ReplacementIPs []string `json:"replacementIPs,omitempty"`
}

// NamespaceResult is what moved in one namespace and what is left.
type NamespaceResult struct {
	Namespace string `json:"namespace"`
	// Moved are the pods re-created (or, with Force, removed).
	Moved []string `json:"moved"`
	// AlreadyReplaced were found replaced when their turn came.
	AlreadyReplaced []string `json:"alreadyReplaced,omitempty"`
	// Left are the pods still without IPv6 or without a ready
	// replacement: failed, evicted without a replacement in time, not run.
	Left []string `json:"left"`
}

// Result is what Apply did, one Outcome per planned eviction in plan
// order, and the same per namespace.
type Result struct {
	Pods            []Outcome         `json:"pods"`
	Namespaces      []NamespaceResult `json:"namespaces"`
	Recreated       int               `json:"recreated"`
	Removed         int               `json:"removed"`
	AlreadyReplaced int               `json:"alreadyReplaced"`
	Evicted         int               `json:"evicted"`
	Failed          int               `json:"failed"`
	NotRun          int               `json:"notRun"`
}

// PDBStatus is a PodDisruptionBudget as it stood when it held an eviction
// back.
type PDBStatus struct {
	Namespace          string `json:"namespace"`
	Name               string `json:"name"`
	CurrentHealthy     int32  `json:"currentHealthy"`
	DesiredHealthy     int32  `json:"desiredHealthy"`
	DisruptionsAllowed int32  `json:"disruptionsAllowed"`
}

func (p PDBStatus) String() string {
	return fmt.Sprintf("PodDisruptionBudget %s/%s (currentHealthy %d, desiredHealthy %d, disruptionsAllowed %d)",
		p.Namespace, p.Name, p.CurrentHealthy, p.DesiredHealthy, p.DisruptionsAllowed)
}

// BlockedError is a run that PodDisruptionBudgets stopped: evictions they
// refused (429) until the time limit passed.
type BlockedError struct {
	After time.Duration
	PDBs  []PDBStatus
	// Blocked are the pods whose eviction was refused; NotMoved every
	// planned pod not moved (Blocked among them); Moved counts those that
	// were.
	Blocked  []string
	NotMoved []string
	Moved    int
	// LastAnswer is the apiserver's last refusal, for its wording.
	LastAnswer string
}

func (e *BlockedError) Error() string {
	pdbs := make([]string, len(e.PDBs))
	for i, p := range e.PDBs {
		pdbs[i] = p.String()
	}
	by := strings.Join(pdbs, ", ")
	if by == "" {
		by = "no PodDisruptionBudget selects them now (the last answer: " + e.LastAnswer + ")"
	}
	return fmt.Sprintf("the eviction of %s was refused (retried for up to %s) by %s: raise the budget or the workload's replicas, or exclude these pods, and run again; %d pods moved, %d not (%s)",
		listSome(e.Blocked), e.After, by, e.Moved, len(e.NotMoved), listSome(e.NotMoved))
}

// Apply evicts the plan's pods, and only those, in its order: in batches
// of at most MaxUnavailable pods of one group and namespace, each batch
// through k8s.io/kubectl's drain helper, which retries the evictions a
// PodDisruptionBudget refuses until the time limit; then it waits until
// every evicted pod has a replacement Ready with both families before the
// next batch. Before its batch each pod is read again: one gone, re-created
// (another UID), terminating or with IPv6 by now is not evicted. The
// first batch that fails stops the run; its evicted pods are still waited
// for, so that they are reported moved.
func (c *Converter) Apply(ctx context.Context, plan *Plan) (*Result, error) {
	var evicts []Item
	for _, it := range plan.Pods {
		if it.Action == ActionEvict {
			evicts = append(evicts, it)
		}
	}
	res := &Result{Pods: make([]Outcome, len(evicts))}
	for i, it := range evicts {
		res.Pods[i] = Outcome{Namespace: it.Namespace, Name: it.Name, Status: StatusNotRun}
	}
	var stop error
	if len(evicts) > 0 {
		stop = c.checkEviction()
	}
	maxUnavailable := max(plan.Options.MaxUnavailable, 1)
	// Progress counts the pods that come back; a pod no controller
	// manages (evicted because of Force) does not.
	total := 0
	for _, it := range evicts {
		if it.Owner != nil {
			total++
		}
	}
	r := &run{c: c, res: res, total: total}
	for start := 0; start < len(evicts) && stop == nil; {
		if err := ctx.Err(); err != nil {
			stop = err
			break
		}
		end := start + 1
		for end < len(evicts) && end-start < maxUnavailable &&
			evicts[end].Rank == evicts[start].Rank && evicts[end].Namespace == evicts[start].Namespace {
			end++
		}
		stop = r.batch(ctx, evicts[start:end], start)
		start = end
	}
	res.tally()
	if stop != nil {
		return res, stop
	}
	if res.Evicted > 0 || res.Failed > 0 {
		return res, fmt.Errorf("%d of %d pods were not re-created; run again to retry them", res.Evicted+res.Failed, len(evicts))
	}
	return res, nil
}

// budgetRefusal tells the eviction refusals of PodDisruptionBudgets that
// are not a 429: a Forbidden with a DisruptionBudget cause (a budget whose
// disruptionsAllowed is negative, or with too many evictions its
// controller has not confirmed), and the 500 of a pod that more than one
// budget selects, which the Eviction API does not support
// (k8s.io/kubernetes pkg/registry/core/pod/storage/eviction.go).
func budgetRefusal(err error) bool {
	switch {
	case err == nil:
		return false
	case apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, policyv1.DisruptionBudgetCause):
		return true
	}
	var status apierrors.APIStatus
	return errors.As(err, &status) && status.Status().Code == 500 &&
		strings.Contains(status.Status().Message, "more than one PodDisruptionBudget")
}

// checkEviction makes sure the cluster serves policy/v1 evictions (every
// Kubernetes since 1.22); the drain helper would otherwise delete the pods,
// ignoring their PodDisruptionBudgets.
func (c *Converter) checkEviction() error {
	gv, err := drain.CheckEvictionSupport(c.Kube)
	if err != nil {
		return kube.Explain("asking the cluster whether it serves pod evictions (discovery of v1)", err)
	}
	if gv != policyv1.SchemeGroupVersion {
		return fmt.Errorf("the cluster does not serve policy/v1 pod evictions (discovery answered %q): this phase evicts pods only through the Eviction API, which PodDisruptionBudgets govern; it needs Kubernetes 1.22 or later", gv)
	}
	return nil
}

// run is the state of one Apply.
type run struct {
	c     *Converter
	res   *Result
	total int
	mu    sync.Mutex
	done  int // re-created or already replaced, for the progress lines
}

func (r *run) progress(ns string, n int) {
	r.mu.Lock()
	r.done += n
	d := r.done
	r.mu.Unlock()
	r.c.logf("%s%d of %d pods re-created (%s)\n", logPrefix, d, r.total, ns)
}

// batch evicts one batch (pods of one group and namespace; res.Pods[at:]
// are theirs) and waits for their replacements.
func (r *run) batch(ctx context.Context, items []Item, at int) error {
	c, ns := r.c, items[0].Namespace
	timeout := c.Options.timeout()
	out := func(i int) *Outcome { return &r.res.Pods[at+i] }

	// Read the namespace's pods again: what changed since the plan, and
	// which pods exist before the evictions (a replacement is a pod that
	// did not).
	current, err := pager.ListAll[corev1.Pod](ctx, metav1.ListOptions{}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return c.Kube.CoreV1().Pods(ns).List(ctx, o)
	})
	if err != nil {
		return kube.Explain("reading the pods of namespace "+ns+" before evicting them", err)
	}
	before := map[types.UID]bool{}
	byName := map[string]*corev1.Pod{}
	for i := range current {
		before[current[i].UID] = true
		byName[current[i].Name] = &current[i]
	}
	var toEvict []corev1.Pod
	index := map[string]int{} // pod name -> index in items
	replaced := 0
	for i, it := range items {
		p := byName[it.Name]
		msg := ""
		switch {
		case p == nil:
			msg = "gone since the plan"
		case p.UID != it.UID:
			msg = "re-created since the plan (another UID)"
		case p.DeletionTimestamp != nil:
			msg = "terminating since the plan"
		case hasIPv6(p):
			msg = "has an IPv6 pod IP since the plan (" + strings.Join(podIPs(p), ",") + ")"
		}
		if msg != "" {
			out(i).Status, out(i).Message = StatusAlreadyReplaced, msg
			replaced++
			continue
		}
		index[it.Name] = i
		toEvict = append(toEvict, *p)
	}
	if replaced > 0 {
		r.progress(ns, replaced)
	}
	if len(toEvict) == 0 {
		return nil
	}

	ans := newAnswers()
	var (
		mu      sync.Mutex
		evicted = map[string]bool{}
	)
	logw := io.Discard
	if c.Log != nil {
		logw = &prefixWriter{w: c.Log, prefix: logPrefix}
	}
	retry := c.RetryDelay
	if retry <= 0 {
		retry = defaultRetry
	}
	h := &drain.Helper{
		Ctx:    ctx,
		Client: evictClient{Interface: c.Kube, answers: ans},
		// The pod's own terminationGracePeriodSeconds (0 would kill at once).
		GracePeriodSeconds:   -1,
		Timeout:              timeout,
		EvictErrorRetryDelay: retry,
		Out:                  logw,
		ErrOut:               logw,
		OnPodDeletionOrEvictionFinished: func(p *corev1.Pod, _ bool, err error) {
			if err == nil {
				mu.Lock()
				evicted[p.Name] = true
				mu.Unlock()
			}
		},
	}
	drainErr := h.DeleteOrEvictPods(toEvict)

	var (
		waitFor            []int // indexes in items
		blocked, forbidden []int
		lastRefusal        string
	)
	for _, p := range toEvict {
		i := index[p.Name]
		_, last := ans.get(items[i].Ref())
		switch {
		case evicted[p.Name] && items[i].Owner == nil:
			out(i).Status, out(i).Message = StatusRemoved, "evicted; no controller re-creates it"
			c.logf("%sevicted %s, which no controller re-creates (--force)\n", logPrefix, items[i].Ref())
		case evicted[p.Name]:
			waitFor = append(waitFor, i)
		case apierrors.IsNotFound(last):
			out(i).Status, out(i).Message = StatusAlreadyReplaced, "gone before its eviction"
			r.progress(ns, 1)
		case apierrors.IsTooManyRequests(last):
			out(i).Status, out(i).Message = StatusFailed, fmt.Sprintf("its eviction was refused until the time limit (%s): %v", timeout, last)
			blocked = append(blocked, i)
			lastRefusal = last.Error()
		case budgetRefusal(last):
			// Not retried by the drain helper: the budget's state must change.
			out(i).Status, out(i).Message = StatusFailed, fmt.Sprintf("its eviction was refused: %v", last)
			blocked = append(blocked, i)
			lastRefusal = last.Error()
		case apierrors.IsForbidden(last):
			out(i).Status, out(i).Message = StatusFailed, fmt.Sprintf("its eviction was forbidden: %v", last)
			forbidden = append(forbidden, i)
		case last != nil:
			out(i).Status, out(i).Message = StatusFailed, fmt.Sprintf("evicting it: %v", last)
		case drainErr != nil:
			// Accepted, but the pod was not gone before the time limit (a
			// long termination grace period), or the run was cancelled.
			out(i).Status, out(i).Message = StatusFailed, fmt.Sprintf("eviction accepted, but the pod was still there at the time limit: %v", drainErr)
		default:
			out(i).Status, out(i).Message = StatusFailed, "the drain helper neither evicted it nor said why"
		}
	}

	waitErr := r.waitReplacements(ctx, ns, items, waitFor, at, before, timeout)

	switch {
	case ctx.Err() != nil:
		// Ctrl-C: the refusals recorded so far say nothing of the budgets.
		return fmt.Errorf("interrupted while evicting pods in namespace %s: %w", ns, context.Cause(ctx))
	case len(forbidden) > 0:
		_, last := ans.get(items[forbidden[0]].Ref())
		return fmt.Errorf("evicting pods in namespace %s is forbidden: the user needs %s in that namespace (see deploy/rbac); not evicted: %s: %w",
			ns, evictionPerms, listSome(refs(items, forbidden)), last)
	case len(blocked) > 0:
		return r.blockedError(ctx, ns, items, blocked, byName, timeout, lastRefusal)
	case waitErr != nil:
		return waitErr
	}
	for i := range items {
		if out(i).Status == StatusFailed {
			return fmt.Errorf("evicting %s: %s", items[i].Ref(), out(i).Message)
		}
	}
	return nil
}

func refs(items []Item, idx []int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = items[i].Ref()
	}
	return out
}

// blockedError names the budgets that select the blocked pods, read now.
func (r *run) blockedError(ctx context.Context, ns string, items []Item, blocked []int, pods map[string]*corev1.Pod, timeout time.Duration, last string) error {
	e := &BlockedError{After: timeout, Blocked: refs(items, blocked), LastAnswer: last}
	pdbs, err := pager.ListAll[policyv1.PodDisruptionBudget](ctx, metav1.ListOptions{}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return r.c.Kube.PolicyV1().PodDisruptionBudgets(ns).List(ctx, o)
	})
	if err != nil {
		// The plan's names, without their numbers.
		seen := map[string]bool{}
		for _, i := range blocked {
			for _, n := range items[i].PDBs {
				if !seen[n] {
					seen[n] = true
					e.PDBs = append(e.PDBs, PDBStatus{Namespace: ns, Name: n, CurrentHealthy: -1, DesiredHealthy: -1, DisruptionsAllowed: -1})
				}
			}
		}
	} else {
		seen := map[string]bool{}
		for _, i := range blocked {
			for _, pdb := range selecting(pdbs, pods[items[i].Name]) {
				if seen[pdb.Name] {
					continue
				}
				seen[pdb.Name] = true
				e.PDBs = append(e.PDBs, PDBStatus{Namespace: pdb.Namespace, Name: pdb.Name, CurrentHealthy: pdb.Status.CurrentHealthy,
					DesiredHealthy: pdb.Status.DesiredHealthy, DisruptionsAllowed: pdb.Status.DisruptionsAllowed})
			}
		}
	}
	slices.SortFunc(e.PDBs, func(a, b PDBStatus) int { return strings.Compare(a.Name, b.Name) })
	for _, o := range r.res.Pods {
		switch o.Status {
		case StatusRecreated, StatusRemoved, StatusAlreadyReplaced:
			e.Moved++
		default:
			e.NotMoved = append(e.NotMoved, o.Namespace+"/"+o.Name)
		}
	}
	return e
}

// errIPv4Only ends a wait at the first replacement that is Ready without
// IPv6: the cluster network does not give new pods IPv6, and evicting more
// would only churn them.
var errIPv4Only = errors.New("the cluster network gives new pods no IPv6 address: run the network phase (and the nodes phase) first")

// waitReplacements watches the namespace's pods until each evicted pod
// (items[i] for i in waitFor) has a replacement Ready with an IPv4 and an
// IPv6 pod IP: for a StatefulSet's pod, the pod of the same name with
// another UID; for any other, a pod of the same controller (by UID) that
// did not exist before the evictions (before), each counted once. Job pods
// may also be replaced by a pod that already succeeded.
func (r *run) waitReplacements(ctx context.Context, ns string, items []Item, waitFor []int, at int, before map[types.UID]bool, timeout time.Duration) error {
	if len(waitFor) == 0 {
		return nil
	}
	c := r.c
	out := func(i int) *Outcome { return &r.res.Pods[at+i] }
	status := map[int]string{} // why items[i] is not replaced yet
	reported := 0
	good := func(p *corev1.Pod, owner *Owner) bool {
		if owner != nil && owner.Kind == "Job" && p.Status.Phase == corev1.PodSucceeded {
			return true
		}
		return p.DeletionTimestamp == nil && ready(p) && dualStack(p)
	}
	var found map[int]*corev1.Pod
	done := func(objs []map[string]runtime.Object) (bool, error) {
		pods := make([]*corev1.Pod, 0, len(objs[0]))
		for _, o := range objs[0] {
			if p, ok := o.(*corev1.Pod); ok {
				pods = append(pods, p)
			}
		}
		slices.SortFunc(pods, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
		found = map[int]*corev1.Pod{}
		claimed := map[types.UID]bool{}
		for _, i := range waitFor {
			it := items[i]
			var candidates []*corev1.Pod
			for _, p := range pods {
				if before[p.UID] || p.UID == it.UID || claimed[p.UID] {
					continue
				}
				ref := metav1.GetControllerOf(p)
				switch {
				case it.Owner.Kind == "StatefulSet" && p.Name == it.Name:
				case it.Owner.Kind != "StatefulSet" && ref != nil && ref.UID == it.Owner.UID:
				default:
					continue
				}
				candidates = append(candidates, p)
			}
			status[i] = fmt.Sprintf("no new pod of %s %s yet", it.Owner.Kind, it.Owner.Name)
			for _, p := range candidates {
				if good(p, it.Owner) {
					found[i] = p
					claimed[p.UID] = true
					break
				}
				if ready(p) && !hasIPv6(p) {
					return false, fmt.Errorf("%s's replacement %s/%s is Ready with only %s: %w", it.Ref(), p.Namespace, p.Name, strings.Join(podIPs(p), ","), errIPv4Only)
				}
				status[i] = fmt.Sprintf("its replacement %s is not Ready with both families yet (phase %s, pod IPs %s)", p.Name, p.Status.Phase, strings.Join(podIPs(p), ","))
			}
		}
		if len(found) > reported {
			r.progress(ns, len(found)-reported)
			reported = len(found)
		}
		return len(found) == len(waitFor), nil
	}
	err := kube.Wait(ctx, timeout, done, kube.Watched{What: "pods in namespace " + ns, LW: podsLW(c.Kube, ns), Type: &corev1.Pod{}})
	var waiting []string
	for _, i := range waitFor {
		if p := found[i]; p != nil {
			out(i).Status, out(i).Message = StatusRecreated, ""
			out(i).Replacement, out(i).ReplacementIPs = p.Name, podIPs(p)
			continue
		}
		out(i).Status, out(i).Message = StatusEvicted, status[i]
		waiting = append(waiting, items[i].Ref()+": "+status[i])
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errIPv4Only):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("waiting for the replacements of the evicted pods in namespace %s: %w; still waiting for %s", ns, err, listSome(waiting))
	default:
		return fmt.Errorf("waiting for the replacements of the evicted pods in namespace %s: %w", ns, err)
	}
}

// podsLW lists, page by page, and watches the pods of a namespace.
func podsLW(c kubernetes.Interface, ns string) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.Limit = kube.PageSize
			return c.CoreV1().Pods(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.CoreV1().Pods(ns).Watch(ctx, o)
		},
	}, c)
}

func (res *Result) tally() {
	byNS := map[string]*NamespaceResult{}
	var order []string
	for _, o := range res.Pods {
		n := byNS[o.Namespace]
		if n == nil {
			n = &NamespaceResult{Namespace: o.Namespace, Moved: []string{}, Left: []string{}}
			byNS[o.Namespace] = n
			order = append(order, o.Namespace)
		}
		switch o.Status {
		case StatusRecreated:
			res.Recreated++
			n.Moved = append(n.Moved, o.Name)
		case StatusRemoved:
			res.Removed++
			n.Moved = append(n.Moved, o.Name)
		case StatusAlreadyReplaced:
			res.AlreadyReplaced++
			n.AlreadyReplaced = append(n.AlreadyReplaced, o.Name)
		case StatusEvicted:
			res.Evicted++
			n.Left = append(n.Left, o.Name)
		case StatusFailed:
			res.Failed++
			n.Left = append(n.Left, o.Name)
		default:
			res.NotRun++
			n.Left = append(n.Left, o.Name)
		}
	}
	slices.Sort(order)
	res.Namespaces = make([]NamespaceResult, 0, len(order))
	for _, ns := range order {
		res.Namespaces = append(res.Namespaces, *byNS[ns])
	}
}

func (c *Converter) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format, args...)
	}
}

// prefixWriter puts the phase's prefix before each line the drain helper
// writes ("evicting pod shop/web-1"), which it writes whole. The helper
// serialises the writes to Out and those to ErrOut, but each on its own
// (two syncWriters), so one writer given as both is locked here.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var buf bytes.Buffer
	for line := range bytes.Lines(b) {
		buf.WriteString(p.prefix)
		buf.Write(line)
	}
	if _, err := p.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}
