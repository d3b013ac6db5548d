package harness

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericfilters "k8s.io/apiserver/pkg/endpoints/filters"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	rbacauthz "k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"
)

// KubeRequest is one Kubernetes API request as the apiserver classifies it
// (its own RequestInfo resolution).
type KubeRequest struct {
	Verb      string // get, list, watch, create, update, patch, delete...
	Resource  string // resource[/subresource][.group], e.g. networks.config.openshift.io, pods/exec
	Namespace string
	Name      string
	DryRun    bool
	Status    int // the status the client got
	// Attrs is what an authorizer is asked about the request.
	Attrs authorizer.Attributes
}

// Key is "verb resource", the form Fail matches.
func (r KubeRequest) Key() string { return r.Verb + " " + r.Resource }

// KubeFaultKind is how an injected fault looks to the client.
type KubeFaultKind string

const (
	// KubeFaultError answers 500 InternalError without forwarding.
	KubeFaultError KubeFaultKind = "error"
	// KubeFaultThrottle answers 429 TooManyRequests (Retry-After: 1)
	// without forwarding, as the apiserver's max-in-flight filter does.
	KubeFaultThrottle KubeFaultKind = "throttle"
	// KubeFaultTimeout forwards the request (a write lands) and then
	// answers 504 Timeout instead of the apiserver's answer, as the
	// apiserver does when its request deadline passes after the write: the
	// client cannot know whether the change happened.
	KubeFaultTimeout KubeFaultKind = "timeout"
)

type kubeFaultRule struct {
	key  string
	nth  int // fail the nth matching request (1-based); counts down
	kind KubeFaultKind
}

// KubeFaultProxyOptions shape the proxy.
type KubeFaultProxyOptions struct {
	// RBACUsers, when set, makes the proxy authenticate requests by these
	// users' bearer tokens and authorize them with the apiserver's own RBAC
	// authorizer against the (Cluster)Roles and bindings stored in the
	// apiserver, answering 401/403 exactly as an RBAC-enabled apiserver
	// does. For apiservers started without RBAC (the conversion sandbox).
	RBACUsers []TokenUser
}

// KubeFaultProxy stands in front of the apiserver (like VersionProxy),
// records every request as (verb, resource), and can fail the Nth request
// matching a verb+resource with a 500, a 429 or a 504 after forwarding.
type KubeFaultProxy struct {
	URL    string
	server *httptest.Server
	caPEM  []byte
	kube   kubernetes.Interface

	mu     sync.Mutex
	reqs   []KubeRequest
	faults []*kubeFaultRule
	fired  []string

	users map[string]user.Info
	authz authorizer.Authorizer
}

var kubeRequestInfo = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// StartKubeFaultProxy listens on 127.0.0.1 (https, a test certificate) and forwards to
// the apiserver of cfg with cfg's credentials. It stops when t ends.
func StartKubeFaultProxy(t testing.TB, cfg *rest.Config, opts KubeFaultProxyOptions) (*KubeFaultProxy, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, err
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	p := &KubeFaultProxy{kube: kc}
	if len(opts.RBACUsers) > 0 {
		p.users = map[string]user.Info{}
		for _, u := range opts.RBACUsers {
			p.users[u.Token] = &user.DefaultInfo{Name: u.Name, UID: u.Name, Groups: append([]string{user.AllAuthenticated}, u.Groups...)}
		}
		g := liveRBAC{kc}
		p.authz = rbacauthz.New(g, g, g, g)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = transport
	rp.FlushInterval = -1 // watches stream
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		writeKubeStatus(w, http.StatusBadGateway, metav1.StatusReasonInternalError, "proxy: "+err.Error())
	}
	// TLS: clientcmd sends a kubeconfig's token only over https.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.serve(w, r, rp)
	}))
	p.server.Listener = ln
	p.server.StartTLS()
	p.URL = p.server.URL
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.server.Certificate().Raw})
	t.Cleanup(p.server.Close)
	return p, nil
}

func (p *KubeFaultProxy) serve(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	info, err := kubeRequestInfo.NewRequestInfo(r)
	if err != nil {
		writeKubeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	req := KubeRequest{Verb: info.Verb, Namespace: info.Namespace, Name: info.Name, DryRun: r.URL.Query().Get("dryRun") != ""}
	if info.IsResourceRequest {
		req.Resource = info.Resource
		if info.Subresource != "" {
			req.Resource += "/" + info.Subresource
		}
		if info.APIGroup != "" {
			req.Resource += "." + info.APIGroup
		}
	} else {
		req.Resource = info.Path
	}
	ctx := request.WithRequestInfo(r.Context(), info)
	req.Attrs, _ = genericfilters.GetAuthorizerAttributes(ctx)

	if p.authz != nil {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		u, ok := p.users[token]
		if !ok {
			req.Status = http.StatusUnauthorized
			p.record(req)
			writeKubeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, fmt.Sprintf("Unauthorized (proxy: no user has this bearer token, %d bytes)", len(token)))
			return
		}
		ctx = request.WithUser(ctx, u)
		attrs, err := genericfilters.GetAuthorizerAttributes(ctx)
		if err != nil {
			writeKubeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
			return
		}
		req.Attrs = attrs
		decision, reason, err := p.authz.Authorize(ctx, attrs)
		if decision != authorizer.DecisionAllow {
			if err != nil && reason == "" {
				reason = err.Error()
			}
			req.Status = http.StatusForbidden
			p.record(req)
			responsewriters.Forbidden(attrs, w, r, reason, clientgoscheme.Codecs)
			return
		}
		r.Header.Del("Authorization")
	}

	fault := p.match(req)
	switch fault {
	case KubeFaultError:
		req.Status = http.StatusInternalServerError
		p.record(req)
		writeKubeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "Internal error occurred: injected fault")
		return
	case KubeFaultThrottle:
		req.Status = http.StatusTooManyRequests
		p.record(req)
		w.Header().Set("Retry-After", "1")
		writeKubeStatus(w, http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests, "Too many requests, please try again later.")
		return
	case KubeFaultTimeout:
		req.Status = http.StatusGatewayTimeout
		p.record(req)
		rec := &discardWriter{header: http.Header{}}
		rp.ServeHTTP(rec, r.WithContext(ctx))
		writeKubeStatus(w, http.StatusGatewayTimeout, metav1.StatusReasonTimeout, "Timeout: request did not complete within the allowed duration")
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	rp.ServeHTTP(sw, r.WithContext(ctx))
	req.Status = sw.status
	p.record(req)
}

