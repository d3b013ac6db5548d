package harness

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// PodSimulator does, for the test cluster, what the scheduler and the
// kubelets do for pods, and, unless the real controllers run, what the
// Deployment controller does: a Deployment gets its replicas as pods (owned
// by it, as the ReplicaSet's would be); a pending pod is bound to a node
// (the node its required node affinity names, as a DaemonSet's pod's does,
// else the next one in turn); a bound pod starts Running and Ready with a
// pod IP of each family the cluster has; a pod being deleted (or evicted:
// the Eviction API deletes it with its grace period) is removed, as the
// kubelet confirms once its containers are gone.
type PodSimulator struct {
	Kube      kubernetes.Interface
	Nodes     []string
	DualStack bool
	// Controllers says kube-controller-manager's controllers run
	// (StartControllers): Deployments are theirs, and the simulator plays
	// only the scheduler and the kubelets.
	Controllers bool
	// DualStackNow, when set, decides instead of DualStack, for each pod as
	// it starts: a cluster converted while running gives IPv6 only to pods
	// started after the conversion.
	DualStackNow func() bool
	// Interval between passes (default 50ms).
	Interval time.Duration

	mu    sync.Mutex
	noFit string // see SetNoFit
	next  int
	ips   map[string]int // pod UID -> index of its addresses
	stop  context.CancelFunc
	done  chan struct{}
	Error error
}

// Start runs the simulator until Stop.
func (s *PodSimulator) Start(ctx context.Context) {
	if s.Interval == 0 {
		s.Interval = 50 * time.Millisecond
	}
	s.ips = map[string]int{}
	ctx, s.stop = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.Interval)
		defer t.Stop()
		for {
			if err := s.pass(ctx); err != nil && ctx.Err() == nil {
				s.mu.Lock()
				s.Error = err
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the simulator and waits for it.
func (s *PodSimulator) Stop() {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
}

func (s *PodSimulator) pass(ctx context.Context) error {
	if !s.Controllers {
		if err := s.deployments(ctx); err != nil {
			return err
		}
	}
	pods, err := s.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		var err error
		switch {
		case pod.DeletionTimestamp != nil:
			err = s.Kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
		case pod.Spec.NodeName == "" && s.noFitMessage() != "":
			err = s.unschedulable(ctx, pod, s.noFitMessage())
		case pod.Spec.NodeName == "":
			err = s.bind(ctx, pod)
		case pod.Status.Phase == "" || pod.Status.Phase == corev1.PodPending:
			err = s.run(ctx, pod)
		}
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	return nil
}

// deployments creates missing replicas straight from the pod template, as
// Deployment -> ReplicaSet -> Pod would.
func (s *PodSimulator) deployments(ctx context.Context) error {
	deps, err := s.Kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, d := range deps.Items {
		if d.DeletionTimestamp != nil || d.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			continue
		}
		pods, err := s.Kube.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return err
		}
		have := 0
		for _, p := range pods.Items {
			if metav1.IsControlledBy(&p, &d) && p.DeletionTimestamp == nil {
				have++
			}
		}
		want := int(ptr.Deref(d.Spec.Replicas, 1))
		for ; have < want; have++ {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{
					GenerateName:    d.Name + "-",
					Namespace:       d.Namespace,
					Labels:          labels.Merge(d.Spec.Template.Labels, nil),
					Annotations:     d.Spec.Template.Annotations,
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(&d, d.GroupVersionKind())},
				},
				Spec: d.Spec.Template.Spec,
			}
			pod.OwnerReferences[0].APIVersion, pod.OwnerReferences[0].Kind = "apps/v1", "Deployment"
			if _, err := s.Kube.CoreV1().Pods(d.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsForbidden(err) {
				return fmt.Errorf("creating a pod for deployment %s/%s: %w", d.Namespace, d.Name, err)
			}
		}
	}
	return nil
}

// SetNoFit makes the scheduler find no node for pods not yet bound, as
// kube-scheduler does when no node fits them (taints, resources, node
// selectors): each stays Pending, unbound, with PodScheduled=False reason
// Unschedulable and message, and gets a FailedScheduling Warning event.
// "" schedules again.
func (s *PodSimulator) SetNoFit(message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noFit = message
}

func (s *PodSimulator) noFitMessage() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noFit
}

// unschedulable records the scheduling failure once per pod, as the
// scheduler's status update and event recorder would.
func (s *PodSimulator) unschedulable(ctx context.Context, pod *corev1.Pod, message string) error {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return nil
		}
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodPending
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: message, LastTransitionTime: now,
	})
	if _, err := s.Kube.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return err
	}
	_, err := s.Kube.CoreV1().Events(pod.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
		},
		Reason: "FailedScheduling", Message: message, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "default-scheduler"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}, metav1.CreateOptions{})
	return err
}

func (s *PodSimulator) bind(ctx context.Context, pod *corev1.Pod) error {
	node := requiredNode(pod)
	if node == "" {
		s.mu.Lock()
		node = s.Nodes[s.next%len(s.Nodes)]
		s.next++
		s.mu.Unlock()
	}
	return s.Kube.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
}

// requiredNode is the node a pod's required node affinity pins it to by
// name (matchFields metadata.name In [node]), as the DaemonSet controller
// pins its pods; "" when it names none.
func requiredNode(pod *corev1.Pod) string {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range term.MatchFields {
			if f.Key == "metadata.name" && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	return ""
}

func (s *PodSimulator) run(ctx context.Context, pod *corev1.Pod) error {
	s.mu.Lock()
	n, ok := s.ips[string(pod.UID)]
	if !ok {
		n = len(s.ips) + 10
		s.ips[string(pod.UID)] = n
	}
	s.mu.Unlock()
	ips := []corev1.PodIP{{IP: fmt.Sprintf("10.128.%d.%d", n/250, n%250+2)}}
	dual := s.DualStack
	if s.DualStackNow != nil {
		dual = s.DualStackNow()
	}
	if dual {
		v6 := netip.AddrFrom16([16]byte{0xfd, 0x01, 13: byte(n / 250), 14: byte((n%250 + 2) >> 8), 15: byte(n%250 + 2)})
		ips = append(ips, corev1.PodIP{IP: v6.String()})
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIPs = ips
	pod.Status.PodIP = ips[0].IP
	pod.Status.HostIP = "127.0.0.2"
	pod.Status.StartTime = &now
	pod.Status.Conditions = nil
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, err := s.Kube.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}
