package kube

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1client "k8s.io/client-go/kubernetes/typed/apps/v1"
)

// RestartedAtAnnotation is the pod template annotation `kubectl rollout
// restart` sets.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// RolloutRestart restarts a Deployment or DaemonSet as `kubectl rollout
// restart` does: a new restartedAt annotation on its pod template, so its
// controller replaces every pod.
func RolloutRestart(ctx context.Context, apps appsv1client.AppsV1Interface, kind, namespace, name string, at time.Time) error {
	p := []byte(fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, RestartedAtAnnotation, at.UTC().Format(time.RFC3339)))
	var err error
	switch kind {
	case "DaemonSet":
		_, err = apps.DaemonSets(namespace).Patch(ctx, name, types.StrategicMergePatchType, p, metav1.PatchOptions{})
	case "Deployment":
		_, err = apps.Deployments(namespace).Patch(ctx, name, types.StrategicMergePatchType, p, metav1.PatchOptions{})
	default:
		return fmt.Errorf("cannot restart a %s", kind)
	}
	return err
}
