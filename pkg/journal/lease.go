package journal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
	"k8s.io/utils/ptr"
)

// LeaseName is the coordination.k8s.io Lease, next to the journal, that
// serialises the tool's mutating runs on one cluster: two applies at once
// once left a second egress-only gateway that no journal entry described.
const LeaseName = "dualstack-lock"

// LeaseDuration is how long a lock outlives its last renewal: a run that was
// killed blocks the next one for at most this long.
const LeaseDuration = 60 * time.Second

// processID tells this process's holds from others' (a run of upgrade takes
// the lock once; the phases it runs inside the process share it).
var processID = func() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// HeldError says another run holds the lock.
type HeldError struct {
	Location string // namespace/name of the Lease
	Holder   string
	Since    time.Time
	Expires  time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("another dualstack change is running (%s, since %s): wait for it to finish and re-run; if it was killed, its lock %s expires at %s",
		e.Holder, e.Since.UTC().Format(time.RFC3339), e.Location, e.Expires.UTC().Format(time.RFC3339))
}

// Lock is a held lease; Release gives it back.
type Lock struct {
	client    kubernetes.Interface
	namespace string
	holder    string
	nested    bool

	mu   sync.Mutex // guards stop
	stop chan struct{}
	done chan struct{}
}

// Acquire takes the lock in namespace for the run described by what (e.g.
// "aws apply"), or returns a *HeldError naming the run that holds it. A lock
// whose holder stopped renewing it more than LeaseDuration ago is taken
// over. While held, it is renewed in the background until Release.
func Acquire(ctx context.Context, client kubernetes.Interface, namespace, what string) (*Lock, error) {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	holder := holderIdentity(what)
	leases := client.CoordinationV1().Leases(namespace)
	now := metav1.NewMicroTime(time.Now())
	for attempt := 0; attempt < 3; attempt++ {
		l, err := leases.Get(ctx, LeaseName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			fresh := &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: namespace, Labels: map[string]string{managedByLabel: managedBy}},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: ptr.To(int32(LeaseDuration / time.Second)),
					AcquireTime: &now, RenewTime: &now},
			}
			if _, err := leases.Create(ctx, fresh, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
				continue // someone else was quicker: look again
			} else if err != nil {
				return nil, fmt.Errorf("taking the lock %s/%s: %w", namespace, LeaseName, err)
			}
			return start(client, namespace, holder), nil
		case err != nil:
			return nil, fmt.Errorf("reading the lock %s/%s: %w", namespace, LeaseName, err)
		}
		current := ptr.Deref(l.Spec.HolderIdentity, "")
		if current != "" && ownedByThisProcess(current) {
			return &Lock{nested: true}, nil
		}
		if current != "" && !expired(l, now.Time) {
			return nil, held(l, namespace)
		}
		// Free, or stale: take it over. The update carries the
		// resourceVersion just read, so of two runs taking over, one fails.
		l.Spec.HolderIdentity = &holder
		l.Spec.LeaseDurationSeconds = ptr.To(int32(LeaseDuration / time.Second))
		l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
		if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); apierrors.IsConflict(err) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("taking over the expired lock %s/%s: %w", namespace, LeaseName, err)
		}
		return start(client, namespace, holder), nil
	}
	l, err := leases.Get(ctx, LeaseName, metav1.GetOptions{})
	if err == nil {
		return nil, held(l, namespace)
	}
	return nil, fmt.Errorf("taking the lock %s/%s: it keeps changing under us: %w", namespace, LeaseName, err)
}

func held(l *coordinationv1.Lease, namespace string) *HeldError {
	e := &HeldError{Location: namespace + "/" + LeaseName, Holder: ptr.Deref(l.Spec.HolderIdentity, "")}
	if l.Spec.AcquireTime != nil {
		e.Since = l.Spec.AcquireTime.Time
	}
	if l.Spec.RenewTime != nil {
		e.Expires = l.Spec.RenewTime.Add(time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second)
	}
	if i := strings.Index(e.Holder, " ["); i > 0 {
		e.Holder = e.Holder[:i] // the process tag means nothing to a reader
	}
	return e
}

func expired(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil {
		return true
	}
	d := time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second
	return now.After(l.Spec.RenewTime.Add(d))
}

// holderIdentity says who holds the lock, for the message another run
// prints: user, host, process and command, plus this process's tag.
func holderIdentity(what string) string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s: %s@%s pid %d [%s]", what, name, host, os.Getpid(), processID)
}

func ownedByThisProcess(holder string) bool {
	return strings.HasSuffix(holder, " ["+processID+"]")
}

func start(client kubernetes.Interface, namespace, holder string) *Lock {
	l := &Lock{client: client, namespace: namespace, holder: holder, stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew(l.stop)
	return l
}

// renew keeps the lock fresh while the run lasts.
func (l *Lock) renew(stop <-chan struct{}) {
	defer close(l.done)
	t := time.NewTicker(LeaseDuration / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), LeaseDuration/3)
			leases := l.client.CoordinationV1().Leases(l.namespace)
			if cur, err := leases.Get(ctx, LeaseName, metav1.GetOptions{}); err == nil && ptr.Deref(cur.Spec.HolderIdentity, "") == l.holder {
				now := metav1.NewMicroTime(time.Now())
				cur.Spec.RenewTime = &now
				_, _ = leases.Update(ctx, cur, metav1.UpdateOptions{})
			}
			cancel()
		}
	}
}

// Release gives the lock back (even after Ctrl-C: the run is over). A lock
// that was taken over meanwhile is left to its new holder.
func (l *Lock) Release() {
	if l == nil || l.nested {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stop == nil {
		return
	}
	close(l.stop)
	l.stop = nil
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leases := l.client.CoordinationV1().Leases(l.namespace)
	cur, err := leases.Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil || ptr.Deref(cur.Spec.HolderIdentity, "") != l.holder {
		return
	}
	cur.Spec.HolderIdentity = nil
	cur.Spec.RenewTime = nil
	_, _ = leases.Update(ctx, cur, metav1.UpdateOptions{})
}

// Namespaces lists the namespaces that hold a journal (its first shard),
// across the cluster, so a command not told --journal-namespace finds one
// that an earlier run kept elsewhere.
func Namespaces(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	cms, err := pager.ListAll[corev1.ConfigMap](ctx, metav1.ListOptions{LabelSelector: managedByLabel + "=" + managedBy, FieldSelector: "metadata.name=" + DefaultName},
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.CoreV1().ConfigMaps(metav1.NamespaceAll).List(ctx, o)
		})
	if err != nil {
		return nil, fmt.Errorf("looking for the journal in every namespace: %w", err)
	}
	out := make([]string, 0, len(cms))
	for _, cm := range cms {
		out = append(out, cm.Namespace)
	}
	return out, nil
}
