package harness

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

// ApplicationPolicy is the application's NetworkPolicy in the sandbox: its
// pods may reach anything but the instance metadata service, written for
// an IPv4-only cluster (0.0.0.0/0 except 169.254.169.254/32). Nothing in
// the sandbox enforces it (its pods are local processes); it is there for
// the tool to read and change, as it would find one on a real cluster.
const ApplicationPolicy = "deny-instance-metadata"

// CreateApplicationPolicies creates the application's NetworkPolicies.
func CreateApplicationPolicies(ctx context.Context, kc kubernetes.Interface) error {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ApplicationNamespace, Name: ApplicationPolicy},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"169.254.169.254/32"}}},
			}}},
		},
	}
	if _, err := kc.NetworkingV1().NetworkPolicies(ApplicationNamespace).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating networkpolicy %s/%s: %w", ApplicationNamespace, ApplicationPolicy, err)
	}
	return nil
}

// InstallRouterAndPolicies gives the sandbox what a plain upgrade must
// leave alone: OpenShift's default router behind the fixture's Classic ELB
// (with the ingress operator simulator, which re-creates its Service when
// the IngressController asks for another load balancer type) and the
// application's NetworkPolicy.
func InstallRouterAndPolicies(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, world *moto.World) (*IngressOperator, error) {
	if err := CreateOpenShiftRouter(ctx, kc, dc, world); err != nil {
		return nil, err
	}
	if err := CreateApplicationPolicies(ctx, kc); err != nil {
		return nil, err
	}
	return StartIngressOperator(kc, dc), nil
}
