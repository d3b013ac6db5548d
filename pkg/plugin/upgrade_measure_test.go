package plugin

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/probe"
)

// sleepyPhase changes nothing but takes its time, doing do meanwhile.
type sleepyPhase struct {
	name string
	do   func()
}

func (p *sleepyPhase) Name() string { return p.name }
func (p *sleepyPhase) Plan(context.Context, *convert.Facts) (convert.PhasePlan, error) {
	return convert.PhasePlan{Action: convert.ActionChange, Summary: "change " + p.name}, nil
}
func (p *sleepyPhase) Apply(context.Context, *convert.Facts, convert.PhasePlan, *convert.Run) (convert.Done, error) {
	p.do()
	return convert.Done{Message: p.name + " done", Changed: true}, nil
}

func TestUpgradeMeasuresWhatEachFamilySawPerPhase(t *testing.T) {
	// The "ingress": an HTTP server on 127.0.0.1 that the second phase
	// stops for a while.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second} // a gateway with no route: 404 is up
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	var window time.Duration
	quiet := &sleepyPhase{name: "aws", do: func() { time.Sleep(700 * time.Millisecond) }}
	outage := &sleepyPhase{name: "gateway", do: func() {
		time.Sleep(300 * time.Millisecond)
		_ = ln.Close()
		closed := time.Now()
		time.Sleep(time.Second)
		again, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Errorf("listening again: %v", err)
			return
		}
		window = time.Since(closed)
		go func() { _ = srv.Serve(again) }()
		time.Sleep(500 * time.Millisecond)
	}}
	o, out, errOut := newTestUpgrade(true)
	o.phases, o.Phases = []convert.Phase{quiet, outage}, []string{"aws", "gateway"}
	o.Output = cli.NewOutputFlags(cli.FormatJSON)
	o.Measure = true
	dir := t.TempDir()
	o.JUnitFile, o.ReportDir = filepath.Join(dir, "upgrade.xml"), filepath.Join(dir, "report")
	if _, err := o.kube.CoreV1().Services("istio-system").Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-ingressgateway", Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "http2", Port: int32(port)}}},
		Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "127.0.0.1"}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := o.Run(context.Background()); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, errOut)
	}
	var got upgradeOutput
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Availability == nil {
		t.Fatalf("-o json: %v\n%s\n%s", err, out, errOut)
	}
	a := got.Availability
	if len(a.Phases) != 2 || a.Phases[0].Name != "aws" || a.Phases[1].Name != "gateway" {
		t.Fatalf("phases: %+v", a.Phases)
	}
	aws4, gw4 := a.Phases[0].Targets[0], a.Phases[1].Targets[0]
	if aws4.Family != probe.IPv4 || aws4.Requests < 2 || aws4.Failures != 0 {
		t.Errorf("IPv4 during aws: %s", aws4.Describe())
	}
	gap := time.Duration(gw4.LongestOutageSeconds * float64(time.Second))
	t.Logf("the gateway phase stopped the ingress for %s; IPv4 saw %s", window.Round(time.Millisecond), gw4.Describe())
	if gw4.Failures == 0 || (gap-window).Abs() > measureInterval {
		t.Errorf("IPv4 during gateway: outage %s, want %s within %s: %s", gap, window, measureInterval, gw4.Describe())
	}
	if v6 := a.Targets[1]; v6.Family != probe.IPv6 || v6.Failures != v6.Requests || v6.FirstSuccess != nil {
		t.Errorf("the ingress has an IPv4 address only: %s", v6.Describe())
	}

	// The JUnit holds the same numbers, per phase and family.
	b, err := os.ReadFile(o.JUnitFile)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suites []struct {
			Cases []struct {
				Name      string `xml:"name,attr"`
				SystemOut string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &suites); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{}
	for _, c := range suites.Suites[0].Cases {
		cases[c.Name] = c.SystemOut
	}
	name := "gateway: " + gw4.Target + "/IPv4"
	if cases[name] != gw4.Describe() {
		t.Errorf("JUnit %q:\n %q\nJSON:\n %q\nall: %v", name, cases[name], gw4.Describe(), cases)
	}
	if _, ok := cases["aws"]; !ok {
		t.Errorf("no test case for the aws phase: %v", cases)
	}
	for _, f := range []string{"timeline.png", "timeline.svg", "samples.csv", "availability.json"} {
		if _, err := os.Stat(filepath.Join(o.ReportDir, f)); err != nil {
			t.Errorf("--report-dir: %v", err)
		}
	}
	if !strings.Contains(errOut.String(), "Measuring availability") {
		t.Errorf("stderr: %s", errOut)
	}
}

