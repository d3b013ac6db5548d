package kube

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// A timeout far beyond what any of these tests may take: a wait that has to
// end early and does not would fail the elapsed-time assertion long before.
const longTimeout = 30 * time.Second

func node(name string, ips ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, ip := range ips {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	return n
}

func hasIPv6(n *corev1.Node) bool {
	for _, a := range n.Status.Addresses {
		if strings.Contains(a.Address, ":") {
			return true
		}
	}
	return false
}

// allIPv6 is upgrade's condition: every node reports an IPv6 InternalIP.
func allIPv6(objs map[string]runtime.Object) (bool, error) {
	for _, n := range Nodes(objs) {
		if !hasIPv6(n) {
			return false, nil
		}
	}
	return len(objs) > 0, nil
}

// signalWatches makes the fake signal every watch it has opened, once the
// tracker is ready to send it events: changes made after the signal are
// seen (the tracker, unlike an apiserver, ignores resourceVersion).
func signalWatches(c *fake.Clientset) <-chan string {
	opened := make(chan string, 16)
	c.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := c.Tracker().Watch(a.GetResource(), a.GetNamespace())
		opened <- a.GetResource().Resource
		return true, w, err
	})
	return opened
}

func waitOpened(t *testing.T, opened <-chan string) {
	t.Helper()
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("the wait never opened a watch")
	}
}

type waitResult struct {
	err     error
	elapsed time.Duration
}

func goWaitAll(ctx context.Context, c *fake.Clientset, timeout time.Duration, done func(map[string]runtime.Object) (bool, error)) <-chan waitResult {
	out := make(chan waitResult, 1)
	start := time.Now()
	go func() {
		err := WaitAll(ctx, NodesLW(c), &corev1.Node{}, timeout, done)
		out <- waitResult{err, time.Since(start)}
	}()
	return out
}

func result(t *testing.T, ch <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the wait did not end")
		return waitResult{}
	}
}

func TestWaitAllReachesGoalAfterEvents(t *testing.T) {
	c := fake.NewClientset(node("a", "10.0.0.1"), node("b", "10.0.0.2", "fd00::2"))
	opened := signalWatches(c)
	var calls atomic.Int32
	listed := make(chan struct{})
	ch := goWaitAll(context.Background(), c, longTimeout, func(objs map[string]runtime.Object) (bool, error) {
		if calls.Add(1) == 1 {
			close(listed)
		}
		return allIPv6(objs)
	})
	waitOpened(t, opened)
	<-listed
	select {
	case r := <-ch:
		t.Fatalf("ended before node a has IPv6: %v", r.err)
	default:
	}
	if _, err := c.CoreV1().Nodes().UpdateStatus(context.Background(), node("a", "10.0.0.1", "fd00::1"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := result(t, ch); r.err != nil {
		t.Fatalf("WaitAll: %v", r.err)
	}
	if calls.Load() < 2 {
		t.Fatalf("done was called %d times; want after the list and after the change", calls.Load())
	}
}

func TestWaitAllDoneTrueAfterListNeedsNoWatchEvent(t *testing.T) {
	c := fake.NewClientset(node("a", "10.0.0.1", "fd00::1"))
	if r := result(t, goWaitAll(context.Background(), c, longTimeout, allIPv6)); r.err != nil || r.elapsed > 5*time.Second {
		t.Fatalf("WaitAll = %v after %s; want nil at once", r.err, r.elapsed)
	}
}

// quietReflector records what client-go would log through its error
// handlers (the reflector's "Failed to watch") while the test runs.
func quietReflector(t *testing.T) func() []string {
	var mu sync.Mutex
	var logged []string
	saved := utilruntime.ErrorHandlers
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{func(_ context.Context, err error, msg string, _ ...any) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, msg+": "+err.Error())
	}}
	t.Cleanup(func() { utilruntime.ErrorHandlers = saved })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), logged...)
	}
}

