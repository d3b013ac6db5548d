package kube

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestExplain(t *testing.T) {
	nodes := schema.GroupResource{Resource: "nodes"}
	for _, tc := range []struct {
		err  error
		hint string
	}{
		{apierrors.NewUnauthorized("no"), "rejected the credentials"},
		{apierrors.NewForbidden(nodes, "", errors.New("no")), "ask for this permission"},
		{&url.Error{Op: "Get", URL: "https://127.0.0.1:1", Err: errors.New("connection refused")}, "is the cluster up"},
		{errors.New("other"), "listing nodes: other"},
	} {
		got := Explain("listing nodes", tc.err)
		if !strings.Contains(got.Error(), tc.hint) || !errors.Is(got, tc.err) {
			t.Errorf("Explain(%v) = %v, want a hint %q and the cause wrapped", tc.err, got, tc.hint)
		}
	}
	if Explain("x", nil) != nil {
		t.Fatal("nil stays nil")
	}
}
