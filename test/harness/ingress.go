package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// Ingress is the ingress gateway as a client outside the cluster sees it:
// one port on 127.0.0.1 and [::1], routing on the Host header the way the
// Istio ingress gateway does once a VirtualService (bound to a Gateway) or
// an HTTPRoute names the host; other hosts get 404. It answers with
// `server: istio-envoy`.
type Ingress struct {
	Port int
	// ServesIPv6, when set, decides whether a request that came in over
	// IPv6 is served: a gateway whose proxies do not run dual-stack has no
	// IPv6 listener, so the connection is dropped unanswered.
	ServesIPv6 func(context.Context) bool
	dyn        dynamic.Interface
	backend    http.Handler
	servers    []*http.Server
}

// StartIngress listens on a free port on 127.0.0.1 and, when ipv6, the same
// port on [::1].
func StartIngress(dyn dynamic.Interface, ipv6 bool) (*Ingress, error) {
	g := &Ingress{dyn: dyn, backend: httpbin.New().Handler()}
	for attempt := 0; ; attempt++ {
		ln4, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := ln4.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{ln4}
		if ipv6 {
			ln6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port))
			if err != nil {
				ln4.Close()
				if attempt < 10 {
					continue // the port is taken on ::1: try another
				}
				return nil, err
			}
			lns = append(lns, ln6)
		}
		g.Port = port
		for _, ln := range lns {
			srv := &http.Server{Handler: g, ReadHeaderTimeout: 5 * time.Second}
			g.servers = append(g.servers, srv)
			go func() { _ = srv.Serve(ln) }()
		}
		return g, nil
	}
}

var (
	vsGVR        = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	httpRouteGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
)

func (g *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && g.ServesIPv6 != nil {
		if ta, ok := local.(*net.TCPAddr); ok && ta.IP.To4() == nil && !g.ServesIPv6(r.Context()) {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Server", "istio-envoy")
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !g.routed(r, strings.ToLower(host)) {
		w.WriteHeader(http.StatusNotFound) // envoy's NR: no route
		return
	}
	g.backend.ServeHTTP(w, r)
}

// routed reads the routes from the apiserver, as istiod would push them.
func (g *Ingress) routed(r *http.Request, host string) bool {
	if vss, err := g.dyn.Resource(vsGVR).List(r.Context(), metav1.ListOptions{}); err == nil {
		for _, vs := range vss.Items {
			spec, _ := vs.Object["spec"].(map[string]any)
			if containsString(spec["hosts"], host) && len(asSlice(spec["gateways"])) > 0 {
				return true
			}
		}
	}
	if routes, err := g.dyn.Resource(httpRouteGVR).List(r.Context(), metav1.ListOptions{}); err == nil {
		for _, rt := range routes.Items {
			spec, _ := rt.Object["spec"].(map[string]any)
			if containsString(spec["hostnames"], host) {
				return true
			}
		}
	}
	return false
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func containsString(v any, want string) bool {
	return slices.ContainsFunc(asSlice(v), func(x any) bool { s, _ := x.(string); return strings.EqualFold(s, want) })
}

// Close stops the listeners.
func (g *Ingress) Close() {
	for _, s := range g.servers {
		_ = s.Close()
	}
}