func TestWaitAllFailsAtOnceWhenRetryCannotHelp(t *testing.T) {
	nodes := schema.GroupResource{Resource: "nodes"}
	for _, tc := range []struct {
		name, verb string
		err        error
		check      func(error) bool
		want       []string
	}{
		{"list forbidden", "list", apierrors.NewForbidden(nodes, "", errors.New(`User "alice" cannot list resource "nodes"`)), apierrors.IsForbidden,
			[]string{"reading nodes", `cannot list resource "nodes"`, "ask for this permission"}},
		{"list unauthorized", "list", apierrors.NewUnauthorized("token expired"), apierrors.IsUnauthorized,
			[]string{"reading nodes", "token expired", "rejected the credentials"}},
		{"list no such resource", "list", apierrors.NewNotFound(nodes, ""), apierrors.IsNotFound,
			[]string{"reading nodes", "not found"}},
		{"watch forbidden", "watch", apierrors.NewForbidden(nodes, "", errors.New(`User "alice" cannot watch resource "nodes"`)), apierrors.IsForbidden,
			[]string{"watching nodes", `cannot watch resource "nodes"`, "ask for this permission"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logged := quietReflector(t)
			c := fake.NewClientset(node("a", "10.0.0.1"))
			var calls atomic.Int32
			c.PrependReactor(tc.verb, "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
				calls.Add(1)
				return true, nil, tc.err
			})
			c.PrependWatchReactor("nodes", func(k8stesting.Action) (bool, watch.Interface, error) {
				if tc.verb == "watch" {
					calls.Add(1)
					return true, nil, tc.err
				}
				return false, nil, nil
			})
			r := result(t, goWaitAll(context.Background(), c, longTimeout, allIPv6))
			if r.err == nil || !tc.check(r.err) {
				t.Fatalf("WaitAll = %v; want the %s error", r.err, tc.name)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("error %q does not say %q", r.err, w)
				}
			}
			var te *TimeoutError
			if errors.As(r.err, &te) || errors.Is(r.err, context.DeadlineExceeded) {
				t.Errorf("error %v is a timeout; want the %s error at once", r.err, tc.name)
			}
			if r.elapsed > 5*time.Second {
				t.Errorf("took %s with a %s timeout: the failure was retried instead of reported", r.elapsed, longTimeout)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("the failing %s was made %d times; want once", tc.verb, n)
			}
			if l := logged(); len(l) > 0 {
				t.Errorf("client-go logged the error the caller reports: %q", l)
			}
		})
	}
}

func TestWaitAllRetriesTransientErrors(t *testing.T) {
	for _, tc := range []struct {
		verb string
		err  error
	}{
		{"list", apierrors.NewInternalError(errors.New("etcd leader changed"))},
		{"list", apierrors.NewServiceUnavailable("apiserver is shutting down")},
		{"list", apierrors.NewTimeoutError("request did not complete within 60s", 1)},
		{"watch", apierrors.NewInternalError(errors.New("etcd leader changed"))},
	} {
		t.Run(tc.verb+" "+tc.err.Error(), func(t *testing.T) {
			c := fake.NewClientset(node("a", "10.0.0.1", "fd00::1"))
			var failed atomic.Int32
			fail := func() bool { return failed.Add(1) == 1 } // the first call fails
			c.PrependReactor(tc.verb, "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
				if fail() {
					return true, nil, tc.err
				}
				return false, nil, nil
			})
			if tc.verb == "watch" {
				// Only a watch will make the condition true: the list
				// shows a node without IPv6; the change comes after.
				c = fake.NewClientset(node("a", "10.0.0.1"))
				opened := make(chan struct{}, 16)
				c.PrependWatchReactor("nodes", func(a k8stesting.Action) (bool, watch.Interface, error) {
					if fail() {
						return true, nil, tc.err
					}
					w, err := c.Tracker().Watch(a.GetResource(), a.GetNamespace())
					opened <- struct{}{}
					return true, w, err
				})
				go func() {
					<-opened
					_, _ = c.CoreV1().Nodes().UpdateStatus(context.Background(), node("a", "10.0.0.1", "fd00::1"), metav1.UpdateOptions{})
				}()
			}
			quietReflector(t)
			r := result(t, goWaitAll(context.Background(), c, longTimeout, allIPv6))
			if r.err != nil {
				t.Fatalf("WaitAll = %v; want the transient %s error retried", r.err, tc.verb)
			}
			if n := failed.Load(); n < 2 {
				t.Fatalf("%d %s calls; want a failure and a retry", n, tc.verb)
			}
		})
	}
}

