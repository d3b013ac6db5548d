// Package journal records every change the tool makes to a cluster or its
// cloud account, in a ConfigMap in the cluster, so that rollback and revert
// undo exactly those changes and nothing that was there before, and so that a
// re-run after an interruption knows what is already done.
//
// The rule for callers: Put the entry as Pending before the change, then as
// Done (with whatever undoing needs, e.g. the ID of what was created) after
// it. A Pending entry after a crash means "may or may not have happened":
// whoever resumes or rolls back checks the real state.
package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Where the journal lives unless a command is told otherwise.
const (
	DefaultNamespace = "kube-system"
	DefaultName      = "dualstack-journal"
	dataKey          = "entries.json"
	managedByLabel   = "app.kubernetes.io/managed-by"
	managedBy        = "kubectl-dualstack"
)

// State of a recorded change.
type State string

const (
	Pending State = "pending" // about to be made; may or may not have happened
	Done    State = "done"    // made, and Undo says how to take it back
	Undone  State = "undone"  // taken back by a rollback or revert
	Failed  State = "failed"  // refused by the API (conflict, forbidden): not made, nothing to undo
)

// Entry is one change. Field names are part of the stored format.
type Entry struct {
	// ID is stable for the same change, so a re-run finds its own entry:
	// e.g. "underlay/AssociateVpcCidrBlock/vpc-0abc".
	ID        string `json:"id"`
	Layer     string `json:"layer"`     // underlay, overlay, gateway
	Operation string `json:"operation"` // the AWS operation or API verb
	Resource  string `json:"resource"`  // what it changed
	// Undo holds what undoing needs: created IDs, previous values.
	Undo    map[string]string `json:"undo,omitempty"`
	State   State             `json:"state"`
	Seq     int               `json:"seq"` // recording order; undo in reverse
	Updated time.Time         `json:"updated"`
}

// Journal is the recorded changes, in recording order.
type Journal struct {
	Entries []Entry `json:"entries"`
}

// Get finds an entry by ID.
func (j *Journal) Get(id string) (Entry, bool) {
	for _, e := range j.Entries {
		if e.ID == id {
			return e, true
		}
	}
	return Entry{}, false
}

// Layer returns the entries of one layer, in recording order.
func (j *Journal) Layer(layer string) []Entry {
	var out []Entry
	for _, e := range j.Entries {
		if e.Layer == layer {
			out = append(out, e)
		}
	}
	return out
}

// Store reads and writes the journal ConfigMap.
type Store struct {
	client          kubernetes.Interface
	namespace, name string
	now             func() time.Time
}

// NewStore uses namespace/name, or the defaults when they are empty.
func NewStore(client kubernetes.Interface, namespace, name string) *Store {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if name == "" {
		name = DefaultName
	}
	return &Store{client: client, namespace: namespace, name: name, now: time.Now}
}

// Location is "namespace/name", for messages.
func (s *Store) Location() string { return s.namespace + "/" + s.name }

// Load reads the journal; a missing ConfigMap is an empty journal.
func (s *Store) Load(ctx context.Context) (*Journal, error) {
	cm, err := s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &Journal{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the journal %s: %w", s.Location(), err)
	}
	return decode(cm)
}

// Put inserts an entry, or updates the entry with the same ID (keeping its
// place in the order). Concurrent writers are serialised by the ConfigMap's
// resourceVersion.
func (s *Store) Put(ctx context.Context, e Entry) error {
	if e.ID == "" || e.State == "" {
		return fmt.Errorf("journal entry needs an ID and a state: %+v", e)
	}
	e.Updated = s.now().UTC().Truncate(time.Second)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Name: s.name, Namespace: s.namespace, Labels: map[string]string{managedByLabel: managedBy},
			}}
			if err := encode(cm, &Journal{Entries: []Entry{withSeq(e, 1)}}); err != nil {
				return err
			}
			_, err = s.client.CoreV1().ConfigMaps(s.namespace).Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), s.name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		j, err := decode(cm)
		if err != nil {
			return err
		}
		j.put(e)
		if err := encode(cm, j); err != nil {
			return err
		}
		_, err = s.client.CoreV1().ConfigMaps(s.namespace).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("recording %s in the journal %s: %w", e.ID, s.Location(), err)
	}
	return nil
}

// SetState moves an existing entry to a new state, merging undo data in.
func (s *Store) SetState(ctx context.Context, id string, state State, undo map[string]string) error {
	j, err := s.Load(ctx)
	if err != nil {
		return err
	}
	e, ok := j.Get(id)
	if !ok {
		return fmt.Errorf("journal %s has no entry %s", s.Location(), id)
	}
	e.State = state
	for k, v := range undo {
		if e.Undo == nil {
			e.Undo = map[string]string{}
		}
		e.Undo[k] = v
	}
	return s.Put(ctx, e)
}

func (j *Journal) put(e Entry) {
	for i, old := range j.Entries {
		if old.ID == e.ID {
			j.Entries[i] = withSeq(e, old.Seq)
			return
		}
	}
	next := 1
	for _, old := range j.Entries {
		if old.Seq >= next {
			next = old.Seq + 1
		}
	}
	j.Entries = append(j.Entries, withSeq(e, next))
}

func withSeq(e Entry, seq int) Entry {
	e.Seq = seq
	return e
}

func decode(cm *corev1.ConfigMap) (*Journal, error) {
	j := &Journal{}
	raw := cm.Data[dataKey]
	if raw == "" {
		return j, nil
	}
	if err := json.Unmarshal([]byte(raw), j); err != nil {
		return nil, fmt.Errorf("the journal %s/%s is not readable (%w); it was edited by hand?", cm.Namespace, cm.Name, err)
	}
	sort.SliceStable(j.Entries, func(a, b int) bool { return j.Entries[a].Seq < j.Entries[b].Seq })
	return j, nil
}

func encode(cm *corev1.ConfigMap, j *Journal) error {
	b, err := json.MarshalIndent(j, "", " ")
	if err != nil {
		return err
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[dataKey] = string(b)
	return nil
}
