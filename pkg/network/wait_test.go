package network

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// A timeout far beyond what these tests may take: a wait that has to end
// early and does not fails the elapsed-time assertions long before.
const longTimeout = 30 * time.Second

var (
	singleStack = map[string]any{
		"clusterNetwork": []any{map[string]any{"cidr": "10.128.0.0/14", "hostPrefix": int64(23)}},
		"serviceNetwork": []any{"172.30.0.0/16"},
	}
	dualStack = map[string]any{
		"clusterNetwork": []any{map[string]any{"cidr": "10.128.0.0/14", "hostPrefix": int64(23)}, map[string]any{"cidr": "fd01::/48", "hostPrefix": int64(64)}},
		"serviceNetwork": []any{"172.30.0.0/16", "fd02::/112"},
	}
	toDualStack = Goal{PresentCluster: []string{"fd01::/48"}, PresentService: []string{"fd02::/112"}, FailOnDegraded: true}
)

func networkConfig(status map[string]any) *unstructured.Unstructured {
	u := networkObj(dualStack, status)
	u.SetAPIVersion("config.openshift.io/v1")
	u.SetKind("Network")
	u.SetName(NetworkConfigName)
	return u
}

// clusterOperator is the network ClusterOperator with the conditions
// Available, Progressing, Degraded (in that order; "" leaves one out).
func clusterOperator(available, progressing, degraded string, reason, message string) *unstructured.Unstructured {
	var conds []any
	for _, c := range [][2]string{{"Available", available}, {"Progressing", progressing}, {"Degraded", degraded}} {
		if c[1] == "" {
			continue
		}
		cond := map[string]any{"type": c[0], "status": c[1]}
		if c[0] == "Degraded" && reason != "" {
			cond["reason"], cond["message"] = reason, message
		}
		conds = append(conds, cond)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"conditions": conds}}}
	u.SetAPIVersion("config.openshift.io/v1")
	u.SetKind("ClusterOperator")
	u.SetName(OperatorName)
	return u
}

// openShift is a fake dynamic client with the two objects the wait
// follows (and unrelated ones of the same kinds, which it must ignore).
type openShift struct {
	dc *dynamicfake.FakeDynamicClient
	// opened gets the resource of every watch once the tracker will
	// deliver its events (the tracker ignores resourceVersion, so a change
	// made before that would be missed).
	opened chan string
	listed chan struct{}
	// seen gets every state the wait reports.
	seen chan Observed
}

func newOpenShift(t *testing.T, objs ...runtime.Object) *openShift {
	t.Helper()
	objs = append(objs, clusterOperator("True", "False", "True", "Other", "another operator"))
	objs[len(objs)-1].(*unstructured.Unstructured).SetName("dns")
	dc := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		platform.NetworksGVR:         "NetworkList",
		platform.ClusterOperatorsGVR: "ClusterOperatorList",
	}, objs...)
	o := &openShift{dc: dc, opened: make(chan string, 32)}
	dc.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := dc.Tracker().Watch(a.GetResource(), a.GetNamespace())
		o.opened <- a.GetResource().Resource
		return true, w, err
	})
	return o
}

// watching returns once both watches are open.
func (o *openShift) watching(t *testing.T) {
	t.Helper()
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case r := <-o.opened:
			seen[r] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("the wait opened watches on %v only", seen)
		}
	}
}