func TestWaitAllTimeoutSaysWhatItSaw(t *testing.T) {
	c := fake.NewClientset(node("a", "10.0.0.1"), node("b", "10.0.0.2"))
	r := result(t, goWaitAll(context.Background(), c, 300*time.Millisecond, allIPv6))
	var te *TimeoutError
	if !errors.As(r.err, &te) || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("WaitAll = %v; want a TimeoutError", r.err)
	}
	if want := "timed out after 300ms (seen: 2 nodes)"; r.err.Error() != want {
		t.Fatalf("error %q; want %q", r.err, want)
	}
}

func TestWaitAllTimeoutWhileRetryingNamesTheFailure(t *testing.T) {
	quietReflector(t)
	c := fake.NewClientset(node("a", "10.0.0.1"))
	c.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("apiserver is shutting down")
	})
	r := result(t, goWaitAll(context.Background(), c, 1500*time.Millisecond, allIPv6))
	var te *TimeoutError
	if !errors.As(r.err, &te) || te.Failing == nil {
		t.Fatalf("WaitAll = %v; want a TimeoutError with the failing list", r.err)
	}
	if want := "timed out after 1.5s (seen: 0 nodes); still retrying after reading nodes: apiserver is shutting down"; r.err.Error() != want {
		t.Fatalf("error %q; want %q", r.err, want)
	}
}

func TestWaitAllCancelledIsNotATimeout(t *testing.T) {
	c := fake.NewClientset(node("a", "10.0.0.1"))
	opened := signalWatches(c)
	ctx, cancel := context.WithCancel(context.Background())
	ch := goWaitAll(ctx, c, longTimeout, allIPv6)
	waitOpened(t, opened)
	cancel()
	r := result(t, ch)
	var te *TimeoutError
	if !errors.Is(r.err, context.Canceled) || errors.As(r.err, &te) {
		t.Fatalf("WaitAll = %v; want context.Canceled", r.err)
	}
}

func TestWaitDoneErrorEndsEveryWatch(t *testing.T) {
	c := fake.NewClientset(node("a", "10.0.0.1"))
	boom := errors.New("boom")
	start := time.Now()
	err := Wait(context.Background(), longTimeout, func(objs []map[string]runtime.Object) (bool, error) {
		if len(objs) != 2 || len(objs[0]) != 1 || len(objs[1]) != 1 {
			t.Errorf("done got %v; want both sets listed", objs)
		}
		return false, boom
	}, Watched{What: "nodes", LW: NodesLW(c), Type: &corev1.Node{}}, Watched{What: "nodes again", LW: NodesLW(c), Type: &corev1.Node{}})
	if err != boom || time.Since(start) > 5*time.Second {
		t.Fatalf("Wait = %v after %s; want done's error at once", err, time.Since(start))
	}
}

func TestRetryCannotHelp(t *testing.T) {
	gr := schema.GroupResource{Group: "config.openshift.io", Resource: "networks"}
	for _, tc := range []struct {
		verb string
		err  error
		want bool
	}{
		{"list", apierrors.NewForbidden(gr, "", errors.New("no")), true},
		{"watch", apierrors.NewForbidden(gr, "", errors.New("no")), true},
		{"list", apierrors.NewUnauthorized("no"), true},
		{"list", apierrors.NewNotFound(gr, ""), true},
		{"list", errors.New("the server could not find the requested resource"), true},
		{"watch", apierrors.NewNotFound(gr, ""), false}, // the reflector lists again; caught there
		{"list", apierrors.NewInternalError(errors.New("x")), false},
		{"list", apierrors.NewServiceUnavailable("x"), false},
		{"list", apierrors.NewTimeoutError("x", 1), false},
		{"list", apierrors.NewTooManyRequests("x", 1), false},
		{"list", errors.New("dial tcp 127.0.0.1:6443: connect: connection refused"), false},
	} {
		if got := retryCannotHelp(tc.verb, tc.err); got != tc.want {
			t.Errorf("retryCannotHelp(%s, %v) = %v; want %v", tc.verb, tc.err, got, tc.want)
		}
	}
}
