package kube

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Explain adds what to do to the API errors a user can fix: an unreachable
// server, a rejected login, a missing permission. doing says what was being
// done ("listing nodes").
func Explain(doing string, err error) error {
	var urlErr *url.Error
	var netErr net.Error
	switch {
	case err == nil:
		return nil
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: %w (the cluster rejected the credentials: log in again, or check the kubeconfig user)", doing, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w (ask for this permission, or use a context that has it)", doing, err)
	case errors.As(err, &urlErr) || errors.As(err, &netErr):
		return fmt.Errorf("%s: %w (is the cluster up and the kubeconfig context right? check with --context or kubectl cluster-info)", doing, err)
	default:
		return fmt.Errorf("%s: %w", doing, err)
	}
}

// Refused tells an answer of the apiserver that says nothing was changed (a
// 4xx refusal, a throttle among them) from no answer, a timeout (408, 504)
// or a server error (5xx), after which a write may have landed.
func Refused(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	code := status.Status().Code
	return code >= 400 && code < 500 && code != 408
}
