package kube

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
)

// NamespaceSelection is the namespace flags a layer command shares:
// --include-namespaces, --exclude-namespaces, --namespace-selector.
type NamespaceSelection struct {
	Include  []string `json:"include,omitempty"`
	Exclude  []string `json:"exclude,omitempty"`
	Selector string   `json:"selector,omitempty"` // a label selector on Namespaces
}

// Validate checks the flags on their own, before the cluster is asked:
// the selectors parse (podSelector is the objects' own -l), no empty name,
// no namespace both included and excluded. Errors are cli.UsageError.
func (s NamespaceSelection) Validate(podSelector string) error {
	if _, err := labels.Parse(s.Selector); err != nil {
		return cli.Usagef("--namespace-selector %q is not a label selector (e.g. team=shop,env!=dev): %v", s.Selector, err)
	}
	if _, err := labels.Parse(podSelector); err != nil {
		return cli.Usagef("--selector %q is not a label selector (e.g. app=web,tier!=frozen): %v", podSelector, err)
	}
	for _, list := range []struct {
		flag  string
		names []string
	}{{"--include-namespaces", s.Include}, {"--exclude-namespaces", s.Exclude}} {
		for _, n := range list.names {
			if n == "" {
				return cli.Usagef("%s has an empty name: give a comma-separated list of namespaces", list.flag)
			}
		}
	}
	for _, n := range s.Include {
		if slices.Contains(s.Exclude, n) {
			return cli.Usagef("namespace %s is both in --include-namespaces and --exclude-namespaces: name it in one of them", n)
		}
	}
	return nil
}

// Resolve reads the namespaces (one paginated list) and returns the set the
// flags select; nil means every namespace (no flag given). A named
// namespace that does not exist is bad input (cli.UsageError); note says
// when no namespace is left.
func (s NamespaceSelection) Resolve(ctx context.Context, kc kubernetes.Interface) (allowed map[string]bool, note string, err error) {
	if s.Selector == "" && len(s.Include) == 0 && len(s.Exclude) == 0 {
		return nil, "", nil
	}
	sel, err := labels.Parse(s.Selector)
	if err != nil {
		return nil, "", cli.Usagef("--namespace-selector %q: %v", s.Selector, err)
	}
	all, err := pager.ListAll[corev1.Namespace](ctx, metav1.ListOptions{}, func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
		return kc.CoreV1().Namespaces().List(ctx, lo)
	})
	if err != nil {
		return nil, "", Explain("listing namespaces (to apply the namespace flags)", err)
	}
	exists := map[string]bool{}
	for _, ns := range all {
		exists[ns.Name] = true
	}
	for _, list := range []struct {
		flag  string
		names []string
	}{{"--include-namespaces", s.Include}, {"--exclude-namespaces", s.Exclude}} {
		var unknown []string
		for _, n := range list.names {
			if !exists[n] {
				unknown = append(unknown, n)
			}
		}
		if len(unknown) > 0 {
			return nil, "", cli.Usagef("%s: no namespace named %s in this cluster (kubectl get namespaces lists them)", list.flag, strings.Join(unknown, ", "))
		}
	}
	allowed = map[string]bool{}
	for _, ns := range all {
		switch {
		case len(s.Include) > 0 && !slices.Contains(s.Include, ns.Name),
			slices.Contains(s.Exclude, ns.Name),
			!sel.Matches(labels.Set(ns.Labels)):
			continue
		}
		allowed[ns.Name] = true
	}
	if len(allowed) == 0 {
		note = "no namespace is left after the namespace flags: nothing to look at"
	}
	return allowed, note, nil
}
