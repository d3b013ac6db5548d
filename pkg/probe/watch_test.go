package probe

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// familyServer answers HTTP on 127.0.0.1 and [::1], each on a port of its
// own; one family's listener can be closed (connections refused) and
// opened again on the same port.
type familyServer struct {
	t      *testing.T
	mu     sync.Mutex
	lns    map[Family]net.Listener
	ports  map[Family]int
	server *http.Server
}

func startFamilyServer(t *testing.T) *familyServer {
	t.Helper()
	s := &familyServer{t: t, lns: map[Family]net.Listener{}, ports: map[Family]int{},
		server: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }), ReadHeaderTimeout: time.Second}}
	for f, addr := range map[Family]string{IPv4: "127.0.0.1:0", IPv6: "[::1]:0"} {
		ln, err := net.Listen(f.Network(), addr)
		if err != nil {
			t.Skipf("no %s loopback here: %v", f, err)
		}
		s.lns[f], s.ports[f] = ln, ln.Addr().(*net.TCPAddr).Port
		go func() { _ = s.server.Serve(ln) }()
	}
	t.Cleanup(func() { _ = s.server.Close() })
	return s
}

func (s *familyServer) url(f Family) string {
	host := "127.0.0.1"
	if f == IPv6 {
		host = "[::1]"
	}
	return fmt.Sprintf("http://%s:%d/", host, s.ports[f])
}

// refuse closes f's listener: new connections are refused.
func (s *familyServer) refuse(f Family) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.lns[f].Close()
}

// accept listens again on f's port.
func (s *familyServer) accept(f Family) {
	s.mu.Lock()
	defer s.mu.Unlock()
	host := "127.0.0.1"
	if f == IPv6 {
		host = "::1"
	}
	ln, err := net.Listen(f.Network(), net.JoinHostPort(host, fmt.Sprint(s.ports[f])))
	if err != nil {
		s.t.Errorf("listening again on %s: %v", f, err)
		return
	}
	s.lns[f] = ln
	go func() { _ = s.server.Serve(ln) }()
}

func TestWatchMeasuresOneFamilysOutage(t *testing.T) {
	srv := startFamilyServer(t)
	const interval = 100 * time.Millisecond
	var targets []WatchTarget
	for _, f := range Families {
		spec, err := ParseTargetSpec(srv.url(f))
		if err != nil {
			t.Fatal(err)
		}
		if len(spec.Families) != 1 || spec.Families[0] != f {
			t.Fatalf("%s: a literal address is probed in its own family only, got %v", srv.url(f), spec.Families)
		}
		targets = append(targets, URLTarget(spec.URL, spec.Families, HTTPProbe{Timeout: time.Second}))
	}
	w := &Watcher{Targets: targets, Interval: interval}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()

	// IPv6 refuses connections for a window; its length is measured here,
	// from when the listener closed to when it listened again.
	time.Sleep(600 * time.Millisecond)
	closed := time.Now()
	srv.refuse(IPv6)
	time.Sleep(1500 * time.Millisecond)
	srv.accept(IPv6)
	window := time.Since(closed)
	time.Sleep(600 * time.Millisecond)
	cancel()
	<-done

	r := w.Report()
	if len(r.Targets) != 2 {
		t.Fatalf("want one lane per literal target, got %+v", r.Targets)
	}
	v4, v6 := r.Targets[0], r.Targets[1]
	if v4.Family != IPv4 || v6.Family != IPv6 {
		t.Fatalf("lanes: %+v", r.Targets)
	}
	if v4.Failures != 0 || v4.LongestOutageSeconds != 0 || v4.Requests < 20 {
		t.Errorf("IPv4 was never refused: %s", v4.Describe())
	}
	gap := time.Duration(v6.LongestOutageSeconds * float64(time.Second))
	t.Logf("refused IPv6 for %s; reported longest outage %s (interval %s); IPv4: %s; IPv6: %s", window.Round(time.Millisecond), gap, interval, v4.Describe(), v6.Describe())
	// Within one interval, plus a little for a tick that fires late on a
	// loaded machine (the first failure starts at or after the close, the
	// next success at the first tick after the listener is back).
	const lateTick = 30 * time.Millisecond
	if v6.Failures == 0 || math.Abs(float64(gap-window)) > float64(interval+lateTick) {
		t.Errorf("IPv6 outage %s, want %s within one interval (%s, +%s for a late tick): %s", gap, window.Round(time.Millisecond), interval, lateTick, v6.Describe())
	}
	if !strings.Contains(v6.LastError, "refused") {
		t.Errorf("the failure should say the connection was refused: %q", v6.LastError)
	}
	if v6.FirstSuccess == nil || v4.P50Ms <= 0 || v4.P99Ms < v4.P50Ms {
		t.Errorf("first success and latency: %s", v4.Describe())
	}
}

