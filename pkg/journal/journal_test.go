package journal

import (
	"context"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
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
