package journal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestPutLoadAndOrder(t *testing.T) {
	ctx := context.Background()
	s := NewStore(fake.NewClientset(), "", "")
	if j, err := s.Load(ctx); err != nil || len(j.Entries) != 0 {
		t.Fatalf("missing journal must load empty: %+v %v", j, err)
	}
	for _, id := range []string{"underlay/a", "underlay/b", "overlay/c"} {
		if err := s.Put(ctx, Entry{ID: id, Layer: id[:len(id)-2], State: Pending}); err != nil {
			t.Fatal(err)
		}
	}
	// Updating keeps the original place; undo data merges.
	if err := s.SetState(ctx, "underlay/a", Done, map[string]string{"associationId": "x"}); err != nil {
		t.Fatal(err)
	}
	j, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Entries) != 3 || j.Entries[0].ID != "underlay/a" || j.Entries[0].Seq != 1 || j.Entries[2].Seq != 3 {
		t.Fatalf("order lost: %+v", j.Entries)
	}
	if e, _ := j.Get("underlay/a"); e.State != Done || e.Undo["associationId"] != "x" {
		t.Fatalf("entry not updated: %+v", e)
	}
	if got := j.Layer("underlay"); len(got) != 2 || got[1].ID != "underlay/b" {
		t.Fatalf("layer filter: %+v", got)
	}
	if err := s.SetState(ctx, "nope", Done, nil); err == nil {
		t.Fatal("unknown entry must be an error")
	}
	if err := s.Put(ctx, Entry{ID: "x"}); err == nil {
		t.Fatal("an entry without a state must be refused")
	}
}

func entry(i int) Entry {
	return Entry{ID: fmt.Sprintf("underlay/op/%04d", i), Layer: "underlay", Operation: "op", Resource: fmt.Sprint(i), State: Pending,
		Undo: map[string]string{"vpcId": "vpc-1"}}
}

func writes(cs *fake.Clientset) (creates, updates []string) {
	for _, a := range cs.Actions() {
		switch a.GetVerb() {
		case "create":
			creates = append(creates, a.(k8stesting.CreateAction).GetObject().(*corev1.ConfigMap).Name)
		case "update":
			updates = append(updates, a.(k8stesting.UpdateAction).GetObject().(*corev1.ConfigMap).Name)
		}
	}
	return creates, updates
}

func TestShardsKeepEachWriteSmall(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	s := NewStore(cs, "", "")
	s.shardEntries = 3
	var batch []Entry
	for i := 1; i <= 8; i++ {
		batch = append(batch, entry(i))
	}
	if err := s.PutAll(ctx, batch); err != nil {
		t.Fatal(err)
	}
	creates, updates := writes(cs)
	if !slices.Equal(creates, []string{"dualstack-journal", "dualstack-journal-1", "dualstack-journal-2"}) || len(updates) != 0 {
		t.Fatalf("8 entries, 3 a shard: want 3 creates and no update, got creates %v updates %v", creates, updates)
	}
	for name, want := range map[string]int{"dualstack-journal": 3, "dualstack-journal-1": 3, "dualstack-journal-2": 2} {
		cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(cm.Data[dataKey], `"id":`); got != want || cm.Labels[managedByLabel] != managedBy {
			t.Fatalf("%s: %d entries (want %d), labels %v", name, got, want, cm.Labels)
		}
	}

	// Updating an old entry rewrites only its shard; a new one goes to the last.
	cs.ClearActions()
	e := entry(2)
	e.State = Done
	if err := s.PutAll(ctx, []Entry{e, entry(9)}); err != nil {
		t.Fatal(err)
	}
	if _, updates := writes(cs); !slices.Equal(updates, []string{"dualstack-journal", "dualstack-journal-2"}) {
		t.Fatalf("want updates of shard 0 and the last shard, got %v", updates)
	}
	// Writing what is already recorded writes nothing.
	cs.ClearActions()
	if err := s.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	if c, u := writes(cs); len(c)+len(u) != 0 {
		t.Fatalf("an unchanged entry must not be written again: %v %v", c, u)
	}

	// A fresh store reads every shard in one list, in recording order.
	cs.ClearActions()
	j, err := NewStore(cs, "", "").Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cs.Actions()); n != 1 {
		t.Fatalf("load: want 1 request, got %d", n)
	}
	if len(j.Entries) != 9 {
		t.Fatalf("want 9 entries, got %d", len(j.Entries))
	}
	for i, e := range j.Entries {
		if e.Seq != i+1 || e.ID != entry(i+1).ID {
			t.Fatalf("entry %d out of order: %+v", i, e)
		}
	}
	if got, _ := j.Get(entry(2).ID); got.State != Done {
		t.Fatalf("update lost: %+v", got)
	}
}

