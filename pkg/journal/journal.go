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
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/pager"
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

// Store reads and writes the journal. It is one ConfigMap (name) while that
// holds the entries, then more next to it (name-1, name-2, ...): a shard
// takes at most shardEntries entries or shardBytes bytes, so no write nears
// the 1 MiB object limit and a write costs the size of one shard, not of the
// whole journal. New entries go to the last shard; updates stay in the
// entry's shard. Writes are guarded by each shard's resourceVersion: on a
// conflict the journal is read again and the change re-applied to it.
//
// A Store is safe for concurrent use; it caches what it last read or wrote.
type Store struct {
	client          kubernetes.Interface
	namespace, name string
	now             func() time.Time

	shardEntries, shardBytes int

	mu     sync.Mutex
	shards []*shard // nil until loaded
}

type shard struct {
	name    string
	cm      *corev1.ConfigMap // nil: not created yet
	entries []Entry
	size    int // bytes of entries when last encoded (estimate between writes)
}

// Shard limits: 1,000 entries of a few hundred bytes, well under the 1 MiB
// a ConfigMap may hold.
const (
	defaultShardEntries = 1000
	defaultShardBytes   = 512 << 10
)

// NewStore uses namespace/name, or the defaults when they are empty.
func NewStore(client kubernetes.Interface, namespace, name string) *Store {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if name == "" {
		name = DefaultName
	}
	return &Store{client: client, namespace: namespace, name: name, now: time.Now,
		shardEntries: defaultShardEntries, shardBytes: defaultShardBytes}
}

// Namespace is where the journal is kept.
func (s *Store) Namespace() string { return s.namespace }

// Location is "namespace/name", for messages.
func (s *Store) Location() string { return s.namespace + "/" + s.name }

// Load reads the journal (one list request for all its shards); a missing
// journal is an empty one.
func (s *Store) Load(ctx context.Context) (*Journal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	return s.journal(), nil
}

func (s *Store) load(ctx context.Context) error {
	byIndex := map[int]*corev1.ConfigMap{}
	cms, err := pager.ListAll[corev1.ConfigMap](ctx, metav1.ListOptions{LabelSelector: managedByLabel + "=" + managedBy}, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return s.client.CoreV1().ConfigMaps(s.namespace).List(ctx, o)
	})
	if err != nil {
		return fmt.Errorf("reading the journal %s: %w", s.Location(), err)
	}
	for i := range cms {
		if n, ok := s.shardIndex(cms[i].Name); ok {
			byIndex[n] = &cms[i]
		}
	}
	s.shards = nil
	for n := 0; n == 0 || byIndex[n] != nil; n++ {
		sh := &shard{name: s.shardName(n), cm: byIndex[n]}
		if sh.cm != nil {
			j, err := decode(sh.cm)
			if err != nil {
				return err
			}
			sh.entries, sh.size = j.Entries, len(sh.cm.Data[dataKey])
		}
		s.shards = append(s.shards, sh)
		delete(byIndex, n)
	}
	if len(byIndex) > 0 {
		return fmt.Errorf("the journal %s has a gap in its shards (%s missing); it was edited by hand?", s.Location(), s.shardName(len(s.shards)))
	}
	return nil
}

func (s *Store) shardName(n int) string {
	if n == 0 {
		return s.name
	}
	return s.name + "-" + strconv.Itoa(n)
}

func (s *Store) shardIndex(name string) (int, bool) {
	if name == s.name {
		return 0, true
	}
	rest, ok := strings.CutPrefix(name, s.name+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0 && strconv.Itoa(n) == rest
}

// journal merges the cached shards into one journal in recording order.
func (s *Store) journal() *Journal {
	j := &Journal{}
	for _, sh := range s.shards {
		for _, e := range sh.entries {
			e.Undo = maps.Clone(e.Undo) // callers own what they get
			j.Entries = append(j.Entries, e)
		}
	}
	sort.SliceStable(j.Entries, func(a, b int) bool { return j.Entries[a].Seq < j.Entries[b].Seq })
	return j
}

// Put inserts an entry, or updates the entry with the same ID (keeping its
// place in the order).
func (s *Store) Put(ctx context.Context, e Entry) error {
	return s.PutAll(ctx, []Entry{e})
}

// PutAll records several entries with one write per shard they touch
// (usually one): how apply records a batch of changes at a time.
func (s *Store) PutAll(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		if e.ID == "" || e.State == "" {
			return fmt.Errorf("journal entry needs an ID and a state: %+v", e)
		}
	}
	return s.update(ctx, entries[0].ID, len(entries), func(*Journal) ([]Entry, error) { return entries, nil })
}

// SetState moves an existing entry to a new state, merging undo data in.
func (s *Store) SetState(ctx context.Context, id string, state State, undo map[string]string) error {
	return s.update(ctx, id, 1, func(j *Journal) ([]Entry, error) {
		e, ok := j.Get(id)
		if !ok {
			return nil, fmt.Errorf("journal %s has no entry %s", s.Location(), id)
		}
		e.State = state
		for k, v := range undo {
			if e.Undo == nil {
				e.Undo = map[string]string{}
			}
			e.Undo[k] = v
		}
		return []Entry{e}, nil
	})
}

