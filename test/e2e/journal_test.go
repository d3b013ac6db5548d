package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// TestJournalAtScaleOnARealAPIServer: a journal of 3,000 entries (a
// 2,000-instance VPC's apply is about 2,400) spreads over shards that each
// stay far below the 1 MiB object limit, is read back whole and in order,
// and two writers at once (the real apiserver's resourceVersion conflicts)
// both keep their entries.
func TestJournalAtScaleOnARealAPIServer(t *testing.T) {
	ctx := context.Background()
	api, err := harness.StartAPIServer(t, harness.APIServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const total, batch = 3000, 64
	entry := func(i int, state journal.State) journal.Entry {
		return journal.Entry{ID: fmt.Sprintf("underlay/AssignIpv6Addresses/eni-%017x", i), Layer: "underlay", Operation: "AssignIpv6Addresses",
			Resource: fmt.Sprintf("eni-%017x", i), State: state,
			Undo: map[string]string{"networkInterfaceId": fmt.Sprintf("eni-%017x", i), "ipv6AddressCount": "1", "phase": "5", "vpcId": "vpc-0123456789abcdef0",
				"ipv6Addresses": fmt.Sprintf("2600:1f18:abcd:ef%02x::%x", i%256, i)}}
	}
	store := journal.NewStore(api.Kube, "", "")
	// As apply records them: a batch as pending, then the batch as done
	// together with the next one's pending.
	for start := 0; start < total; start += batch {
		var write []journal.Entry
		if start > 0 {
			for i := start - batch; i < start; i++ {
				write = append(write, entry(i, journal.Done))
			}
		}
		for i := start; i < min(start+batch, total); i++ {
			write = append(write, entry(i, journal.Pending))
		}
		if err := store.PutAll(ctx, write); err != nil {
			t.Fatalf("batch at %d: %v", start, err)
		}
	}

	list, err := api.Kube.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubectl-dualstack"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 3 {
		t.Fatalf("3,000 entries at 1,000 a shard: want 3 ConfigMaps, got %d", len(list.Items))
	}
	for _, cm := range list.Items {
		if n := len(cm.Data["entries.json"]); n > 512<<10 {
			t.Errorf("%s holds %d bytes, over the 512 KiB shard limit", cm.Name, n)
		}
	}

	// Two writers at once, each from a store whose cache predates the
	// other's writes: conflicts are answered by reading again.
	a, b := journal.NewStore(api.Kube, "", ""), journal.NewStore(api.Kube, "", "")
	for _, s := range []*journal.Store{a, b} {
		if _, err := s.Load(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for w, s := range []*journal.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				e := entry(total+w*100+i, journal.Pending)
				e.ID = fmt.Sprintf("overlay/writer-%d/%d", w, i)
				if err := s.Put(ctx, e); err != nil {
					errs <- err
				}
				if err := s.SetState(ctx, fmt.Sprintf("underlay/AssignIpv6Addresses/eni-%017x", w*1000+i), journal.Undone, nil); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	j, err := journal.NewStore(api.Kube, "", "").Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Entries) != total+40 {
		t.Fatalf("want %d entries, got %d", total+40, len(j.Entries))
	}
	seen := map[int]bool{}
	undone := 0
	for i, e := range j.Entries {
		if i > 0 && e.Seq <= j.Entries[i-1].Seq {
			t.Fatalf("entries out of order at %d: %d after %d", i, e.Seq, j.Entries[i-1].Seq)
		}
		if seen[e.Seq] {
			t.Fatalf("sequence %d given twice", e.Seq)
		}
		seen[e.Seq] = true
		if e.State == journal.Undone {
			undone++
		}
		if i < total && e.ID != entry(i, "").ID {
			t.Fatalf("entry %d is %s", i, e.ID)
		}
		if i < total-batch && e.State != journal.Done && e.State != journal.Undone {
			t.Fatalf("entry %d (%s) is %s, want done", i, e.ID, e.State)
		}
	}
	if undone != 40 {
		t.Fatalf("want the 40 entries both writers marked undone, got %d", undone)
	}
	if last := j.Entries[len(j.Entries)-1]; !strings.HasPrefix(last.ID, "overlay/writer-") {
		t.Fatalf("new entries must come last, got %s", last.ID)
	}
}
