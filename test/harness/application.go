package harness

import (
	"context"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// ApplicationNamespace holds the application that exists before the
// conversion: Services made while the cluster was single-stack, which keep
// one family until the services phase changes them, and the workloads
// behind them, whose pods started IPv4-only.
const ApplicationNamespace = "shop"

// The application fixture's other namespaces: a second team's, and
// OpenShift's cluster DNS.
const (
	BillingNamespace = "billing"
	DNSNamespace     = "openshift-dns"
	// DNSDaemonSetLabel selects OpenShift's dns-default pods, as the DNS
	// operator labels them.
	DNSDaemonSetLabel = "dns.operator.openshift.io/daemonset-dns"
)

// ApplicationNamespaces are the namespaces InstallApplication fills.
var ApplicationNamespaces = []string{ApplicationNamespace, BillingNamespace, DNSNamespace}

// ApplicationWorkload names one of the fixture's controllers.
type ApplicationWorkload struct {
	Kind, Namespace, Name string
	// Replicas it wants (for the DaemonSet: 0, one per node).
	Replicas int32
	// PDB is the name of its PodDisruptionBudget ("" if none).
	PDB string
}

// ApplicationWorkloads are the fixture's controller-managed workloads.
var ApplicationWorkloads = []ApplicationWorkload{
	{Kind: "Deployment", Namespace: ApplicationNamespace, Name: "web", Replicas: 3, PDB: "web"},
	{Kind: "StatefulSet", Namespace: ApplicationNamespace, Name: "db", Replicas: 2, PDB: "db"},
	{Kind: "Deployment", Namespace: BillingNamespace, Name: "api", Replicas: 2, PDB: "api"},
	{Kind: "DaemonSet", Namespace: DNSNamespace, Name: "dns-default"},
}

// ApplicationBarePod is the fixture's pod without an owner (shop/debug):
// nothing re-creates it.
const ApplicationBarePod = "debug"

// InstallApplication creates the application that runs before the
// conversion:
//
//   - shop: Services web (ClusterIP) and db (headless, with a selector),
//     both SingleStack by default; a Deployment web (3 replicas, app=web)
//     with a PDB web (minAvailable 2); a StatefulSet db (2 replicas,
//     serviceName db, app=db) with a PDB db (maxUnavailable 1); a bare pod
//     debug (app=debug, no owner, no PDB);
//   - billing: a Deployment api (2 replicas, app=api) with a PDB api
//     (maxUnavailable 1) and a SingleStack ClusterIP Service api;
//   - openshift-dns: OpenShift's cluster DNS, the DaemonSet dns-default
//     (a pod per node, label dns.operator.openshift.io/daemonset-dns=default)
//     and its SingleStack ClusterIP Service dns-default (53 udp/tcp).
//
// The workloads' pods come from the real controllers (StartControllers);
// whoever installs this runs them, and PodSimulator with Controllers.
func InstallApplication(ctx context.Context, kc kubernetes.Interface) error {
	for _, ns := range ApplicationNamespaces {
		if err := EnsureNamespace(ctx, kc, ns, nil); err != nil {
			return err
		}
	}
	single := ptr.To(corev1.IPFamilyPolicySingleStack)
	for _, svc := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ApplicationNamespace, Name: "web", Labels: map[string]string{"app": "web"}},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ApplicationNamespace, Name: "db", Labels: map[string]string{"app": "db"}},
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: BillingNamespace, Name: "api", Labels: map[string]string{"app": "api"}},
			Spec: corev1.ServiceSpec{IPFamilyPolicy: single, Selector: map[string]string{"app": "api"}, Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: DNSNamespace, Name: "dns-default", Labels: map[string]string{"dns.operator.openshift.io/owning-dns": "default"}},
			Spec: corev1.ServiceSpec{IPFamilyPolicy: single, Selector: map[string]string{DNSDaemonSetLabel: "default"}, Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("dns-tcp")},
			}}},
	} {
		if _, err := kc.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
	}

	app := func(name, image string, port int32) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: name, Image: image, Ports: []corev1.ContainerPort{{ContainerPort: port}},
			}}},
		}
	}
	selector := func(name string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	}
	for _, d := range []*appsv1.Deployment{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ApplicationNamespace, Name: "web", Labels: map[string]string{"app": "web"}},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(3)), Selector: selector("web"), Template: app("web", "registry.example/shop/web:1.4", 80)}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: BillingNamespace, Name: "api", Labels: map[string]string{"app": "api"}},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(2)), Selector: selector("api"), Template: app("api", "registry.example/billing/api:2.0", 8080)}},
	} {
		if _, err := kc.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating deployment %s/%s: %w", d.Namespace, d.Name, err)
		}
	}
	if _, err := kc.AppsV1().StatefulSets(ApplicationNamespace).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Labels: map[string]string{"app": "db"}},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(2)), ServiceName: "db", Selector: selector("db"),
			Template: app("db", "registry.example/shop/postgres:16", 5432)},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating statefulset %s/db: %w", ApplicationNamespace, err)
	}
	dnsLabels := map[string]string{DNSDaemonSetLabel: "default"}
	if _, err := kc.AppsV1().DaemonSets(DNSNamespace).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "dns-default", Labels: map[string]string{"dns.operator.openshift.io/owning-dns": "default"}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: dnsLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: dnsLabels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
					// As the DNS operator's: on every node, control plane included.
					Tolerations: []corev1.Toleration{{Key: "node-role.kubernetes.io/master", Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{
						{Name: "dns", Image: "quay.io/openshift/origin-coredns:4.10", Ports: []corev1.ContainerPort{
							{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
							{Name: "dns-tcp", ContainerPort: 5353, Protocol: corev1.ProtocolTCP},
						}},
						{Name: "kube-rbac-proxy", Image: "quay.io/openshift/origin-kube-rbac-proxy:4.10"},
					},
				},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating daemonset %s/dns-default: %w", DNSNamespace, err)
	}

	for _, pdb := range []*policyv1.PodDisruptionBudget{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ApplicationNamespace, Name: "web"},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(2)), Selector: selector("web")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ApplicationNamespace, Name: "db"},
			Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1)), Selector: selector("db")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: BillingNamespace, Name: "api"},
			Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1)), Selector: selector("api")}},
	} {
		if _, err := kc.PolicyV1().PodDisruptionBudgets(pdb.Namespace).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating poddisruptionbudget %s/%s: %w", pdb.Namespace, pdb.Name, err)
		}
	}

	debug := app("debug", "registry.example/tools/netshoot:0.13", 8080)
	if _, err := kc.CoreV1().Pods(ApplicationNamespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: ApplicationBarePod, Labels: debug.Labels},
		Spec:       debug.Spec,
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", ApplicationNamespace, ApplicationBarePod, err)
	}
	return nil
}

