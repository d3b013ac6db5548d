package journal

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func TestLockIsExclusiveNestedAndReleased(t *testing.T) {
	ctx := context.Background()
	kc := fake.NewClientset()
	l, err := Acquire(ctx, kc, "kube-system", "aws apply")
	if err != nil {
		t.Fatal(err)
	}
	// The same process (upgrade running its phases) shares the lock.
	inner, err := Acquire(ctx, kc, "kube-system", "network")
	if err != nil {
		t.Fatalf("nested acquire: %v", err)
	}
	inner.Release()

	// Another run (another process: another holder) is refused, and told who holds it.
	lease, _ := kc.CoordinationV1().Leases("kube-system").Get(ctx, LeaseName, metav1.GetOptions{})
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); !strings.HasPrefix(h, "aws apply: ") {
		t.Fatalf("holder %q", h)
	}
	lease.Spec.HolderIdentity = ptr.To("aws apply: someone@elsewhere pid 1 [other]")
	if _, err := kc.CoordinationV1().Leases("kube-system").Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(ctx, kc, "kube-system", "gateway")
	var held *HeldError
	if !errors.As(err, &held) || !strings.Contains(err.Error(), "another dualstack change is running (aws apply: someone@elsewhere pid 1, since") {
		t.Fatalf("second acquire: %v", err)
	}
	// Release leaves a lock taken over by someone else alone.
	l.Release()
	lease, _ = kc.CoordinationV1().Leases("kube-system").Get(ctx, LeaseName, metav1.GetOptions{})
	if ptr.Deref(lease.Spec.HolderIdentity, "") == "" {
		t.Fatal("released a lock held by another run")
	}
}

func TestStaleLockIsTakenOverAndReleased(t *testing.T) {
	ctx := context.Background()
	old := metav1.NewMicroTime(time.Now().Add(-2 * LeaseDuration))
	kc := fake.NewClientset(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: "ns"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("upgrade: killed@host pid 9 [dead]"), LeaseDurationSeconds: ptr.To(int32(60)),
			AcquireTime: &old, RenewTime: &old},
	})
	l, err := Acquire(ctx, kc, "ns", "rollback")
	if err != nil {
		t.Fatalf("a lock not renewed for two lease durations must be taken over: %v", err)
	}
	l.Release()
	lease, _ := kc.CoordinationV1().Leases("ns").Get(ctx, LeaseName, metav1.GetOptions{})
	if lease.Spec.HolderIdentity != nil {
		t.Fatalf("not released: %v", *lease.Spec.HolderIdentity)
	}
	// Free again: the next run takes it.
	l, err = Acquire(ctx, kc, "ns", "aws apply")
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}
