package probe

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"time"
)

// HTTPResult is one request from the workstation.
type HTTPResult struct {
	RemoteIP string        `json:"remoteIP"`
	HTTPCode int           `json:"httpCode"`
	Server   string        `json:"server,omitempty"`
	Elapsed  time.Duration `json:"-"`
}

// HTTPGet is the workstation's `curl -4|-6 -H 'Host: hostHeader'
// http://addr:port/path`: addr is resolved for the family only (with
// resolver) and the connection is made over that family only.
func HTTPGet(ctx context.Context, resolver *net.Resolver, f Family, addr string, port int32, hostHeader, path string, timeout time.Duration) (HTTPResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var ips []string
	if f.Has(addr) {
		ips = []string{addr}
	} else {
		var err error
		if ips, err = LookupFamily(ctx, resolver, f, addr); err != nil {
			return HTTPResult{}, fmt.Errorf("resolving %s (%s): %w", addr, f.RecordType(), err)
		}
		if len(ips) == 0 {
			return HTTPResult{}, fmt.Errorf("%s has no %s record", addr, f.RecordType())
		}
	}
	target := net.JoinHostPort(ips[0], strconv.Itoa(int(port)))
	dialer := &net.Dialer{Timeout: 3 * time.Second}
	transport := &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil, // the point is the direct path of this family
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, f.Network(), target)
		},
	}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+path, nil)
	if err != nil {
		return HTTPResult{}, err
	}
	req.Host = hostHeader
	var res HTTPResult
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if a, ok := info.Conn.RemoteAddr().(*net.TCPAddr); ok {
			res.RemoteIP = a.IP.String()
		}
	}}
	req = req.WithContext(httptrace.WithClientTrace(ctx, trace))
	start := time.Now()
	resp, err := (&http.Client{Transport: transport, Timeout: timeout}).Do(req)
	if err != nil {
		return res, fmt.Errorf("GET %s (Host: %s): %w", target, hostHeader, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	res.Elapsed = time.Since(start)
	res.HTTPCode = resp.StatusCode
	res.Server = resp.Header.Get("Server")
	return res, nil
}

// Reach is a gateway migration's check (gateway.Runner.Reach): one request
// over family to addr:port with Host header host. Any HTTP answer below
// 500 counts: a gateway without a route for host answers 404, which still
// proves the path; 5xx is the load balancer or gateway failing.
func Reach(resolver *net.Resolver) func(ctx context.Context, family, addr, host string, port int32) error {
	return func(ctx context.Context, family, addr, host string, port int32) error {
		res, err := HTTPGet(ctx, resolver, Family(family), addr, port, host, "/", 5*time.Second)
		if err != nil {
			return err
		}
		if res.HTTPCode >= 500 {
			return fmt.Errorf("HTTP %d from %s (Host: %s)", res.HTTPCode, res.RemoteIP, host)
		}
		return nil
	}
}
