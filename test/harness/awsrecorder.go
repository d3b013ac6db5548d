package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// AWSOp is one AWS API call as seen on the wire.
type AWSOp struct {
	Service string // the SigV4 signing name: ec2, elasticloadbalancing, sts...
	Action  string // DescribeVpcs, SetIpAddressType...
	DryRun  bool   // the request asked for EC2's DryRun
	// Params are the query-protocol parameters (EC2, ELB): what the call asked for.
	Params url.Values
	At     time.Time // when the proxy received it
	// Throttled: the throttling model answered it (Throttle), as AWS does
	// when the API's bucket is empty; it never reached moto.
	Throttled bool
}

// IAM is the IAM action name of the call, e.g. ec2:DescribeVpcs.
func (o AWSOp) IAM() string { return o.Service + ":" + o.Action }

// AWSFault is an error the proxy answers with instead of forwarding.
type AWSFault struct {
	Status  int    // HTTP status, e.g. 400, 403, 500, 503
	Code    string // AWS error code, e.g. RequestLimitExceeded, UnauthorizedOperation
	Message string
}

type faultRule struct {
	fault AWSFault
	times int // how many calls still fail; < 0: all
}

// AWSProxy is a recording, error-injecting HTTP proxy in front of an AWS
// endpoint (moto): it reads each call's service (from the SigV4 credential
// scope) and action (X-Amz-Target or the query/form Action), records it,
// and either forwards it or answers with an injected AWS error in the
// service's own XML format, so the SDK parses it exactly like a real one.
type AWSProxy struct {
	URL    string
	server *http.Server
	mu     sync.Mutex
	ops    []AWSOp
	faults map[string]*faultRule // by action
	delay  time.Duration
	hooks  map[string]func() // by action, run once before forwarding
	// throttle is AWS's request throttling, when turned on (Throttle).
	throttle *throttleModel
}

var scopeService = regexp.MustCompile(`Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request`)

// StartAWSProxy listens on 127.0.0.1 (plain http) and forwards to target,
// trusting caPEM when target is https. It stops when the test ends.
func StartAWSProxy(t testing.TB, target string, caPEM []byte) (*AWSProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = tr
	p := &AWSProxy{faults: map[string]*faultRule{}, hooks: map[string]func(){}}
	// moto ignores the filters of DescribeEgressOnlyInternetGateways; AWS
	// applies them (tag:<key>, tag-key): so does the proxy, on the answer.
	rp.ModifyResponse = filterEgressOnlyGateways
	p.server = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		op := AWSOp{Action: actionOf(r, body), DryRun: dryRunOf(body), At: time.Now()}
		op.Params, _ = url.ParseQuery(string(body))
		if m := scopeService.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			op.Service = m[1]
		}
		if op.Service == "route53" {
			op.Action, op.Params = route53Action(r.Method, r.URL.Path), r.URL.Query()
		}
		if d := p.latency(); d > 0 {
			time.Sleep(d)
		}
		if f := p.record(op); f != nil {
			writeAWSError(w, op.Service, *f)
			return
		}
		if h := p.hook(op.Action); h != nil {
			h()
		}
		r = r.WithContext(context.WithValue(r.Context(), paramsKey{}, op.Params))
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Host = u.Host
		rp.ServeHTTP(w, r)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.URL = "http://" + l.Addr().String()
	go func() { _ = p.server.Serve(l) }()
	t.Cleanup(func() { _ = p.server.Close() })
	return p, nil
}

func actionOf(r *http.Request, body []byte) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		return t[strings.LastIndex(t, ".")+1:]
	}
	if a := r.URL.Query().Get("Action"); a != "" {
		return a
	}
	if v, err := url.ParseQuery(string(body)); err == nil {
		return v.Get("Action")
	}
	return ""
}

