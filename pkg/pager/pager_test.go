package pager

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ListAll reads every page, PageSize at a time, in order.
func TestListAllPages(t *testing.T) {
	const total = 2*PageSize + 7
	calls := 0
	list := func(_ context.Context, o metav1.ListOptions) (runtime.Object, error) {
		calls++
		if o.Limit != PageSize {
			return nil, fmt.Errorf("limit %d", o.Limit)
		}
		start, _ := strconv.Atoi(o.Continue)
		out := &corev1.NodeList{}
		for i := start; i < total && i < start+int(o.Limit); i++ {
			out.Items = append(out.Items, corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: strconv.Itoa(i)}})
		}
		if next := start + int(o.Limit); next < total {
			out.Continue = strconv.Itoa(next)
		}
		return out, nil
	}
	nodes, err := ListAll[corev1.Node](context.Background(), metav1.ListOptions{}, list)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != total || calls != 3 || nodes[0].Name != "0" || nodes[total-1].Name != strconv.Itoa(total-1) {
		t.Fatalf("%d nodes in %d calls", len(nodes), calls)
	}
	if _, err := ListAll[corev1.Pod](context.Background(), metav1.ListOptions{}, list); err == nil {
		t.Fatal("a list of other items must be an error")
	}
}
