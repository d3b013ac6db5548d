package pager

import (
	"context"
	"errors"
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

// Each sees every item of every page once, in order, and stops at fn's error.
func TestEachStopsAtError(t *testing.T) {
	const total = PageSize + 3
	list := func(_ context.Context, o metav1.ListOptions) (runtime.Object, error) {
		start, _ := strconv.Atoi(o.Continue)
		out := &corev1.ServiceList{}
		for i := start; i < total && i < start+int(o.Limit); i++ {
			out.Items = append(out.Items, corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: strconv.Itoa(i)}})
		}
		if next := start + int(o.Limit); next < total {
			out.Continue = strconv.Itoa(next)
		}
		return out, nil
	}
	seen := 0
	err := Each(context.Background(), metav1.ListOptions{}, list, func(s *corev1.Service) error {
		if s.Name != strconv.Itoa(seen) {
			return fmt.Errorf("item %d is %s", seen, s.Name)
		}
		seen++
		return nil
	})
	if err != nil || seen != total {
		t.Fatalf("saw %d of %d: %v", seen, total, err)
	}
	stop := errors.New("enough")
	seen = 0
	err = Each(context.Background(), metav1.ListOptions{}, list, func(*corev1.Service) error {
		seen++
		if seen == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 2 {
		t.Fatalf("after the error: %d items, %v", seen, err)
	}
}