func TestUpgradeWithoutReachableIngressDoesNotMeasure(t *testing.T) {
	o, out, errOut := newTestUpgrade(true, &fakePhase{name: "aws", plan: change("vpc"), ran: new([]string)})
	o.Output = cli.NewOutputFlags(cli.FormatJSON)
	o.Measure = true
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "Not measuring availability: no ingress gateway") || strings.Contains(out.String(), `"availability"`) {
		t.Fatalf("stdout %s\nstderr %s", out, errOut)
	}
}

// TestUpgradeMeasureTargetsBadInput: bad --measure-interval and
// --measure-target values are refused with one line (exit 2) before
// anything is contacted.
func TestUpgradeMeasureTargetsBadInput(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		targets  []string
		measure  bool
		want     string
	}{
		{0, nil, true, "--measure-interval must be at least"},
		{-time.Second, nil, true, "--measure-interval must be at least"},
		{time.Millisecond, nil, true, "--measure-interval must be at least"},
		{200 * time.Millisecond, []string{"ftp://example.com/"}, true, "--measure-target"},
		{200 * time.Millisecond, []string{"svc/web"}, true, "takes URLs"},
		{200 * time.Millisecond, []string{"http://[::1]:8080/", "http://[::1]:8080/"}, true, "given twice"},
		{200 * time.Millisecond, []string{"http://[::1]:8080/"}, false, "goes with --measure"},
	} {
		o, _, _ := newTestUpgrade(true)
		o.Measure, o.MeasureInterval, o.MeasureTargets = c.measure, c.interval, c.targets
		err := o.validateMeasure()
		var usage *cli.UsageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("interval %s, targets %q, measure %v: want one usage line with %q, got %v", c.interval, c.targets, c.measure, c.want, err)
		}
	}
}

// TestUpgradeMeasuresExtraTargets: --measure-target URLs are measured per
// phase beside the ingress; without an ingress gateway, they alone are.
// A literal IPv4 address is probed over IPv4 only; an unreachable URL is
// a clear failure in the report, not an error of the upgrade.
func TestUpgradeMeasuresExtraTargets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	dead, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String() + "/"
	_ = dead.Close()
	slow := &fakePhase{name: "aws", plan: change("vpc"), ran: new([]string), apply: func() { time.Sleep(600 * time.Millisecond) }}
	o, out, errOut := newTestUpgrade(true, slow)
	o.Output = cli.NewOutputFlags(cli.FormatJSON)
	o.Measure, o.MeasureInterval = true, 50*time.Millisecond
	o.MeasureTargets = []string{srv.URL + "/", deadURL}
	if err := o.validateMeasure(); err != nil {
		t.Fatal(err)
	}
	if err := o.Run(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if !strings.Contains(errOut.String(), "Not measuring the ingress gateway: no ingress gateway") {
		t.Errorf("stderr should say the ingress is not measured:\n%s", errOut)
	}
	var res struct {
		Availability probe.WatchReport `json:"availability"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lanes := map[string]probe.LaneStats{}
	for _, l := range res.Availability.Targets {
		lanes[l.Target+" "+string(l.Family)] = l
	}
	ok, bad := lanes[srv.URL+"/ IPv4"], lanes[deadURL+" IPv4"]
	if len(lanes) != 2 || ok.Requests < 5 || ok.Failures != 0 || bad.Requests < 5 || bad.Failures != bad.Requests || !strings.Contains(bad.LastError, "refused") {
		t.Errorf("lanes %+v", lanes)
	}
	if len(res.Availability.Phases) != 1 || res.Availability.Phases[0].Name != "aws" {
		t.Errorf("phases %+v", res.Availability.Phases)
	}
}
