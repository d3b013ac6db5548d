package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/node"
)

// runRealNode is the sandbox on a real node: a kubeadm-like cluster,
// IPv4-only, converted by the demo (the host-side changes made by the
// sandbox where an admin would make them) or held for the user.
func runRealNode(ctx context.Context, binDir, stateDir string, hold bool) (err error) {
	if m := node.Missing(); len(m) > 0 {
		return fmt.Errorf("a real node needs %s: run `make node-deps` as root, and this as root", strings.Join(m, ", "))
	}
	logFile, err := prepare(&binDir, &stateDir)
	if err != nil {
		return err
	}
	defer logFile.Close()
	tb := harness.NewProcessTB("sandbox", nil)
	defer tb.Close()
	defer harness.RecoverFatal(&err)

	step("building and starting a kubeadm-like cluster on a real node on this machine, IPv4-only: a kube-apiserver (embedded etcd), containerd, a kubelet, kube-proxy's DaemonSet, the controller manager, the scheduler and CoreDNS (the first build of the components takes a few minutes)")
	k, err := harness.StartKubeadmNode(ctx, tb, harness.KubeadmNodeOptions{
		BinDir: filepath.Join(stateDir, "node-bin"), DNS: true, NoSignalHandler: true,
		Logf: func(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) },
	})
	if err != nil {
		return err
	}
	if err := app(ctx, k.API.Kube); err != nil {
		return err
	}
	envFile, env, err := harness.WriteKubeadmNodeEnv(stateDir, binDir, k)
	if err != nil {
		return err
	}
	step(fmt.Sprintf("node %s is Ready, IPv4-only (pods from %s, Services from %s), with an application in namespace apps (Deployment web, 2 pods, behind a Service and a PodDisruptionBudget); env file %s", k.Kubelet.NodeName, node.IPv4Range, harness.KubeadmServices4, envFile))
	fmt.Println("    (its pods are real containers on a test bridge; nothing routes off this machine)")

	network := []string{"kubectl", "dualstack", "network", "--cluster-network", harness.KubeadmPods6, "--service-network", harness.KubeadmServices6}
	validate := []string{"kubectl", "dualstack", "validate", "--no-mesh", "--checks", "pod-ips,service-ips,curl-service,dns-service",
		"--curl-image", node.CurlImageName, "--httpbin-image", node.HTTPBinImageName}
	convertHosts := func() error {
		step("the host-side changes, as an admin makes them: the CNI's IPv6 pod range, the API server restarted with " + harness.KubeadmServices4 + "," + harness.KubeadmServices6 + ", the static pods' flags, the kubelet restarted with its IPv6 --node-ip, CoreDNS on the IPv6 address")
		if err := k.ConvertHosts(ctx); err != nil {
			return err
		}
		_, _, err := harness.WriteKubeadmNodeEnv(stateDir, binDir, k) // the API server's new address and credentials
		return err
	}

	if hold {
		fmt.Printf(`
The cluster is up, IPv4-only, until Ctrl-C. In another shell:

  source %s
  kubectl get nodes,pods -A -o wide
  %s    # FAILs on IPv6, naming the cause
  %s --dry-run=client
  %s --yes --timeout 30s   # edits the ConfigMaps, lists the host-side changes, times out waiting for them

Then press Enter here to make the host-side changes, and run the network
command again: it sees them and restarts kube-proxy. Then:

  kubectl dualstack services --yes
  kubectl dualstack workloads --yes
  %s    # passes over both families

`, envFile, strings.Join(validate, " "), strings.Join(network, " "), strings.Join(network, " "), strings.Join(validate, " "))
		enter := make(chan struct{})
		go func() {
			if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err == nil {
				close(enter)
			}
		}()
		select {
		case <-ctx.Done():
		case <-enter:
			if err := convertHosts(); err != nil {
				return err
			}
			step("done; the API server's new address is in " + filepath.Join(stateDir, "kubeconfig") + " (the env file's KUBECONFIG). Ctrl-C to stop.")
			<-ctx.Done()
		}
		quietStderr(logFile)
		step("stopping")
		return nil
	}

	summary, err := showAll(ctx, env, []command{
		{[]string{"kubectl", "get", "nodes,pods", "-A", "-o", "wide"}, "the node and pods, IPv4-only"},
		{validate, "validate before (IPv4-only: FAILs expected)"},
		{append(network, "--dry-run=client"), "network plan"},
		{append(network, "--yes", "--timeout", "10s"), "network (times out: the hosts are not done)"},
	})
	if err != nil {
		return err
	}
	if err := convertHosts(); err != nil {
		return err
	}
	more, err := showAll(ctx, env, []command{
		{append(network, "--yes"), "network (the hosts done: restarts kube-proxy)"},
		{[]string{"kubectl", "dualstack", "services", "--yes"}, "services"},
		{[]string{"kubectl", "dualstack", "workloads", "--yes"}, "workloads"},
		{[]string{"kubectl", "get", "nodes,pods", "-A", "-o", "wide"}, "the node and pods, dual-stack"},
		{validate, "validate after (the proof over IPv4 and IPv6)"},
	})
	if err != nil {
		return err
	}
	quietStderr(logFile)
	fmt.Printf("\n==> summary (the commands' own output is above)\n%s\n", strings.Join(append(summary, more...), "\n"))
	return nil
}

// app is what runs on the cluster before the conversion: a Deployment's
// two pods (busybox's httpd) behind a Service and a PodDisruptionBudget in
// namespace apps. It returns once both pods run.
func app(ctx context.Context, kc kubernetes.Interface) error {
	const ns = "apps"
	if err := harness.EnsureNamespace(ctx, kc, ns, nil); err != nil {
		return err
	}
	labels := map[string]string{"app": "web"}
	replicas, one := int32(2), intstr.FromInt32(1)
	var grace int64 = 1
	no := false
	if _, err := kc.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: &grace,
				Containers: []corev1.Container{{Name: "web", Image: node.BusyboxImageName, ImagePullPolicy: corev1.PullNever,
					Command: []string{"sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"}}},
			}}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := kc.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := kc.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	return harness.WaitFor(ctx, 2*time.Minute, "apps/web's 2 pods running", func(ctx context.Context) (bool, error) {
		l, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range l.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == 2, nil
	})
}
