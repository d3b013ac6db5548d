package plugin

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
)

func TestCheckPod(t *testing.T) {
	running := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sleep", Namespace: "demo"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "sleep"}, {Name: "istio-proxy"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	pending := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "demo"}}
	cs := fake.NewClientset(running, pending)
	ctx := context.Background()
	for _, tc := range []struct {
		ref  probe.PodRef
		want string // "" for no error
	}{
		{probe.PodRef{Namespace: "demo", Name: "sleep"}, ""},
		{probe.PodRef{Namespace: "demo", Name: "sleep", Container: "istio-proxy"}, ""},
		{probe.PodRef{Namespace: "demo", Name: "nope"}, "pod demo/nope not found"},
		{probe.PodRef{Namespace: "demo", Name: "sleep", Container: "curl"}, `no container "curl": pass -c with one of sleep, istio-proxy`},
		{probe.PodRef{Namespace: "demo", Name: "new"}, "pod demo/new is Pending, not Running"},
	} {
		err := checkPod(ctx, cs, tc.ref)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.ref, err, tc.want)
		}
	}
	// A role that may exec but not read pods: exec decides.
	cs.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "sleep", nil)
	})
	if err := checkPod(ctx, cs, probe.PodRef{Namespace: "demo", Name: "sleep"}); err != nil {
		t.Errorf("forbidden get: %v, want no error", err)
	}
}
