package services

import (
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Only an answer that says nothing was changed marks a patch as not made;
// a timeout or a server error leaves its entry pending.
func TestRefused(t *testing.T) {
	gr := schema.GroupResource{Resource: "services"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{apierrors.NewForbidden(gr, "web", errors.New("no")), true},
		{apierrors.NewTooManyRequests("slow down", 1), true},
		{apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "web", nil), true},
		{apierrors.NewTimeoutError("request did not complete within the allowed duration", 0), false},
		{apierrors.NewServerTimeout(gr, "patch", 0), false},
		{apierrors.NewInternalError(errors.New("etcd")), false},
		{errors.New("connection reset by peer"), false},
	} {
		if got := kube.Refused(tc.err); got != tc.want {
			t.Errorf("Refused(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