func (p *KubeFaultProxy) record(req KubeRequest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = append(p.reqs, req)
}

func (p *KubeFaultProxy) match(req KubeRequest) KubeFaultKind {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.nth <= 0 || f.key != req.Key() {
			continue
		}
		f.nth--
		if f.nth == 0 {
			p.fired = append(p.fired, fmt.Sprintf("%s %s#%s", f.kind, req.Key(), req.Name))
			return f.kind
		}
	}
	return ""
}

// Fail makes the nth (1-based) request from now matching verb and resource
// (as in KubeRequest.Resource) fail once with kind.
func (p *KubeFaultProxy) Fail(verb, resource string, nth int, kind KubeFaultKind) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &kubeFaultRule{key: verb + " " + resource, nth: nth, kind: kind})
}

// Heal removes every pending fault.
func (p *KubeFaultProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// Fired lists the faults that were injected ("kind verb resource#name").
func (p *KubeFaultProxy) Fired() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.fired...)
}

// Requests returns the requests seen so far, in order.
func (p *KubeFaultProxy) Requests() []KubeRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]KubeRequest(nil), p.reqs...)
}

// Writes are the distinct "verb resource" keys of the non-dry-run writes
// seen so far, in first-seen order, with how often each was seen.
func (p *KubeFaultProxy) Writes() ([]string, map[string]int) {
	var keys []string
	n := map[string]int{}
	for _, r := range p.Requests() {
		switch r.Verb {
		case "create", "update", "patch", "delete", "deletecollection":
		default:
			continue
		}
		if r.DryRun {
			continue
		}
		if n[r.Key()] == 0 {
			keys = append(keys, r.Key())
		}
		n[r.Key()]++
	}
	return keys, n
}

// Keys are the distinct "verb resource" keys seen so far, sorted.
func (p *KubeFaultProxy) Keys() []string {
	s := map[string]bool{}
	for _, r := range p.Requests() {
		s[r.Key()] = true
	}
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// UserKubeconfig writes a kubeconfig that reaches the apiserver through the
// proxy as u (a user in RBACUsers) and returns its path.
func (p *KubeFaultProxy) UserKubeconfig(dir string, u TokenUser) (string, error) {
	path := dir + "/kubeconfig-proxied-" + u.Name
	return path, WriteKubeconfig(path, p.config(u.Token), u.Name)
}

// Kubeconfig writes a kubeconfig that reaches the apiserver through the
// proxy with the apiserver's own (admin) credentials.
func (p *KubeFaultProxy) Kubeconfig(dir string) (string, error) {
	path := dir + "/kubeconfig-proxied"
	return path, WriteKubeconfig(path, p.config(""), "proxied")
}

func (p *KubeFaultProxy) config(token string) *rest.Config {
	return &rest.Config{Host: p.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM}}
}

func writeKubeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":%q,"code":%d}`, msg, reason, code)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController (and the reverse proxy's upgrade
// handling) reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type discardWriter struct {
	header http.Header
	buf    bytes.Buffer
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return d.buf.Write(b) }
func (d *discardWriter) WriteHeader(int)             {}

// liveRBAC reads Roles and bindings from the apiserver on every check, so
// a rule removed from a ClusterRole takes effect at once.
type liveRBAC struct{ kc kubernetes.Interface }

func rbacCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

func (l liveRBAC) GetRole(ctx context.Context, ns, name string) (*rbacv1.Role, error) {
	ctx, cancel := rbacCtx(ctx)
	defer cancel()
	return l.kc.RbacV1().Roles(ns).Get(ctx, name, metav1.GetOptions{})
}

func (l liveRBAC) ListRoleBindings(ctx context.Context, ns string) ([]*rbacv1.RoleBinding, error) {
	ctx, cancel := rbacCtx(ctx)
	defer cancel()
	list, err := l.kc.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]*rbacv1.RoleBinding, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// GetClusterRole falls back on the apiserver's bootstrap roles
// (system:discovery, system:basic-user...), which an apiserver started
// without RBAC does not create.
func (l liveRBAC) GetClusterRole(ctx context.Context, name string) (*rbacv1.ClusterRole, error) {
	ctx, cancel := rbacCtx(ctx)
	defer cancel()
	cr, err := l.kc.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		for _, b := range bootstrappolicy.ClusterRoles() {
			if b.Name == name {
				return &b, nil
			}
		}
	}
	return cr, err
}

func (l liveRBAC) ListClusterRoleBindings(ctx context.Context) ([]*rbacv1.ClusterRoleBinding, error) {
	ctx, cancel := rbacCtx(ctx)
	defer cancel()
	list, err := l.kc.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]*rbacv1.ClusterRoleBinding, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	for _, b := range bootstrappolicy.ClusterRoleBindings() {
		out = append(out, &b)
	}
	return out, nil
}

var _ io.Writer = (*discardWriter)(nil)
