package harness

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ApplicationNamespace holds the application that exists before the
// conversion: Services made while the cluster was single-stack, which keep
// one family until the services phase changes them.
const ApplicationNamespace = "shop"

// InstallApplication creates the pre-existing application's Services: web
// (ClusterIP) and db (headless, with a selector, as a StatefulSet's),
// both SingleStack by default.
func InstallApplication(ctx context.Context, kc kubernetes.Interface) error {
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ApplicationNamespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", ApplicationNamespace, err)
	}
	for _, svc := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "db", Labels: map[string]string{"app": "db"}},
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}}},
	} {
		if _, err := kc.CoreV1().Services(ApplicationNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating service %s/%s: %w", ApplicationNamespace, svc.Name, err)
		}
	}
	return nil
}
