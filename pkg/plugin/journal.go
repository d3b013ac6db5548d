package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// journalFlag is --journal-namespace: where the journal and the lock of
// mutating runs live. Not given, the journal is looked for across the
// cluster, so a journal an earlier run kept elsewhere is never invisible.
type journalFlag struct {
	ns  string
	set bool
}

func (j *journalFlag) String() string {
	if j.ns == "" {
		return journal.DefaultNamespace
	}
	return j.ns
}
func (j *journalFlag) Set(v string) error { j.ns, j.set = v, true; return nil }
func (j *journalFlag) Type() string       { return "string" }

func (j *journalFlag) add(cmd *cobra.Command) {
	cmd.Flags().Var(j, "journal-namespace", fmt.Sprintf("Namespace of the ConfigMap %s that records every change, and of the Lease %s that keeps two changes from running at once (default: the namespace that holds a journal already, else %s)",
		journal.DefaultName, journal.LeaseName, journal.DefaultNamespace))
}

// namespace resolves where the journal is: the flag's namespace, which must
// exist (bad input, exit 2, before anything changes); else the one
// namespace holding a journal; several is bad input too.
func (j *journalFlag) namespace(ctx context.Context, kc kubernetes.Interface) (string, error) {
	if j.set {
		if j.ns == "" {
			return "", cli.Usagef("--journal-namespace is empty: name the namespace of the journal, e.g. --journal-namespace %s", journal.DefaultNamespace)
		}
		_, err := kc.CoreV1().Namespaces().Get(ctx, j.ns, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return "", cli.Usagef("--journal-namespace %s: no such namespace; name an existing one (the journal is kept there), or leave the flag out to use %s", j.ns, journal.DefaultNamespace)
		case err != nil && !apierrors.IsForbidden(err):
			return "", fmt.Errorf("checking --journal-namespace %s: %w", j.ns, err)
		}
		return j.ns, nil
	}
	found, err := journal.Namespaces(ctx, kc)
	if err != nil {
		// Not allowed to look across namespaces: the default, as before.
		return journal.DefaultNamespace, nil
	}
	slices.Sort(found)
	found = slices.Compact(found)
	switch len(found) {
	case 0:
		return journal.DefaultNamespace, nil
	case 1:
		return found[0], nil
	default:
		return "", cli.Usagef("journals of this tool in %d namespaces (%s): choose one with --journal-namespace", len(found), strings.Join(found, ", "))
	}
}

// store opens the journal.
func (j *journalFlag) store(ctx context.Context, kc kubernetes.Interface) (*journal.Store, error) {
	ns, err := j.namespace(ctx, kc)
	if err != nil {
		return nil, err
	}
	j.ns = ns
	return journal.NewStore(kc, ns, ""), nil
}

// open opens the journal and, for a run that changes something (dry is
// none), takes the cluster's lock for what, so one change runs at a time;
// release gives it back (a no-op for dry runs).
func (j *journalFlag) open(ctx context.Context, kc kubernetes.Interface, dry cli.DryRun, what string) (store *journal.Store, release func(), err error) {
	store, err = j.store(ctx, kc)
	if err != nil {
		return nil, nil, err
	}
	if dry != cli.DryRunNone {
		return store, func() {}, nil
	}
	l, err := journal.Acquire(ctx, kc, store.Namespace(), what)
	var held *journal.HeldError
	switch {
	case errors.As(err, &held):
		return nil, nil, err
	case err != nil:
		return nil, nil, kube.Explain("taking the lock that keeps two dualstack changes from running at once", err)
	}
	return store, l.Release, nil
}