// route53Action names a call of Route 53's REST API by its method and path
// (2013-04-01/...), as IAM names it.
func route53Action(method, path string) string {
	p := strings.Trim(strings.TrimPrefix(path, "/2013-04-01"), "/")
	parts := strings.Split(p, "/")
	switch {
	case parts[0] == "hostedzonesbyvpc":
		return "ListHostedZonesByVPC"
	case parts[0] == "hostedzone" && len(parts) == 1 && method == http.MethodGet:
		return "ListHostedZones"
	case parts[0] == "hostedzone" && len(parts) == 1:
		return "CreateHostedZone"
	case parts[0] == "hostedzone" && len(parts) == 2 && method == http.MethodGet:
		return "GetHostedZone"
	case parts[0] == "hostedzone" && len(parts) >= 3 && parts[2] == "rrset" && method == http.MethodGet:
		return "ListResourceRecordSets"
	case parts[0] == "hostedzone" && len(parts) >= 3 && parts[2] == "rrset":
		return "ChangeResourceRecordSets"
	case parts[0] == "change":
		return "GetChange"
	case parts[0] == "tags" && len(parts) == 2:
		return "ListTagsForResources"
	case parts[0] == "tags" && method == http.MethodGet:
		return "ListTagsForResource"
	case parts[0] == "tags":
		return "ChangeTagsForResource"
	}
	return method + " " + path
}

// dryRunOf reads EC2's DryRun parameter from a query-protocol body.
func dryRunOf(body []byte) bool {
	v, err := url.ParseQuery(string(body))
	return err == nil && strings.EqualFold(v.Get("DryRun"), "true")
}

func (p *AWSProxy) record(op AWSOp) *AWSFault {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.faults[op.Action]
	if r == nil || r.times == 0 {
		f := p.throttled(op)
		op.Throttled = f != nil
		p.ops = append(p.ops, op)
		return f
	}
	p.ops = append(p.ops, op)
	if r.times > 0 {
		r.times--
	}
	f := r.fault
	return &f
}

// SetLatency delays every call by d before forwarding it, like the round
// trip to a real AWS region (moto answers from the same machine).
func (p *AWSProxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

func (p *AWSProxy) latency() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

// Fail makes the next times calls of action fail with f (times < 0: all of them).
func (p *AWSProxy) Fail(action string, times int, f AWSFault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[action] = &faultRule{fault: f, times: times}
}

// OnCall runs fn once, when the next call of action arrives and before it
// is forwarded: the test acts as another party at a precise moment (e.g.
// someone assigning an address while apply runs).
func (p *AWSProxy) OnCall(action string, fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hooks[action] = fn
}

func (p *AWSProxy) hook(action string) func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hooks[action]
	delete(p.hooks, action)
	return h
}

// Heal removes every injected fault.
func (p *AWSProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = map[string]*faultRule{}
}

// Ops returns the calls recorded so far, in order.
func (p *AWSProxy) Ops() []AWSOp {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]AWSOp(nil), p.ops...)
}

// Reset forgets the recorded calls.
func (p *AWSProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops = nil
}

// Count is how many calls of action were recorded.
func (p *AWSProxy) Count(action string) int {
	n := 0
	for _, o := range p.Ops() {
		if o.Action == action {
			n++
		}
	}
	return n
}

// Env rewrites env (KEY=VALUE) so the AWS SDK goes through the proxy.
func (p *AWSProxy) Env(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "AWS_ENDPOINT_URL=") {
			out = append(out, e)
		}
	}
	return append(out, "AWS_ENDPOINT_URL="+p.URL)
}

func writeAWSError(w http.ResponseWriter, service string, f AWSFault) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(f.Status)
	if service == "ec2" {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>injected</RequestID></Response>`, f.Code, f.Message)
		return
	}
	typ := "Sender"
	if f.Status >= 500 {
		typ = "Receiver"
	}
	fmt.Fprintf(w, `<ErrorResponse><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>injected</RequestId></ErrorResponse>`, typ, f.Code, f.Message)
}
