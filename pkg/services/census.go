package services

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// Census counts the cluster's Services the way Plan judges them, with no
// selection: what status reports.
type Census struct {
	// WithClusterIP counts the Services that have a cluster IP (or are
	// headless with a selector), whatever their families.
	WithClusterIP int `json:"withClusterIP"`
	// SingleStack counts those the services command would change.
	SingleStack int `json:"singleStack"`
	// Examples name a few of them, system Services first.
	Examples []string `json:"examples,omitempty"`
}

// maxExamples caps Census.Examples.
const maxExamples = 3

// Count reads every Service, page by page, keeping only the counts.
func Count(ctx context.Context, kc kubernetes.Interface) (Census, error) {
	var c Census
	var system, other []string
	roles := map[string]string{}
	err := pager.Each(ctx, metav1.ListOptions{}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return kc.CoreV1().Services(metav1.NamespaceAll).List(ctx, o)
	}, func(svc *corev1.Service) error {
		change, _ := Judge(svc)
		hasIP := svc.Spec.ClusterIP != "" && (svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.Spec.Selector) > 0)
		if svc.Spec.Type != corev1.ServiceTypeExternalName && hasIP {
			c.WithClusterIP++
		}
		if !change {
			return nil
		}
		c.SingleStack++
		ref := svc.Namespace + "/" + svc.Name
		switch {
		case systemRole(svc) != "":
			system = append(system, ref)
			roles[ref] = systemRole(svc)
		case len(other) < maxExamples:
			other = append(other, ref)
		}
		return nil
	})
	if err != nil {
		return Census{}, err
	}
	slices.SortStableFunc(system, func(a, b string) int { return systemRank(roles[a]) - systemRank(roles[b]) })
	c.Examples = append(system, other...)
	if len(c.Examples) > maxExamples {
		c.Examples = c.Examples[:maxExamples]
	}
	return c, nil
}
