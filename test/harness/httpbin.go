package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// HTTPBin is the real go-httpbin listening on 127.0.0.1 and [::1] at the
// httpbin Service's port, as the httpbin pod would answer behind its
// Service. Meshed adds `server: envoy`, what the sidecar sets.
type HTTPBin struct {
	Port    int
	handler http.Handler
	mu      sync.Mutex
	servers map[string]*http.Server
}

// StartHTTPBin listens on port on 127.0.0.1, and on [::1] when ipv6.
func StartHTTPBin(port int, ipv6, meshed bool) (*HTTPBin, error) {
	h := httpbin.New(httpbin.WithMaxDuration(10 * time.Second)).Handler()
	if meshed {
		h = withServerHeader(h, "envoy")
	}
	b := &HTTPBin{Port: port, handler: h, servers: map[string]*http.Server{}}
	if err := b.listen("127.0.0.1"); err != nil {
		return nil, err
	}
	if ipv6 {
		if err := b.listen("::1"); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

func withServerHeader(h http.Handler, server string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", server)
		h.ServeHTTP(w, r)
	})
}

func (b *HTTPBin) listen(ip string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(b.Port)))
	if err != nil {
		return fmt.Errorf("httpbin on [%s]:%d (another test or program using the port?): %w", ip, b.Port, err)
	}
	srv := &http.Server{Handler: b.handler, ReadHeaderTimeout: 5 * time.Second}
	b.mu.Lock()
	b.servers[ip] = srv
	b.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// StopIPv6 takes the [::1] listener down: IPv6 connections are refused.
func (b *HTTPBin) StopIPv6() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if srv := b.servers["::1"]; srv != nil {
		_ = srv.Shutdown(context.Background())
		delete(b.servers, "::1")
	}
}

// Close stops both listeners.
func (b *HTTPBin) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ip, srv := range b.servers {
		_ = srv.Close()
		delete(b.servers, ip)
	}
}