// conflictBackoff spreads out writers that keep meeting each other: with
// jitter one of them wins each round, and the others read again.
var conflictBackoff = wait.Backoff{Steps: 12, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1, Cap: time.Second}

// update computes entries from the journal as cached (read first if need
// be), writes the shards they change and, on a conflict with another
// writer, reads the journal again and starts over.
func (s *Store) update(ctx context.Context, firstID string, n int, change func(*Journal) ([]Entry, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	what := firstID
	if n > 1 {
		what = fmt.Sprintf("%d entries (%s, ...)", n, firstID)
	}
	loaded := false
	err := retry.RetryOnConflict(conflictBackoff, func() error {
		if s.shards == nil || loaded {
			if err := s.load(ctx); err != nil {
				return err
			}
		}
		loaded = true // from now on every attempt reads afresh
		entries, err := change(s.journal())
		if err != nil {
			return err
		}
		return s.write(ctx, entries)
	})
	if err != nil {
		s.shards = nil // unknown state: read before the next write
		return fmt.Errorf("recording %s in the journal %s: %w", what, s.Location(), err)
	}
	return nil
}

// write places the entries in the cached shards and writes every shard that
// changed. When a later shard conflicts, the retry reads the journal again
// and finds the entries of the shards written so far already in place, so
// it writes only what is still missing.
func (s *Store) write(ctx context.Context, entries []Entry) error {
	where := map[string][2]int{} // ID -> shard, index
	next := 1
	for si, sh := range s.shards {
		for i, e := range sh.entries {
			where[e.ID] = [2]int{si, i}
			if e.Seq >= next {
				next = e.Seq + 1
			}
		}
	}
	now := s.now().UTC().Truncate(time.Second)
	dirty := map[int]bool{}
	for _, e := range entries {
		e.Undo = maps.Clone(e.Undo) // the cache owns its copy
		if at, ok := where[e.ID]; ok {
			sh := s.shards[at[0]]
			old := sh.entries[at[1]]
			e.Seq, e.Updated = old.Seq, old.Updated
			if reflect.DeepEqual(old, e) {
				continue // already recorded just so
			}
			e.Updated = now
			sh.entries[at[1]] = e
			dirty[at[0]] = true
			continue
		}
		e.Seq, e.Updated = next, now
		next++
		last := len(s.shards) - 1
		if sh := s.shards[last]; len(sh.entries) >= s.shardEntries || (len(sh.entries) > 0 && sh.size+entrySize(e) > s.shardBytes) {
			s.shards = append(s.shards, &shard{name: s.shardName(last + 1)})
			last++
		}
		sh := s.shards[last]
		sh.entries = append(sh.entries, e)
		sh.size += entrySize(e)
		where[e.ID] = [2]int{last, len(sh.entries) - 1}
		dirty[last] = true
	}
	for si, sh := range s.shards {
		if !dirty[si] {
			continue
		}
		if err := s.writeShard(ctx, sh); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) writeShard(ctx context.Context, sh *shard) error {
	cms := s.client.CoreV1().ConfigMaps(s.namespace)
	if sh.cm == nil {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name: sh.name, Namespace: s.namespace, Labels: map[string]string{managedByLabel: managedBy},
		}}
		sh.size = encode(cm, sh.entries)
		created, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return apierrors.NewConflict(corev1.Resource("configmaps"), sh.name, err)
		}
		if err != nil {
			return err
		}
		sh.cm = created
		return nil
	}
	cm := sh.cm.DeepCopy()
	sh.size = encode(cm, sh.entries)
	updated, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	sh.cm = updated
	return nil
}

func entrySize(e Entry) int {
	b, _ := json.Marshal(e)
	return len(b) + 2
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

// encode writes one entry per line: compact, and still readable with
// kubectl get configmap -o yaml. It returns the encoded size.
func encode(cm *corev1.ConfigMap, entries []Entry) int {
	var b strings.Builder
	b.WriteString("{\"entries\": [")
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		line, _ := json.Marshal(e) // plain strings and maps: cannot fail
		b.WriteString("\n")
		b.Write(line)
	}
	b.WriteString("\n]}\n")
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[dataKey] = b.String()
	return b.Len()
}

// Undoable is layer's entries a rollback takes back, newest first: the
// done ones and the pending ones (which may or may not have happened).
func (j *Journal) Undoable(layer string) []Entry {
	var out []Entry
	for _, e := range slices.Backward(j.Layer(layer)) {
		if e.State == Done || e.State == Pending {
			out = append(out, e)
		}
	}
	return out
}

// UndoResult is one recorded change taken back (or left alone): the
// result of a layer's rollback. Field names are stable.
type UndoResult struct {
	Operation string `json:"operation"`
	Resource  string `json:"resource"`
	Status    string `json:"status"` // undone, skipped, failed
	Message   string `json:"message,omitempty"`
}
