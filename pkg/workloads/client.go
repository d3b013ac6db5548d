package workloads

import (
	"context"
	"errors"
	"sync"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	policyv1client "k8s.io/client-go/kubernetes/typed/policy/v1"
)

// errNoDelete is what the drain helper gets if it ever tries to delete a
// pod instead of evicting it.
var errNoDelete = errors.New("workloads: refusing to delete a pod: only evictions, which PodDisruptionBudgets govern, are allowed")

// evictClient is the client the drain helper is given. The helper falls
// back to a plain DELETE when discovery does not list the eviction
// subresource (Helper.DeleteOrEvictPods), and a DELETE ignores
// PodDisruptionBudgets: that must never happen here, whatever discovery
// answers between Apply's own check and the helper's, so pod deletes are
// refused. And the helper turns an eviction's error into text
// ("error when evicting pods/..: %v"), losing its status: the client
// records each eviction's answer, so that Apply can tell a
// PodDisruptionBudget's 429 from RBAC's 403.
type evictClient struct {
	kubernetes.Interface
	answers *answers
}

func (c evictClient) CoreV1() corev1client.CoreV1Interface {
	return noDeleteCore{c.Interface.CoreV1()}
}

func (c evictClient) PolicyV1() policyv1client.PolicyV1Interface {
	return recordingPolicy{PolicyV1Interface: c.Interface.PolicyV1(), answers: c.answers}
}

type noDeleteCore struct{ corev1client.CoreV1Interface }

func (c noDeleteCore) Pods(namespace string) corev1client.PodInterface {
	return noDeletePods{c.CoreV1Interface.Pods(namespace)}
}

type noDeletePods struct{ corev1client.PodInterface }

func (noDeletePods) Delete(context.Context, string, metav1.DeleteOptions) error { return errNoDelete }

type recordingPolicy struct {
	policyv1client.PolicyV1Interface
	answers *answers
}

func (p recordingPolicy) Evictions(namespace string) policyv1client.EvictionInterface {
	return recordingEvictions{EvictionInterface: p.PolicyV1Interface.Evictions(namespace), answers: p.answers}
}

type recordingEvictions struct {
	policyv1client.EvictionInterface
	answers *answers
}

func (e recordingEvictions) Evict(ctx context.Context, ev *policyv1.Eviction) error {
	err := e.EvictionInterface.Evict(ctx, ev)
	e.answers.note(ev.Namespace+"/"+ev.Name, err)
	return err
}

// answers holds the last answer to each pod's eviction (nil: accepted) and
// how many were sent.
type answers struct {
	mu       sync.Mutex
	last     map[string]error
	attempts map[string]int
}

func newAnswers() *answers {
	return &answers{last: map[string]error{}, attempts: map[string]int{}}
}

func (a *answers) note(ref string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last[ref] = err
	a.attempts[ref]++
}

func (a *answers) get(ref string) (attempts int, last error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attempts[ref], a.last[ref]
}
