package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/watchlist"
)

// Watched is one set of objects a wait follows.
type Watched struct {
	// What names the objects in errors: "nodes",
	// "networks.config.openshift.io/cluster".
	What string
	LW   cache.ListerWatcher
	Type runtime.Object
}

// TimeoutError is a wait that ran out of time. It wraps
// context.DeadlineExceeded.
type TimeoutError struct {
	After time.Duration
	// Seen is how many objects of each watched set there were at the end.
	Seen []Seen
	// Failing is the last list or watch error, when some set's list or
	// watch was still failing (and being retried) as time ran out.
	Failing error
}

// Seen is how many objects of one watched set a wait saw.
type Seen struct {
	What    string
	Objects int
}

func (e *TimeoutError) Error() string {
	seen := make([]string, len(e.Seen))
	for i, s := range e.Seen {
		seen[i] = fmt.Sprintf("%d %s", s.Objects, s.What)
	}
	msg := fmt.Sprintf("timed out after %s (seen: %s)", e.After, strings.Join(seen, ", "))
	if e.Failing != nil {
		msg += "; still retrying after " + e.Failing.Error()
	}
	return msg
}

func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// errReached is the cause that ends a wait whose condition held.
var errReached = errors.New("condition reached")

// WaitAll watches the objects lw lists, by client-go's UntilWithSync (one
// list, then a watch that resumes after a dropped connection), and calls
// done with all of them, keyed namespace/name, after the list and after
// each change, until it says true, fails, or timeout passes. A list or watch
// that retrying cannot fix (forbidden, unauthorized, no such resource) ends
// it at once; see Wait.
func WaitAll(ctx context.Context, lw cache.ListerWatcher, objType runtime.Object, timeout time.Duration, done func(map[string]runtime.Object) (bool, error)) error {
	return Wait(ctx, timeout, func(objs []map[string]runtime.Object) (bool, error) {
		return done(objs[0])
	}, Watched{What: resourceOf(objType), LW: lw, Type: objType})
}

// Wait follows every watched set at once, each by client-go's UntilWithSync,
// and calls done with the objects of each set (objs[i] for watched[i], keyed
// namespace/name) once every set is listed, then after each change, until
// done says true or fails, or timeout passes (a *TimeoutError).
//
// UntilWithSync's reflector retries a failing list or watch for ever. That
// is right for what heals (a timeout, a 5xx, a refused connection), which is
// retried here until the timeout too; but a Forbidden, an Unauthorized or a
// missing resource type does not heal, so the wait ends at once with that
// error, saying what was being read ("reading nodes: ... (ask for this
// permission ...)").
func Wait(ctx context.Context, timeout time.Duration, done func(objs []map[string]runtime.Object) (bool, error), watched ...Watched) error {
	if len(watched) == 0 {
		return errors.New("kube.Wait: nothing to watch")
	}
	tctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	defer cancelTimeout()
	wctx, stop := context.WithCancelCause(tctx)
	defer stop(nil)

	var (
		mu       sync.Mutex
		objs     = make([]map[string]runtime.Object, len(watched))
		failing  = make([]*failure, len(watched))
		synced   int
		finished bool
		result   error
	)
	// check asks done once every set is listed; its answer ends the wait of
	// every set. mu is held.
	check := func() (bool, error) {
		if finished || wctx.Err() != nil {
			return true, nil
		}
		if synced < len(watched) {
			return false, nil
		}
		ok, err := done(objs)
		if ok || err != nil {
			finished, result = true, err
			stop(errReached)
		}
		return ok, err
	}
	var wg sync.WaitGroup
	for i, w := range watched {
		objs[i] = map[string]runtime.Object{}
		lw := &guardedLW{lw: w.LW, what: w.What, stop: stop, note: func(f *failure) {
			mu.Lock()
			failing[i] = f
			mu.Unlock()
		}}
		wg.Go(func() {
			_, err := watchtools.UntilWithSync(wctx, lw, w.Type, func(store cache.Store) (bool, error) {
				mu.Lock()
				defer mu.Unlock()
				for _, o := range store.List() {
					if ro, ok := o.(runtime.Object); ok {
						objs[i][objectKey(ro)] = ro
					}
				}
				synced++
				return check()
			}, func(ev watch.Event) (bool, error) {
				mu.Lock()
				defer mu.Unlock()
				switch ev.Type {
				case watch.Added, watch.Modified:
					objs[i][objectKey(ev.Object)] = ev.Object
				case watch.Deleted:
					delete(objs[i], objectKey(ev.Object))
				default:
					return false, nil
				}
				return check()
			})
			if err != nil && wctx.Err() == nil {
				stop(fmt.Errorf("watching %s: %w", w.What, err))
			}
		})
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if finished {
		return result
	}
	cause := context.Cause(wctx)
	if !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	te := &TimeoutError{After: timeout}
	for i, w := range watched {
		te.Seen = append(te.Seen, Seen{What: w.What, Objects: len(objs[i])})
		if failing[i] != nil {
			te.Failing = Explain(failing[i].verb+" "+w.What, failing[i].err)
		}
	}
	return te
}

func objectKey(o runtime.Object) string {
	m, err := meta.Accessor(o)
	if err != nil {
		return ""
	}
	return m.GetNamespace() + "/" + m.GetName()
}

// resourceOf guesses the resource name of objType ("nodes") for messages.
func resourceOf(objType runtime.Object) string {
	gvk := objType.GetObjectKind().GroupVersionKind()
	if gvk.Kind == "" {
		if kinds, _, err := scheme.Scheme.ObjectKinds(objType); err == nil && len(kinds) > 0 {
			gvk = kinds[0]
		}
	}
	if gvk.Kind == "" {
		return "objects"
	}
	plural, _ := meta.UnsafeGuessKindToResource(gvk)
	return plural.GroupResource().String()
}

// retryCannotHelp reports whether a list or watch failed for a reason that a
// retry of the same request will meet again: the credentials are rejected,
// RBAC forbids it, or the resource type does not exist (a CRD not installed:
// "the server could not find the requested resource"). A NotFound counts on
// the list only: the reflector answers a failed watch by listing again, and
// a missing type is caught there.
func retryCannotHelp(verb string, err error) bool {
	switch {
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), meta.IsNoMatchError(err):
		return true
	case verb == "list":
		return apierrors.IsNotFound(err) || strings.Contains(err.Error(), "the server could not find the requested resource")
	}
	return false
}