func (o *openShift) update(t *testing.T, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) {
	t.Helper()
	if _, err := o.dc.Resource(gvr).Update(context.Background(), obj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

type waited struct {
	seen    Observed
	err     error
	elapsed time.Duration
	updates []Observed
}

// goWait runs Wait; o.listed is closed at its first update (both objects
// listed).
func (o *openShift) goWait(ctx context.Context, goal Goal, timeout time.Duration) <-chan waited {
	out := make(chan waited, 1)
	start := time.Now()
	o.listed = make(chan struct{})
	o.seen = make(chan Observed, 100)
	go func() {
		var updates []Observed
		seen, err := Wait(ctx, o.dc, goal, timeout, func(s Observed) {
			if updates = append(updates, s); len(updates) == 1 {
				close(o.listed)
			}
			o.seen <- s
		})
		out <- waited{seen, err, time.Since(start), updates}
	}()
	return out
}

// await returns once the wait has reported a state that satisfies ok. The
// two objects are watched apart, so their changes may be seen in either
// order; a test that needs one first waits for it.
func (o *openShift) await(t *testing.T, what string, ok func(Observed) bool) {
	t.Helper()
	for {
		select {
		case s := <-o.seen:
			if ok(s) {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the wait never reported %s", what)
		}
	}
}

// ready returns once the wait has listed both objects and watches both.
func (o *openShift) ready(t *testing.T) {
	t.Helper()
	o.watching(t)
	select {
	case <-o.listed:
	case <-time.After(10 * time.Second):
		t.Fatal("the wait never reported the listed state")
	}
}

// quietReflector keeps the reflector's "Failed to watch" lines for the
// transient errors these tests inject out of the test output.
func quietReflector(t *testing.T) {
	saved := utilruntime.ErrorHandlers
	utilruntime.ErrorHandlers = nil
	t.Cleanup(func() { utilruntime.ErrorHandlers = saved })
}

func result(t *testing.T, ch <-chan waited) waited {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the wait did not end")
		return waited{}
	}
}

func TestWaitReachesGoalAfterEvents(t *testing.T) {
	o := newOpenShift(t, networkConfig(singleStack), clusterOperator("True", "False", "False", "", ""))
	ch := o.goWait(context.Background(), toDualStack, longTimeout)
	o.ready(t)
	// The operator starts rolling out, reports the IPv6 ranges in status,
	// and settles.
	o.update(t, platform.ClusterOperatorsGVR, clusterOperator("True", "True", "False", "", ""))
	o.await(t, "Progressing=True", func(s Observed) bool { return s.Operator.Progressing == "True" })
	o.update(t, platform.NetworksGVR, networkConfig(dualStack))
	o.await(t, "the IPv6 status", func(s Observed) bool { return s.Network != nil && len(s.Network.StatusServiceNetwork) == 2 })
	select {
	case r := <-ch:
		t.Fatalf("ended while the operator is still Progressing: %+v, %v", r.seen, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	o.update(t, platform.ClusterOperatorsGVR, clusterOperator("True", "False", "False", "", ""))
	r := result(t, ch)
	if r.err != nil {
		t.Fatalf("Wait: %v", r.err)
	}
	if !r.seen.Operator.Settled() || !strings.Contains(r.seen.Describe(), "clusterNetwork [10.128.0.0/14, fd01::/48] serviceNetwork [172.30.0.0/16, fd02::/112]") {
		t.Fatalf("Wait returned %s; want the dual-stack status and a settled operator", r.seen.Describe())
	}
	// Progress: the single-stack start, the rollout, the end.
	var progressing, first bool
	for i, u := range r.updates {
		if i == 0 {
			first = u.Network != nil && len(u.Network.StatusServiceNetwork) == 1
		}
		progressing = progressing || u.Operator.Progressing == "True"
	}
	if len(r.updates) < 3 || !first || !progressing {
		t.Fatalf("updates %+v; want the single-stack start, a Progressing state and the end", r.updates)
	}
}

func TestWaitDegradedFailsAtOnce(t *testing.T) {
	o := newOpenShift(t, networkConfig(singleStack), clusterOperator("True", "False", "False", "", ""))
	ch := o.goWait(context.Background(), toDualStack, longTimeout)
	o.watching(t)
	o.update(t, platform.ClusterOperatorsGVR, clusterOperator("True", "False", "True", "InvalidClusterConfig", "AWS is not one of the supported platforms for dual stack"))
	r := result(t, ch)
	var degraded *DegradedError
	if !errors.As(r.err, &degraded) || degraded.Operator.Reason != "InvalidClusterConfig" || r.elapsed > 5*time.Second {
		t.Fatalf("Wait = %v after %s; want a DegradedError at once", r.err, r.elapsed)
	}
}

func TestWaitFailsAtOnceWhenRetryCannotHelp(t *testing.T) {
	cos := platform.ClusterOperatorsGVR.GroupResource()
	for _, tc := range []struct {
		name, verb, resource string
		err                  error
		is                   func(error) bool
		want                 []string
	}{
		{"clusteroperators list forbidden", "list", "clusteroperators",
			apierrors.NewForbidden(cos, "", errors.New(`User "alice" cannot list resource "clusteroperators" in API group "config.openshift.io" at the cluster scope`)),
			apierrors.IsForbidden,
			[]string{"reading clusteroperators.config.openshift.io/network: ", `cannot list resource "clusteroperators" in API group "config.openshift.io"`, "ask for this permission"}},
		{"networks watch forbidden", "watch", "networks",
			apierrors.NewForbidden(platform.NetworksGVR.GroupResource(), "", errors.New(`User "alice" cannot watch resource "networks" in API group "config.openshift.io" at the cluster scope`)),
			apierrors.IsForbidden,
			[]string{"watching networks.config.openshift.io/cluster: ", `cannot watch resource "networks" in API group "config.openshift.io"`, "ask for this permission"}},
		{"networks CRD missing", "list", "networks",
			apierrors.NewGenericServerResponse(404, "list", platform.NetworksGVR.GroupResource(), "", "", 0, false),
			apierrors.IsNotFound,
			[]string{"reading networks.config.openshift.io/cluster: ", "the server could not find the requested resource"}},
		{"unauthorized", "list", "networks", apierrors.NewUnauthorized("Unauthorized"), apierrors.IsUnauthorized,
			[]string{"reading networks.config.openshift.io/cluster: ", "rejected the credentials"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOpenShift(t, networkConfig(singleStack), clusterOperator("True", "False", "False", "", ""))
			react := func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tc.err }
			if tc.verb == "watch" {
				o.dc.PrependWatchReactor(tc.resource, func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, tc.err })
			} else {
				o.dc.PrependReactor(tc.verb, tc.resource, react)
			}
			r := result(t, o.goWait(context.Background(), toDualStack, longTimeout))
			if r.err == nil || !tc.is(r.err) || errors.Is(r.err, ErrTimeout) {
				t.Fatalf("Wait = %v; want the %s error, not a timeout", r.err, tc.name)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("error %q does not say %q", r.err, w)
				}
			}
			if r.elapsed > 5*time.Second {
				t.Errorf("took %s with a %s timeout: the failure was retried instead of reported", r.elapsed, longTimeout)
			}
		})
	}
}

func TestWaitRetriesTransientErrors(t *testing.T) {
	quietReflector(t)
	o := newOpenShift(t, networkConfig(dualStack), clusterOperator("True", "False", "False", "", ""))
	var mu sync.Mutex
	calls := map[string]int{}
	for _, res := range []string{"networks", "clusteroperators"} {
		o.dc.PrependReactor("list", res, func(k8stesting.Action) (bool, runtime.Object, error) {
			mu.Lock()
			defer mu.Unlock()
			if calls[res]++; calls[res] == 1 {
				return true, nil, apierrors.NewServiceUnavailable("the apiserver is shutting down")
			}
			return false, nil, nil
		})
	}
	r := result(t, o.goWait(context.Background(), toDualStack, longTimeout))
	if r.err != nil {
		t.Fatalf("Wait = %v; want the 503 retried and the goal reached", r.err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["networks"] < 2 || calls["clusteroperators"] < 2 {
		t.Fatalf("lists %v; want each to fail once and be retried", calls)
	}
}

func TestWaitTimeoutSaysWhatItSawLast(t *testing.T) {
	o := newOpenShift(t, networkConfig(dualStack), clusterOperator("True", "True", "False", "", ""))
	r := result(t, o.goWait(context.Background(), toDualStack, 500*time.Millisecond))
	want := "timed out after 500ms; last seen: status clusterNetwork [10.128.0.0/14, fd01::/48] serviceNetwork [172.30.0.0/16, fd02::/112]; operator Available=True Progressing=True Degraded=False"
	if !errors.Is(r.err, ErrTimeout) || r.err.Error() != want {
		t.Fatalf("Wait = %v;\nwant %s", r.err, want)
	}
	if r.seen.Operator.Progressing != "True" || r.seen.Network == nil {
		t.Fatalf("Observed %+v; want the last state", r.seen)
	}
}

func TestWaitTimeoutWhileRetryingSaysWhy(t *testing.T) {
	quietReflector(t)
	o := newOpenShift(t, networkConfig(singleStack), clusterOperator("True", "False", "False", "", ""))
	o.dc.PrependReactor("list", "clusteroperators", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcdserver: request timed out"))
	})
	r := result(t, o.goWait(context.Background(), toDualStack, 1500*time.Millisecond))
	if !errors.Is(r.err, ErrTimeout) || !strings.Contains(r.err.Error(), "still retrying after reading clusteroperators.config.openshift.io/network: Internal error occurred: etcdserver: request timed out") {
		t.Fatalf("Wait = %v; want a timeout naming the failing list", r.err)
	}
}

func TestWaitCancelledIsNotATimeout(t *testing.T) {
	o := newOpenShift(t, networkConfig(singleStack), clusterOperator("True", "False", "False", "", ""))
	ctx, cancel := context.WithCancel(context.Background())
	ch := o.goWait(ctx, toDualStack, longTimeout)
	o.watching(t)
	cancel()
	if r := result(t, ch); !errors.Is(r.err, context.Canceled) || errors.Is(r.err, ErrTimeout) {
		t.Fatalf("Wait = %v; want context.Canceled", r.err)
	}
}

func TestWaitRevertGoal(t *testing.T) {
	// Revert waits for the entries to be gone from status.
	o := newOpenShift(t, networkConfig(dualStack), clusterOperator("True", "False", "False", "", ""))
	goal := Goal{AbsentCluster: []string{"fd01::/48"}, AbsentService: []string{"fd02::/112"}}
	ch := o.goWait(context.Background(), goal, longTimeout)
	o.watching(t)
	o.update(t, platform.NetworksGVR, networkConfig(singleStack))
	if r := result(t, ch); r.err != nil || len(r.seen.Network.StatusServiceNetwork) != 1 {
		t.Fatalf("Wait = %+v, %v; want the single-stack status", r.seen, r.err)
	}
}
