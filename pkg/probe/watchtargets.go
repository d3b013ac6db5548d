package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// Kinds of `probe watch` targets.
const (
	TargetIngress = "ingress" // the ingress gateway, through its load balancer's name
	TargetService = "service" // a Service by name, from a pod in the cluster
	TargetURL     = "url"     // a URL, from this machine
)

// TargetSpec is a TARGET argument of `probe watch`, parsed.
type TargetSpec struct {
	Kind string
	// URL is the URL of a url target.
	URL *url.URL
	// Service and Port name a service target (Port 0: its first port).
	Service string
	Port    int32
	// Families the target is probed in: one for a literal address.
	Families []Family
}

// ParseTargetSpec reads a TARGET: `ingress`, `svc/NAME[:PORT]` (also
// `service/...`), or an http:// or https:// URL. A URL whose host is a
// literal address is probed in that address's family only.
func ParseTargetSpec(arg string) (TargetSpec, error) {
	both := []Family{IPv4, IPv6}
	if arg == TargetIngress {
		return TargetSpec{Kind: TargetIngress, Families: both}, nil
	}
	for _, prefix := range []string{"svc/", "service/", "services/"} {
		rest, ok := strings.CutPrefix(arg, prefix)
		if !ok {
			continue
		}
		name, port, hasPort := strings.Cut(rest, ":")
		spec := TargetSpec{Kind: TargetService, Service: name, Families: both}
		if name == "" || strings.Contains(name, "/") {
			return spec, fmt.Errorf("target %q: name a Service as svc/NAME or svc/NAME:PORT (its namespace with -n)", arg)
		}
		if hasPort {
			p, err := strconv.ParseInt(port, 10, 32)
			if err != nil || p < 1 || p > 65535 {
				return spec, fmt.Errorf("target %q: the port must be a number from 1 to 65535", arg)
			}
			spec.Port = int32(p)
		}
		return spec, nil
	}
	u, err := url.Parse(arg)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return TargetSpec{}, fmt.Errorf("target %q is not `ingress`, `svc/NAME[:PORT]` or an http:// or https:// URL", arg)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return TargetSpec{}, fmt.Errorf("target %q: unsupported scheme %q: use http:// or https://", arg, u.Scheme)
	}
	spec := TargetSpec{Kind: TargetURL, URL: u, Families: both}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		if a.Unmap().Is4() {
			spec.Families = []Family{IPv4}
		} else {
			spec.Families = []Family{IPv6}
		}
	}
	return spec, nil
}

// HTTPProbe is one request from this machine over one family: the name
// resolved for that family only (A or AAAA), a new connection of that
// family, no proxy, redirects not followed. Any HTTP answer below 500
// counts as up: the path answered (a 404 from the gateway is a gateway that
// works); a 5xx is a path broken behind it.
type HTTPProbe struct {
	Resolver *net.Resolver
	Timeout  time.Duration
}

