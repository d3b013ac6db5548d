package probe

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// landsThenTimesOut makes the first create of resource happen and then
// answers it with a timeout, as when the answer is lost on the way back.
func landsThenTimesOut(cs *fake.Clientset, resource string) *int {
	fired := 0
	cs.PrependReactor("create", resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
		if fired > 0 {
			return false, nil, nil
		}
		fired++
		obj := a.(k8stesting.CreateAction).GetObject()
		if err := cs.Tracker().Create(a.GetResource(), obj, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewTimeoutError("the server was unable to return a response in the time allotted", 1)
	})
	return &fired
}

func scenario() Scenario {
	return Scenario{Namespace: "dualstack-validate", RunID: "run1", NoMesh: true, Host: "h", CurlImage: "c", HTTPBinImage: "b"}
}

func TestNamespaceCreateAnswerLost(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	fired := landsThenTimesOut(cs, "namespaces")
	var d Deployment
	if err := Deploy(ctx, cs, dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), scenario(), &d); err != nil {
		t.Fatalf("a namespace that was created although the answer was lost must be used: %v", err)
	}
	if *fired != 1 || !d.OwnNamespace() {
		t.Fatalf("fired %d, own namespace %t", *fired, d.OwnNamespace())
	}
	if err := d.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "dualstack-validate", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("cleanup must delete the namespace it created: %v", err)
	}
}

func TestNamespaceCreateFailsOtherwise(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	cs.PrependReactor("create", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewTimeoutError("timeout", 1) // and it did not land
	})
	var d Deployment
	err := Deploy(ctx, cs, dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), scenario(), &d)
	if err == nil || d.OwnNamespace() {
		t.Fatalf("a create that did not land must fail: %v, own %t", err, d.OwnNamespace())
	}
}

func TestReusedNamespaceUncertainObjects(t *testing.T) {
	ctx := context.Background()
	theirs := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses", Namespace: "shared"}}
	cs := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shared"}}, theirs)
	landsThenTimesOut(cs, "pods")
	s := scenario()
	s.Namespace, s.NamespaceReuse = "shared", true
	var d Deployment
	err := Deploy(ctx, cs, dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), s, &d)
	var st apierrors.APIStatus
	if err == nil || !errors.As(err, &st) {
		t.Fatalf("the pod create's lost answer must be reported: %v", err)
	}
	if err := d.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	pods, _ := cs.CoreV1().Pods("shared").List(ctx, metav1.ListOptions{})
	if len(pods.Items) != 0 {
		t.Fatalf("the pod whose create answer was lost carries the run label and must be deleted: %d left", len(pods.Items))
	}
	if _, err := cs.CoreV1().ServiceAccounts("shared").Get(ctx, "someone-elses", metav1.GetOptions{}); err != nil {
		t.Fatalf("objects validate did not create must stay: %v", err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "shared", metav1.GetOptions{}); err != nil {
		t.Fatalf("a reused namespace must stay: %v", err)
	}

	// An object of the same name that is not this run's is left alone.
	other := scenario()
	other.Namespace, other.NamespaceReuse, other.RunID = "shared", true, "run2"
	landsThenTimesOut(cs, "serviceaccounts")
	var d2 Deployment
	_ = Deploy(ctx, cs, dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), other, &d2)
	d2.RunID = "run3" // as if the account found were another run's
	if err := d2.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts("shared").Get(ctx, ServiceAccount, metav1.GetOptions{}); err != nil {
		t.Fatalf("an uncertain object without this run's label must not be deleted: %v", err)
	}
}
