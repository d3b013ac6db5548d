package harness

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// BulkWorkers is how many creates are in flight at once: enough to keep the
// in-process apiserver busy on a small machine without queueing thousands of
// requests in its priority-and-fairness queues.
const BulkWorkers = 16

// ForEach runs fn(0..n-1) on a bounded pool of workers and returns the first
// error; after an error the remaining items are skipped.
func ForEach(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// ScaleClusterSpec sizes a cluster for the scale benchmarks.
type ScaleClusterSpec struct {
	Nodes      int
	Services   int
	Pods       int
	Namespaces int // Services and pods are spread over these (default 20)
}

// BuildScaleCluster fills the apiserver with Ready kind-like dual-stack
// nodes, ClusterIP Services and pods bound to the nodes, created
// concurrently. Pods are not run: nothing here needs them Running.
func BuildScaleCluster(ctx context.Context, api *APIServer, s ScaleClusterSpec) error {
	if s.Namespaces <= 0 {
		s.Namespaces = 20
	}
	cfg := rest.CopyConfig(api.Config)
	cfg.QPS, cfg.Burst = 1e6, 1e6 // the pool is the limit, not the client
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	namespaces := make([]string, s.Namespaces)
	for i := range namespaces {
		namespaces[i] = fmt.Sprintf("scale-%03d", i)
	}
	err = ForEach(ctx, BulkWorkers, len(namespaces), func(ctx context.Context, i int) error {
		return EnsureNamespace(ctx, kc, namespaces[i], nil)
	})
	if err != nil {
		return err
	}
	err = ForEach(ctx, BulkWorkers, s.Nodes, func(ctx context.Context, i int) error {
		return createScaleNode(ctx, kc, i)
	})
	if err != nil {
		return err
	}
	err = ForEach(ctx, BulkWorkers, s.Services, func(ctx context.Context, i int) error {
		ns := namespaces[i%len(namespaces)]
		_, err := kc.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%05d", i), Labels: map[string]string{"app": fmt.Sprintf("app-%05d", i)}},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": fmt.Sprintf("app-%05d", i)},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating service %s/svc-%05d: %w", ns, i, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return ForEach(ctx, BulkWorkers, s.Pods, func(ctx context.Context, i int) error {
		ns := namespaces[i%len(namespaces)]
		_, err := kc.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%05d", i), Labels: map[string]string{"app": fmt.Sprintf("app-%05d", i%max(s.Services, 1))}},
			Spec: corev1.PodSpec{
				NodeName: scaleNodeName(i % max(s.Nodes, 1)),
				Containers: []corev1.Container{{
					Name: "app", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating pod %s/pod-%05d: %w", ns, i, err)
		}
		return nil
	})
}

func scaleNodeName(i int) string { return fmt.Sprintf("worker-%05d", i) }

// createScaleNode registers node i with an IPv4 and an IPv6 InternalIP and
// pod CIDR, Ready, as CreateNodes does (status needs its own write).
func createScaleNode(ctx context.Context, kc kubernetes.Interface, i int) error {
	name := scaleNodeName(i)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": "",
		}},
		Spec: corev1.NodeSpec{
			ProviderID: "kind://docker/kind/" + name,
			PodCIDR:    fmt.Sprintf("10.%d.%d.0/24", 64+i/256, i%256),
			PodCIDRs:   []string{fmt.Sprintf("10.%d.%d.0/24", 64+i/256, i%256), fmt.Sprintf("fd00:10:244:%x::/64", i)},
		},
	}
	created, err := kc.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating node %s: %w", name, err)
	}
	now := metav1.Now()
	created.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("172.18.%d.%d", i/250, i%250+2)},
		{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("fc00:f853:ccd:e793::%x", i+2)},
		{Type: corev1.NodeHostName, Address: name},
	}
	created.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
	}}
	if _, err := kc.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting node %s status: %w", name, err)
	}
	return nil
}
