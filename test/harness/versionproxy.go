package harness

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"

	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/rest"
)

// VersionProxy stands in front of the apiserver and reports another server
// version on /version, passing everything else through with the apiserver's
// credentials. It makes the real apiserver look like an older release.
type VersionProxy struct {
	URL    string
	server *http.Server
}

// StartVersionProxy listens on 127.0.0.1 and reports gitVersion (e.g. v1.22.17).
func StartVersionProxy(cfg *rest.Config, gitVersion, major, minor string) (*VersionProxy, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, err
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = transport
	mux := http.NewServeMux()
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(version.Info{GitVersion: gitVersion, Major: major, Minor: minor, Platform: "linux/amd64"})
	})
	mux.Handle("/", proxy)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &VersionProxy{URL: fmt.Sprintf("http://%s", ln.Addr()), server: &http.Server{Handler: mux}}
	go func() { _ = p.server.Serve(ln) }()
	return p, nil
}

// Close stops the proxy.
func (p *VersionProxy) Close() error { return p.server.Close() }

// Config is a client config for the proxy (plain HTTP on loopback; the proxy
// adds the apiserver's credentials).
func (p *VersionProxy) Config() *rest.Config { return &rest.Config{Host: p.URL} }
