package probe

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

func TestFamilyHas(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		v4, v6 bool
	}{
		{"10.0.0.1", true, false}, {"fd02::1", false, true}, {"[::1]", false, true},
		{"::ffff:127.0.0.1", true, false}, {"", false, false}, {"httpbin", false, false},
	} {
		if IPv4.Has(tc.ip) != tc.v4 || IPv6.Has(tc.ip) != tc.v6 {
			t.Errorf("%q: v4=%v v6=%v", tc.ip, IPv4.Has(tc.ip), IPv6.Has(tc.ip))
		}
	}
}

func TestParseCurl(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nServer: envoy\r\nContent-Type: application/json\r\n\r\n\ndualstack-probe: ::1 200 0.002\n"
	res, err := ParseCurl(ExecResult{Stdout: ok})
	if err != nil || res.RemoteIP != "::1" || res.HTTPCode != 200 || res.Server != "envoy" {
		t.Fatalf("%+v %v", res, err)
	}
	refused := "\ndualstack-probe:  000 0.001\n"
	res, err = ParseCurl(ExecResult{Stdout: refused, Stderr: "curl: (7) Couldn't connect\n", ExitCode: 7})
	if err != nil || res.RemoteIP != "" || res.HTTPCode != 0 || !strings.Contains(res.Describe(), "could not connect") {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := ParseCurl(ExecResult{Stdout: "HTTP/1.1 200 OK\r\n"}); err == nil {
		t.Fatal("output without the result line must count as lost")
	}
	cmd := CurlCommand(IPv6, "http://httpbin:8000/get", CurlOptions{ConnectTimeout: 3 * time.Second, MaxTime: 1500 * time.Millisecond})
	if !slices.Contains(cmd, "-6") || !slices.Contains(cmd, "1.5") || cmd[len(cmd)-1] != "http://httpbin:8000/get" {
		t.Fatalf("command %q", cmd)
	}
}

func TestParseLookup(t *testing.T) {
	out := "::ffff:127.0.0.1 STREAM httpbin\n::ffff:127.0.0.1 DGRAM\n"
	if addrs, notFound := ParseLookup(IPv6, ExecResult{Stdout: out}); !notFound || len(addrs) != 0 {
		t.Fatalf("v4-mapped answers are not AAAA records: %v", addrs)
	}
	out = "fd02::10 STREAM httpbin.demo.svc.cluster.local\nfd02::10 DGRAM\n"
	if addrs, _ := ParseLookup(IPv6, ExecResult{Stdout: out}); !slices.Equal(addrs, []string{"fd02::10"}) {
		t.Fatalf("%v", addrs)
	}
}

// scriptedExec answers exec calls in turn; an error is a lost result.
type scriptedExec struct {
	mu      sync.Mutex
	calls   int
	answers []func(cmd []string) (ExecResult, error)
}

func (s *scriptedExec) Exec(_ context.Context, _, _, _ string, cmd []string) (ExecResult, error) {
	s.mu.Lock()
	a := s.answers[min(s.calls, len(s.answers)-1)]
	s.calls++
	s.mu.Unlock()
	return a(cmd)
}

func deployment(noMesh bool) *Deployment {
	pod := func(name string, ips ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for _, ip := range ips {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		return p
	}
	svc := func(ips ...string) *corev1.Service { return &corev1.Service{Spec: corev1.ServiceSpec{ClusterIPs: ips}} }
	return &Deployment{
		Scenario:      Scenario{Namespace: "ns", NoMesh: noMesh, Host: "httpbin.example.com"},
		Pods:          map[string]*corev1.Pod{SleepName: pod("sleep", "10.0.0.1", "fd01::1"), HTTPBinName: pod("httpbin-x", "10.0.0.2")},
		Services:      map[string]*corev1.Service{HTTPBinName: svc("10.96.0.1", "fd02::1"), SleepName: svc("10.96.0.2")},
		ServiceErrors: map[string]string{SleepName: "spec.ipFamilyPolicy: Invalid value: RequireDualStack"},
	}
}

func TestValidatorJudges(t *testing.T) {
	lost := func([]string) (ExecResult, error) { return ExecResult{}, errors.New("stream reset") }
	served := func(cmd []string) (ExecResult, error) {
		if cmd[0] == "getent" {
			return ExecResult{Stdout: "fd02::1 STREAM httpbin\n"}, nil
		}
		return ExecResult{Stdout: "dualstack-probe: ::1 200 0.001\n"}, nil
	}
	ex := &scriptedExec{answers: []func([]string) (ExecResult, error){lost, lost, served}}
	v := &Validator{Exec: ex, Checks: []string{CheckPodIPs, CheckServiceIPs, CheckCurlService}}
	// Checks run concurrently: give each its own script to keep the test
	// deterministic by running the curl check alone first.
	d := deployment(true)
	c := v.curlService(context.Background(), d, IPv6)
	if c.Status != report.Pass || ex.calls != 3 {
		t.Fatalf("lost twice, then answered: %+v after %d calls", c, ex.calls)
	}
	ex = &scriptedExec{answers: []func([]string) (ExecResult, error){lost}}
	v.Exec = ex
	if c := v.curlService(context.Background(), d, IPv6); c.Status != report.Inconclusive || ex.calls != Attempts {
		t.Fatalf("always lost must be INCONCLUSIVE after %d attempts: %+v (%d calls)", Attempts, c, ex.calls)
	}
	// Meshed: a 200 without envoy did not go through the mesh.
	v.Exec = &scriptedExec{answers: []func([]string) (ExecResult, error){served}}
	if c := v.curlService(context.Background(), deployment(false), IPv6); c.Status != report.Fail || !strings.Contains(c.Message, "not through the mesh") {
		t.Fatalf("meshed without envoy: %+v", c)
	}

	r := v.Run(context.Background(), d)
	got := map[string]report.Status{}
	for _, c := range r.Checks {
		got[c.Name+"/"+c.Family] = c.Status
	}
	want := map[string]report.Status{
		"pod-ips/IPv4": report.Pass, "pod-ips/IPv6": report.Fail,
		"service-ips/IPv4": report.Pass, "service-ips/IPv6": report.Fail,
		"curl-service/IPv4": report.Fail, "curl-service/IPv6": report.Pass, // ::1 is not IPv4
	}
	for k, s := range want {
		if got[k] != s {
			t.Errorf("%s: %s, want %s", k, got[k], s)
		}
	}
	for _, c := range r.Checks {
		if c.Name == CheckServiceIPs && c.Family == "IPv6" && !strings.Contains(c.Message, "refused RequireDualStack") {
			t.Errorf("the reason must be given: %q", c.Message)
		}
	}
}
