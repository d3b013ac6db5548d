package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
)

// validateReport is `validate -o json` with the error field and each
// check's remediation, for the runs that stop before their checks.
type validateReport struct {
	Error  string `json:"error"`
	Checks []struct {
		Name, Family, Status, Message, Remediation string
	} `json:"checks"`
	Summary struct{ Total, Pass, Fail, Inconclusive int } `json:"summary"`
}

type junitReport struct {
	Suites []struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Cases    []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// stoppedRun checks what every early stop must leave: exit 1, one error
// line on stderr containing each of errWants, a JSON report on stdout with
// all 12 checks, and a JUnit file that parses with 12 test cases.
func stoppedRun(t *testing.T, r result, junit string, errWants ...string) (validateReport, junitReport) {
	t.Helper()
	t.Logf("stopped run, stderr:\n%s", r.Stderr)
	if r.Code != 1 {
		t.Errorf("exit %d, want 1\n%s", r.Code, r)
	}
	var errLines []string
	for _, l := range strings.Split(r.Stderr, "\n") {
		if strings.HasPrefix(l, "error: ") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 {
		t.Errorf("want one error line on stderr, got %d:\n%s", len(errLines), r.Stderr)
	}
	for _, w := range errWants {
		if !strings.Contains(strings.Join(errLines, "\n"), w) {
			t.Errorf("the error line does not say %q:\n%s", w, r.Stderr)
		}
	}
	var v validateReport
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("no JSON report on stdout: %v\n%s", err, r)
	}
	if len(v.Checks) != 12 || v.Summary.Total != 12 || v.Error == "" {
		t.Errorf("want 12 checks and the error in the report, got %+v", v)
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatalf("no JUnit file: %v", err)
	}
	var j junitReport
	if err := xml.Unmarshal(b, &j); err != nil || len(j.Suites) != 1 || j.Suites[0].Tests != 12 {
		t.Fatalf("JUnit file: %v\n%s", err, b)
	}
	return v, j
}

func TestValidateReportWithoutIstio(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	ctx := context.Background()
	// A cluster without Istio: none of its CRDs (every *.istio.io group).
	ext, err := apiextensionsclient.NewForConfig(c.API.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds, err := ext.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds.Items {
		if crd.Spec.Group != "istio.io" && !strings.HasSuffix(crd.Spec.Group, ".istio.io") {
			continue
		}
		name := crd.Name
		if err := ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := harness.WaitFor(ctx, 30*time.Second, "CRD "+name+" to go", func(ctx context.Context) (bool, error) {
			_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Discovery drops the resources a moment after the CRDs are gone.
	if err := harness.WaitFor(ctx, 30*time.Second, "discovery to drop networking.istio.io/v1", func(context.Context) (bool, error) {
		_, err := c.API.Kube.Discovery().ServerResourcesForGroupVersion("networking.istio.io/v1")
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Fatal(err)
	}

	junit := filepath.Join(t.TempDir(), "validate.xml")
	r := plugin(t, c.API.Kubeconfig, nil, "validate", "-o", "json", "--junit-file", junit, "--dns-server", c.DNS.Addr, "--timeout", "60s")
	v, j := stoppedRun(t, r, junit, "Istio is not installed", "--no-mesh")
	for _, ch := range v.Checks {
		if ch.Status != "FAIL" || !strings.Contains(ch.Message, "not run: Istio is not installed") || !strings.Contains(ch.Remediation, "--no-mesh") {
			t.Errorf("%s/%s: %s %q (fix %q), want FAIL saying Istio is missing and pointing at --no-mesh", ch.Name, ch.Family, ch.Status, ch.Message, ch.Remediation)
		}
	}
	if j.Suites[0].Failures != 12 {
		t.Errorf("JUnit failures %d, want 12", j.Suites[0].Failures)
	}
	// Said up front: nothing was created for nothing.
	if _, err := c.API.Kube.CoreV1().Namespaces().Get(ctx, "dualstack-validate", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the namespace was created although Istio is missing: %v", err)
	}

	// The way out the message names works.
	r = plugin(t, c.API.Kubeconfig, nil, "validate", "-o", "json", "--no-mesh", "--checks", "pod-ips,service-ips,curl-service,dns-service", "--timeout", "60s")
	if r.Code != 0 {
		t.Fatalf("validate --no-mesh on the cluster without Istio:\n%s", r)
	}
	expectNamespaceGone(t, c, "dualstack-validate")
}

// noFit is what kube-scheduler says when no node takes the pods.
const noFit = "0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."

func TestValidateReportPodsNeverReady(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	c.Pods.SetNoFit(noFit)

	junit := filepath.Join(t.TempDir(), "validate.xml")
	start := time.Now()
	r := plugin(t, c.API.Kubeconfig, nil, "validate", "-o", "json", "--junit-file", junit, "--dns-server", c.DNS.Addr, "--timeout", "8s")
	if took := time.Since(start); took > 45*time.Second {
		t.Errorf("took %s with --timeout 8s", took)
	}
	v, j := stoppedRun(t, r, junit, "--timeout 8s", "Pending", "Unschedulable", "untolerated taint")
	for _, ch := range v.Checks {
		if ch.Name == "service-ips" {
			// Needs only the Services, which exist: judged for real.
			if ch.Status != "PASS" {
				t.Errorf("service-ips/%s: %s %q, want PASS", ch.Family, ch.Status, ch.Message)
			}
			continue
		}
		if ch.Status != "FAIL" || !strings.Contains(ch.Message, "not run") || !strings.Contains(ch.Message, "Pending") ||
			!strings.Contains(ch.Message, "PodScheduled=False Unschedulable") || !strings.Contains(ch.Message, "untolerated taint") {
			t.Errorf("%s/%s: %s %q, want FAIL naming the pods' phase and the scheduler's reason", ch.Name, ch.Family, ch.Status, ch.Message)
		}
	}
	if j.Suites[0].Failures != 10 || j.Suites[0].Cases[0].Failure == nil || !strings.Contains(j.Suites[0].Cases[0].Failure.Message, "Unschedulable") {
		t.Errorf("JUnit: %+v", j.Suites[0])
	}
	if !strings.Contains(r.Stderr, "Deleted namespace dualstack-validate") {
		t.Errorf("no cleanup after the timeout:\n%s", r.Stderr)
	}
	expectNamespaceGone(t, c, "dualstack-validate")

	// Ctrl-C while waiting: the report still comes, its checks INCONCLUSIVE.
	junit = filepath.Join(t.TempDir(), "interrupted.xml")
	cmd := exec.Command(filepath.Join(binDir, "kubectl-dualstack"), "validate", "-o", "json", "--junit-file", junit, "--timeout", "2m")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.API.Kubeconfig, "HOME="+t.TempDir(), "NO_COLOR=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupted while it waits for the pods: once the scenario is
	// deployed (the route, its last object, exists) and the scheduler has
	// said why the sleep pod does not fit. Earlier, a loaded machine can
	// still be creating the route, which the error would name instead.
	vs := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	err := harness.WaitFor(context.Background(), 60*time.Second, "the scenario deployed and the sleep pod unschedulable", func(ctx context.Context) (bool, error) {
		if _, err := c.API.Dynamic.Resource(vs).Namespace("dualstack-validate").Get(ctx, "httpbin", metav1.GetOptions{}); err != nil {
			return false, nil
		}
		p, err := c.API.Kube.CoreV1().Pods("dualstack-validate").Get(ctx, "sleep", metav1.GetOptions{})
		return err == nil && len(p.Status.Conditions) > 0, nil
	})
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := 0
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if !errorsAs(err, &exit) {
			t.Fatal(err)
		}
		code = exit.ExitCode()
	}
	v, j = stoppedRun(t, result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code}, junit, "interrupted", "Unschedulable")
	if v.Summary.Inconclusive != 10 || j.Suites[0].Errors != 10 {
		t.Errorf("after Ctrl-C want 10 INCONCLUSIVE (service-ips judged), got summary %+v, JUnit errors %d", v.Summary, j.Suites[0].Errors)
	}
	expectNamespaceGone(t, c, "dualstack-validate")
}

func TestValidateWaitsForTerminatingNamespace(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	ctx := context.Background()
	kc := c.API.Kube
	// What an earlier run leaves when its cleanup has begun but a pod is
	// slow to go: the namespace Terminating, held by the pod (here by a
	// finalizer on it, as the namespace controller waits for every pod).
	ns := "dualstack-validate"
	if err := harness.EnsureNamespace(ctx, kc, ns, map[string]string{"app.kubernetes.io/managed-by": "kubectl-dualstack"}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "slow-to-go", Finalizers: []string{"e2e.test/hold"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if _, err := kc.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kc.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	release := func() {
		_, err := kc.CoreV1().Pods(ns).Patch(ctx, "slow-to-go", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	}
	t.Cleanup(release)

	junit := filepath.Join(t.TempDir(), "validate.xml")
	r := plugin(t, c.API.Kubeconfig, nil, "validate", "-o", "json", "--junit-file", junit, "--dns-server", c.DNS.Addr, "--timeout", "4s")
	stoppedRun(t, r, junit, `error: namespace "dualstack-validate" is still Terminating`, "--timeout 4s", "-n")
	if strings.Contains(r.Stderr, "left over") {
		t.Errorf("a Terminating namespace is not left over:\n%s", r.Stderr)
	}
	if got, err := kc.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil || got.DeletionTimestamp == nil {
		t.Fatalf("the namespace must still be Terminating, untouched: %v", err)
	}

	// Given time, validate waits for it to go and then runs.
	go func() {
		time.Sleep(3 * time.Second)
		release()
	}()
	r, v := runValidate(t, c)
	if r.Code != 0 || !strings.Contains(r.Stderr, "Terminating") {
		t.Fatalf("validate after the namespace went:\n%s", r)
	}
	expectOnly(t, v, nil)
	expectNamespaceGone(t, c, ns)
}

func TestProbeMissingPodErrorsOnStderr(t *testing.T) {
	c := dualStackCluster(t, harness.DualStackClusterOptions{})
	for _, args := range [][]string{
		{"probe", "curl", "nope", "http://httpbin:8000/get", "-n", "default"},
		{"probe", "curl", "nope", "http://httpbin:8000/get", "-n", "default", "-o", "json"},
		{"probe", "dns", "httpbin", "--from", "nope", "-n", "default", "--dns-server", c.DNS.Addr},
	} {
		r := plugin(t, c.API.Kubeconfig, nil, args...)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code != 1 || len(lines) != 1 || !strings.Contains(lines[0], `pod default/nope not found`) || r.Stdout != "" {
			t.Errorf("%v: want exit 1, one line on stderr naming the pod, nothing on stdout:\n%s", args, r)
		}
	}
}

func TestBadKubeconfigExits2(t *testing.T) {
	dir := t.TempDir()
	// A well-formed kubeconfig; nothing needs to listen at its server.
	good := filepath.Join(dir, "config")
	if err := os.WriteFile(good, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: t}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"status"}, {"validate"}, {"probe", "curl", "sleep", "http://httpbin:8000"}, {"probe", "dns", "h", "--from", "sleep"},
		{"aws", "discover"}, {"aws", "plan"}, {"aws", "apply"}, {"aws", "rollback"}, {"network"}, {"gateway"}, {"upgrade"},
	} {
		for _, bad := range []struct {
			flags []string
			want  string
		}{
			{[]string{"--kubeconfig", filepath.Join(dir, "nope")}, "no such file"},
			{[]string{"--context", "nope"}, `context "nope" does not exist`},
		} {
			r := plugin(t, good, nil, append(cmd, bad.flags...)...)
			lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			if r.Code != 2 || len(lines) != 1 || !strings.Contains(lines[0], bad.want) || !strings.Contains(lines[0], "--kubeconfig") {
				t.Errorf("%v %v: want exit 2 and one line saying %q:\n%s", cmd, bad.flags, bad.want, r)
			}
		}
	}
}

func TestAWSPlanTableInPhaseOrder(t *testing.T) {
	api, _, env := openShiftOnAWS(t, harness.OpenShiftOnAWSOptions{})
	r := plugin(t, api.Kubeconfig, env, "aws", "plan")
	if r.Code != 0 {
		t.Fatalf("aws plan:\n%s", r)
	}
	var phases []int
	rows := false
	for _, line := range strings.Split(r.Stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "PHASE":
			rows = true
		case rows && len(f) == 0:
			rows = false
		case rows:
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("row %q has no phase", line)
			}
			phases = append(phases, n)
		}
	}
	if len(phases) < 10 || phases[0] != 1 || phases[len(phases)-1] != 5 {
		t.Fatalf("want the plan's rows from phase 1 to 5, got %v:\n%s", phases, r.Stdout)
	}
	for i := 1; i < len(phases); i++ {
		if phases[i] < phases[i-1] {
			t.Fatalf("row %d is phase %d after phase %d; the table must be in the order apply runs:\n%s", i+1, phases[i], phases[i-1], r.Stdout)
		}
	}
}