func TestShardByteLimit(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	s := NewStore(cs, "ns", "j")
	s.shardBytes = 3*entrySize(entry(1)) + len("{\"entries\": [\n]}\n")
	for i := 1; i <= 7; i++ {
		if err := s.Put(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := cs.CoreV1().ConfigMaps("ns").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 3 {
		t.Fatalf("7 entries, 3 fit a shard: want 3 shards, got %d", len(list.Items))
	}
	for _, cm := range list.Items {
		if len(cm.Data[dataKey]) > s.shardBytes {
			t.Fatalf("%s holds %d bytes, over the %d limit", cm.Name, len(cm.Data[dataKey]), s.shardBytes)
		}
	}
}

func TestConflictReadsAgain(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	a, b := NewStore(cs, "", ""), NewStore(cs, "", "")
	if err := a.Put(ctx, entry(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, entry(2)); err != nil { // a's cache is stale now
		t.Fatal(err)
	}
	// The fake does not check resourceVersions: answer a's next update with
	// the conflict a real apiserver gives.
	conflicts := 0
	cs.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			conflicts++
			return true, nil, apierrors.NewConflict(corev1.Resource("configmaps"), DefaultName, errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	if err := a.SetState(ctx, entry(1).ID, Done, map[string]string{"x": "1"}); err != nil {
		t.Fatal(err)
	}
	j, err := NewStore(cs, "", "").Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e1, _ := j.Get(entry(1).ID)
	_, ok2 := j.Get(entry(2).ID)
	if conflicts != 1 || len(j.Entries) != 2 || !ok2 || e1.State != Done || e1.Undo["x"] != "1" || e1.Undo["vpcId"] != "vpc-1" {
		t.Fatalf("after a conflict both writers' entries must stand: conflicts=%d %+v", conflicts, j.Entries)
	}
}

func TestReadsTheIndentedFormatAndRefusesGaps(t *testing.T) {
	ctx := context.Background()
	old := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: DefaultName, Namespace: DefaultNamespace, Labels: map[string]string{managedByLabel: managedBy}},
		Data: map[string]string{dataKey: "{\n \"entries\": [\n  {\n   \"id\": \"overlay/x\",\n   \"layer\": \"overlay\",\n   \"state\": \"done\",\n   \"seq\": 1\n  }\n ]\n}"}}
	s := NewStore(fake.NewClientset(old), "", "")
	j, err := s.Load(ctx)
	if err != nil || len(j.Entries) != 1 || j.Entries[0].State != Done {
		t.Fatalf("journal written by an earlier version must load: %+v %v", j, err)
	}
	if err := s.Put(ctx, entry(1)); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.Load(ctx); len(j.Entries) != 2 || j.Entries[1].Seq != 2 {
		t.Fatalf("a new entry must follow the old ones: %+v", j)
	}

	gap := old.DeepCopy()
	gap.Name = DefaultName + "-2"
	if _, err := NewStore(fake.NewClientset(old, gap), "", "").Load(ctx); err == nil || !strings.Contains(err.Error(), "dualstack-journal-1 missing") {
		t.Fatalf("a missing shard must be reported, got %v", err)
	}
	other := old.DeepCopy()
	other.Name = DefaultName + "-old"
	if j, err := NewStore(fake.NewClientset(old, other), "", "").Load(ctx); err != nil || len(j.Entries) != 1 {
		t.Fatalf("a ConfigMap that only shares the prefix is not a shard: %+v %v", j, err)
	}
}