// failure is one failed list or watch.
type failure struct {
	verb string // reading, watching
	err  error
}

// guardedLW is a ListerWatcher that ends the wait (stop, with the error as
// cause) when a list or watch fails for good, and records the failures it
// lets the reflector retry.
type guardedLW struct {
	lw   cache.ListerWatcher
	what string
	stop context.CancelCauseFunc
	note func(*failure) // nil when the call succeeded
}

var _ cache.ListerWatcherWithContext = &guardedLW{}

func (g *guardedLW) List(o metav1.ListOptions) (runtime.Object, error) {
	return g.ListWithContext(context.Background(), o)
}

func (g *guardedLW) Watch(o metav1.ListOptions) (watch.Interface, error) {
	return g.WatchWithContext(context.Background(), o)
}

// ListWithContext is given the reflector's context, which ends once the wait
// ends.
func (g *guardedLW) ListWithContext(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
	obj, err := cache.ToListerWatcherWithContext(g.lw).ListWithContext(ctx, o)
	if err == nil {
		g.note(nil)
	}
	if err == nil || ctx.Err() != nil {
		return obj, err
	}
	if !retryCannotHelp("list", err) {
		g.note(&failure{"reading", err})
		return obj, err
	}
	g.stop(Explain("reading "+g.what, err))
	if ctx.Done() != nil {
		// Returning once the reflector is stopping makes it drop the
		// error quietly instead of logging it as a failed watch: the
		// caller reports it.
		<-ctx.Done()
	}
	return nil, err
}

func (g *guardedLW) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	w, err := cache.ToListerWatcherWithContext(g.lw).WatchWithContext(ctx, o)
	if err == nil || ctx.Err() != nil {
		if err == nil {
			g.note(nil)
		}
		return w, err
	}
	if !retryCannotHelp("watch", err) {
		g.note(&failure{"watching", err})
		return w, err
	}
	g.stop(Explain("watching "+g.what, err))
	if ctx.Done() == nil {
		return nil, err
	}
	// An idle watch, handed over once the reflector is stopping: it sees
	// the stop and returns without logging the error (the caller reports it).
	<-ctx.Done()
	return watch.NewProxyWatcher(make(chan watch.Event)), nil
}

// IsWatchListSemanticsUnSupported passes on whether the wrapped client can
// stream the initial list in a watch (client-go's fakes cannot).
func (g *guardedLW) IsWatchListSemanticsUnSupported() bool {
	return watchlist.DoesClientNotSupportWatchListSemantics(g.lw)
}

// NodesLW lists and watches the nodes, page by page.
func NodesLW(c kubernetes.Interface) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.Limit = PageSize
			return c.CoreV1().Nodes().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.CoreV1().Nodes().Watch(ctx, o)
		},
	}, c)
}

// NamedLW lists and watches one object by name (a metadata.name field
// selector; cluster-scoped when namespace is "").
func NamedLW(c dynamic.Interface, gvr schema.GroupVersionResource, namespace, name string) cache.ListerWatcher {
	byName := fields.OneTermEqualSelector("metadata.name", name).String()
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return c.Resource(gvr).Namespace(namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return c.Resource(gvr).Namespace(namespace).Watch(ctx, o)
		},
	}, c)
}

// Nodes is the nodes among objs.
func Nodes(objs map[string]runtime.Object) []*corev1.Node {
	out := make([]*corev1.Node, 0, len(objs))
	for _, o := range objs {
		if n, ok := o.(*corev1.Node); ok {
			out = append(out, n)
		}
	}
	return out
}