// Get requests rawURL over family f, with Host header host when set.
func (p HTTPProbe) Get(ctx context.Context, f Family, rawURL, host string) Outcome {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	u, err := url.Parse(rawURL)
	if err != nil {
		return Outcome{Error: err.Error()}
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	ip := u.Hostname()
	if a, err := netip.ParseAddr(ip); err == nil {
		if !f.Has(a.String()) {
			return Outcome{Error: fmt.Sprintf("%s is not an %s address", ip, f)}
		}
	} else {
		resolver := p.Resolver
		if resolver == nil {
			resolver = net.DefaultResolver
		}
		ips, err := LookupFamily(ctx, resolver, f, ip)
		switch {
		case err != nil:
			return Outcome{Error: fmt.Sprintf("resolving %s (%s): %v", ip, f.RecordType(), err)}
		case len(ips) == 0:
			return Outcome{Error: fmt.Sprintf("%s has no %s record", ip, f.RecordType())}
		}
		ip = ips[0]
	}
	target := net.JoinHostPort(ip, port)
	dialer := &net.Dialer{Timeout: p.Timeout}
	transport := &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil, // the point is the direct path of this family
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, f.Network(), target)
		},
	}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return Outcome{Error: err.Error()}
	}
	if host != "" {
		req.Host = host
	}
	client := &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return Outcome{RemoteIP: ip, Error: fmt.Sprintf("GET %s: %v", target, err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	out := Outcome{RemoteIP: ip, HTTPCode: resp.StatusCode, OK: resp.StatusCode < 500}
	if !out.OK {
		out.Error = fmt.Sprintf("HTTP %d from %s", resp.StatusCode, target)
	}
	return out
}

// URLTarget probes u from this machine.
func URLTarget(u *url.URL, families []Family, p HTTPProbe) WatchTarget {
	raw := u.String()
	return WatchTarget{Name: raw, Families: families, Probe: func(ctx context.Context, f Family) Outcome { return p.Get(ctx, f, raw, "") }}
}

// IngressFollower keeps the ingress gateway Service's current address:
// the load balancer's name changes when the Service is re-created, and
// while it is gone there is none. After a gateway migration it follows the
// new Service (<name>-dualstack) once the old one is being deleted, as the
// names did before that.
type IngressFollower struct {
	Namespace, Name string

	mu sync.Mutex
	// old is the Service followed; twin its migration (nil: none). Each
	// holds the address, or why there is none.
	old, twin        *IngressAddress
	oldWhy, twinWhy  string
	oldGone, twinSet bool
	// preferTwin: the migration was found done (the names lead to the twin).
	preferTwin bool
}

// FollowIngress finds the ingress gateway Service (as validate does) and
// follows it by name until ctx ends. A Service without a load balancer
// address yet is followed too: its requests fail saying so.
func FollowIngress(ctx context.Context, kc kubernetes.Interface, ref, label string) (*IngressFollower, error) {
	svc, err := FindIngressService(ctx, kc, ref, label)
	if err != nil {
		return nil, err
	}
	fl := &IngressFollower{Namespace: svc.Namespace, Name: svc.Name}
	if from := svc.Labels[gateway.LabelMigratedFrom]; from != "" {
		fl.Name = from // found after a migration: it stays on the new one
		fl.preferTwin = true
	}
	fl.set(svc)
	// The namespace's Services: the gateway's few, and its migration's twin.
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return kc.CoreV1().Services(svc.Namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return kc.CoreV1().Services(svc.Namespace).Watch(ctx, o)
		},
	}, kc)
	inf := cache.NewSharedIndexInformer(lw, &corev1.Service{}, 0, cache.Indexers{})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { fl.set(obj) },
		UpdateFunc: func(_, obj any) { fl.set(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			svc, ok := obj.(*corev1.Service)
			if !ok {
				return
			}
			fl.mu.Lock()
			defer fl.mu.Unlock()
			switch {
			case svc.Name == fl.Name:
				fl.old, fl.oldGone, fl.oldWhy = nil, true, fmt.Sprintf("the ingress gateway Service %s/%s is gone (being re-created?)", fl.Namespace, fl.Name)
			case svc.Labels[gateway.LabelMigratedFrom] == fl.Name:
				fl.twin, fl.twinSet, fl.twinWhy = nil, false, ""
			}
		},
	})
	go inf.RunWithContext(ctx)
	return fl, nil
}

func (fl *IngressFollower) set(obj any) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	isOld := svc.Name == fl.Name
	if !isOld && svc.Labels[gateway.LabelMigratedFrom] != fl.Name {
		return
	}
	addr, err := IngressAddressOf(svc)
	deleting := svc.DeletionTimestamp != nil
	if err == nil && deleting {
		addr, err = nil, fmt.Errorf("the ingress gateway Service %s/%s is being deleted", svc.Namespace, svc.Name)
	}
	why := ""
	if err != nil {
		why = err.Error()
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if isOld {
		fl.old, fl.oldWhy, fl.oldGone = addr, why, deleting
		return
	}
	fl.twin, fl.twinWhy, fl.twinSet = addr, why, true
}

// Address is the ingress's address now, or why there is none: the old
// Service's while it is there, then its migration's.
func (fl *IngressFollower) Address() (*IngressAddress, string) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	addr, why := fl.old, fl.oldWhy
	if (fl.oldGone || fl.preferTwin) && fl.twinSet {
		addr, why = fl.twin, fl.twinWhy
	}
	if addr == nil {
		return nil, why
	}
	a := *addr
	return &a, ""
}