func TestWatchUnreachableURLIsAFailureInTheReport(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	u, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d/", port))
	w := &Watcher{Targets: []WatchTarget{URLTarget(u, []Family{IPv4}, HTTPProbe{Timeout: time.Second})}, Interval: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	w.Run(ctx)
	r := w.Report()
	l := r.Targets[0]
	if !r.Failed() || l.Failures == 0 || l.Failures != l.Requests || l.FirstSuccess != nil || !strings.Contains(l.LastError, "refused") {
		t.Fatalf("unreachable URL: %s", l.Describe())
	}
	if c := r.Checks("FAIL").Checks[0]; c.Status != "FAIL" || !strings.Contains(c.Remediation, "failed") {
		t.Fatalf("check: %+v", c)
	}
}

func TestWatchReportPerPhase(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := &Watcher{Targets: []WatchTarget{{Name: "x", Families: Families}}, Interval: 100 * time.Millisecond}
	w.start, w.end = t0, at(1000)
	add := func(ms int, f Family, ok bool) {
		w.samples = append(w.samples, Sample{Time: at(ms), Family: f, Target: "x", OK: ok, Latency: 5 * time.Millisecond})
	}
	for ms := 0; ms < 1000; ms += 100 {
		add(ms, IPv4, ms < 300 || ms >= 600) // down from 300 to 600
		add(ms, IPv6, ms >= 500)             // up from 500
	}
	w.marks = []Mark{{Name: "a", Start: at(0), End: at(400)}, {Name: "b", Start: at(400), End: at(1000)}}
	r := w.Report()
	if v4 := r.Targets[0]; v4.Failures != 3 || v4.LongestOutageSeconds != 0.3 || *v4.FirstSuccess != at(0) {
		t.Errorf("IPv4: %s", v4.Describe())
	}
	if v6 := r.Targets[1]; v6.Failures != 5 || v6.LongestOutageSeconds != 0.5 || *v6.FirstSuccess != at(500) {
		t.Errorf("IPv6: %s", v6.Describe())
	}
	// Phase a: IPv4 down from 300 to its end; phase b: the rest of the
	// outage, until the success at 600.
	if a := r.Phases[0].Targets[0]; a.Requests != 4 || a.Failures != 1 || a.LongestOutageSeconds != 0.1 {
		t.Errorf("phase a IPv4: %s", a.Describe())
	}
	if b := r.Phases[1].Targets[0]; b.Requests != 6 || b.Failures != 2 || b.LongestOutageSeconds != 0.2 {
		t.Errorf("phase b IPv4: %s", b.Describe())
	}
	if b6 := r.Phases[1].Targets[1]; b6.FirstSuccess == nil || *b6.FirstSuccess != at(500) {
		t.Errorf("phase b IPv6: %s", b6.Describe())
	}
}

func TestParseTargetSpec(t *testing.T) {
	for arg, want := range map[string]string{
		"ingress":                "ingress [IPv4 IPv6]",
		"svc/web":                "service web:0 [IPv4 IPv6]",
		"service/web:8080":       "service web:8080 [IPv4 IPv6]",
		"http://example.com/x":   "url [IPv4 IPv6]",
		"https://127.0.0.1:8443": "url [IPv4]",
		"http://[::1]:8080/":     "url [IPv6]",
		"ftp://example.com/":     `error: unsupported scheme "ftp"`,
		"example.com":            "error: is not `ingress`",
		"svc/web:http":           "error: the port must be a number",
		"svc/":                   "error: name a Service",
	} {
		spec, err := ParseTargetSpec(arg)
		got := ""
		switch {
		case err != nil:
			got = "error: " + err.Error()
		case spec.Kind == TargetService:
			got = fmt.Sprintf("service %s:%d %v", spec.Service, spec.Port, spec.Families)
		default:
			got = fmt.Sprintf("%s %v", spec.Kind, spec.Families)
		}
		if !strings.HasPrefix(got, want) && !(strings.HasPrefix(want, "error: ") && strings.Contains(got, strings.TrimPrefix(want, "error: "))) {
			t.Errorf("%s: got %q, want %q", arg, got, want)
		}
	}
}