// WaitApplicationReady waits until every workload of the fixture has all
// its pods Ready and up to date (the DaemonSet: one per node), the bare pod
// is Ready, and the disruption controller has computed every PDB's status
// for the current spec.
func WaitApplicationReady(ctx context.Context, kc kubernetes.Interface, timeout time.Duration) error {
	last := "" // what was not ready yet, last seen
	err := WaitFor(ctx, timeout, "the application's pods to be Ready and its PDBs computed", func(ctx context.Context) (bool, error) {
		notReady, err := applicationNotReady(ctx, kc)
		if notReady != "" {
			last = notReady
		}
		return notReady == "" && err == nil, err
	})
	if err != nil && last != "" {
		return fmt.Errorf("%w (last seen: %s)", err, last)
	}
	return err
}

// applicationNotReady says what of the fixture is not ready ("": all is).
func applicationNotReady(ctx context.Context, kc kubernetes.Interface) (string, error) {
	for _, w := range ApplicationWorkloads {
		switch w.Kind {
		case "Deployment":
			d, err := kc.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			if d.Status.ObservedGeneration < d.Generation || d.Status.ReadyReplicas != w.Replicas || d.Status.UpdatedReplicas != w.Replicas || d.Status.Replicas != w.Replicas {
				return fmt.Sprintf("deployment %s/%s: %d/%d ready, %d updated, %d in all (generation %d, observed %d)",
					w.Namespace, w.Name, d.Status.ReadyReplicas, w.Replicas, d.Status.UpdatedReplicas, d.Status.Replicas, d.Generation, d.Status.ObservedGeneration), nil
			}
		case "StatefulSet":
			s, err := kc.AppsV1().StatefulSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			if s.Status.ObservedGeneration < s.Generation || s.Status.ReadyReplicas != w.Replicas || s.Status.Replicas != w.Replicas {
				return fmt.Sprintf("statefulset %s/%s: %d/%d ready", w.Namespace, w.Name, s.Status.ReadyReplicas, w.Replicas), nil
			}
		case "DaemonSet":
			ds, err := kc.AppsV1().DaemonSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			if ds.Status.ObservedGeneration < ds.Generation || ds.Status.DesiredNumberScheduled == 0 || ds.Status.NumberReady != ds.Status.DesiredNumberScheduled {
				return fmt.Sprintf("daemonset %s/%s: %d/%d ready (generation %d, observed %d)",
					w.Namespace, w.Name, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled, ds.Generation, ds.Status.ObservedGeneration), nil
			}
		}
		if w.PDB != "" {
			p, err := kc.PolicyV1().PodDisruptionBudgets(w.Namespace).Get(ctx, w.PDB, metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			if p.Status.ObservedGeneration < p.Generation || p.Status.CurrentHealthy < p.Status.DesiredHealthy || p.Status.ExpectedPods == 0 {
				return fmt.Sprintf("pdb %s/%s: status not computed for the running pods yet (%+v)", w.Namespace, w.PDB, p.Status), nil
			}
		}
	}
	pod, err := kc.CoreV1().Pods(ApplicationNamespace).Get(ctx, ApplicationBarePod, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if !podIsReady(pod) {
		return fmt.Sprintf("pod %s/%s is not Ready", pod.Namespace, pod.Name), nil
	}
	return "", nil
}

// ApplicationPods lists the fixture's controller-managed pods (those with
// a controller owner reference) in its namespaces, leaving out those being
// deleted, sorted by namespace and name. The bare pod shop/debug is not
// among them.
func ApplicationPods(ctx context.Context, kc kubernetes.Interface) ([]corev1.Pod, error) {
	var out []corev1.Pod
	for _, ns := range ApplicationNamespaces {
		pods, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && metav1.GetControllerOf(&p) != nil {
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