// Target probes the ingress through its load balancer's current name with
// Host header host, at path.
func (fl *IngressFollower) Target(host, path string, p HTTPProbe) WatchTarget {
	return WatchTarget{
		Name:     fmt.Sprintf("ingress %s/%s", fl.Namespace, fl.Name),
		Families: []Family{IPv4, IPv6},
		Probe: func(ctx context.Context, f Family) Outcome {
			addr, why := fl.Address()
			if addr == nil {
				return Outcome{Error: why}
			}
			u := url.URL{Scheme: "http", Host: net.JoinHostPort(addr.host(), strconv.Itoa(int(addr.Port))), Path: path}
			return p.Get(ctx, f, u.String(), host)
		},
	}
}

// ProberPod is the pod `probe watch` curls Services from. It is the
// namespace's, created for the run and deleted after it.
type ProberPod struct {
	Ref  PodRef
	kube kubernetes.Interface
}

// LabelProbe marks the prober pod.
const LabelProbe = "dualstack.kubectl.io/probe-run"

// StartProberPod creates the prober pod in namespace (restricted Pod
// Security, no ServiceAccount token, `sleep infinity` in image) and waits
// until it runs. On error the pod, if it was created, is deleted again.
func StartProberPod(ctx context.Context, kc kubernetes.Interface, namespace, image string, timeout time.Duration) (*ProberPod, error) {
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	run := hex.EncodeToString(id)
	name := "dualstack-probe-" + run
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{LabelManagedBy: ManagedBy, LabelProbe: run}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken:  ptr.To(false),
			SecurityContext:               restrictedPod(),
			TerminationGracePeriodSeconds: ptr.To(int64(0)),
			Containers: []corev1.Container{{
				Name: "probe", Image: image, Command: []string{"sleep", "infinity"},
				ImagePullPolicy: corev1.PullIfNotPresent, SecurityContext: restrictedContainer(),
			}},
		},
	}
	p := &ProberPod{Ref: PodRef{Namespace: namespace, Name: name, Container: "probe"}, kube: kc}
	if _, err := kc.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		if mayHaveLanded(err) {
			_ = p.Delete()
		}
		return nil, kube.Explain("creating the prober pod "+p.Ref.String(), err)
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return kc.CoreV1().Pods(namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return kc.CoreV1().Pods(namespace).Watch(ctx, o)
		},
	}
	err := kube.WaitAll(ctx, lw, &corev1.Pod{}, timeout, func(objs map[string]runtime.Object) (bool, error) {
		for _, o := range objs {
			if pod, ok := o.(*corev1.Pod); ok && pod.Status.Phase == corev1.PodRunning {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		_ = p.Delete()
		return nil, fmt.Errorf("waiting for the prober pod %s to run: %w (check `kubectl -n %s describe pod %s`)", p.Ref, err, namespace, name)
	}
	return p, nil
}

// Delete removes the pod, with a budget of its own (it runs after Ctrl-C).
func (p *ProberPod) Delete() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.kube.CoreV1().Pods(p.Ref.Namespace).Delete(ctx, p.Ref.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the prober pod %s: %w (delete it with `kubectl -n %s delete pod %s`)", p.Ref, err, p.Ref.Namespace, p.Ref.Name)
	}
	return nil
}

// ServiceTarget curls http://service:port/ from the prober pod, once per
// family (curl -4 / -6), through e.
func (p *ProberPod) ServiceTarget(e Execer, service string, port int32, o CurlOptions) WatchTarget {
	u := fmt.Sprintf("http://%s:%d/", service, port)
	return WatchTarget{
		Name:     fmt.Sprintf("svc/%s:%d", service, port),
		Families: []Family{IPv4, IPv6},
		Probe: func(ctx context.Context, f Family) Outcome {
			res, err := Curl(ctx, e, p.Ref, f, u, o)
			switch {
			case err != nil:
				return Outcome{Lost: true, Error: "result lost: " + err.Error()}
			case res.ExitCode != 0:
				return Outcome{RemoteIP: res.RemoteIP, Error: res.Describe()}
			case res.HTTPCode >= 500 || res.HTTPCode == 0:
				return Outcome{RemoteIP: res.RemoteIP, HTTPCode: res.HTTPCode, Error: fmt.Sprintf("HTTP %d from %s", res.HTTPCode, res.RemoteIP)}
			}
			return Outcome{OK: true, RemoteIP: res.RemoteIP, HTTPCode: res.HTTPCode, Latency: time.Duration(res.Seconds * float64(time.Second))}
		},
	}
}
