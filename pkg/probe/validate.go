package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
)

// The checks validate runs, each once per family, in report order.
const (
	CheckPodIPs      = "pod-ips"
	CheckServiceIPs  = "service-ips"
	CheckCurlService = "curl-service"
	CheckDNSService  = "dns-service"
	CheckDNSIngress  = "dns-ingress"
	CheckCurlIngress = "curl-ingress"
)

// AllChecks is every check, in report order.
var AllChecks = []string{CheckPodIPs, CheckServiceIPs, CheckCurlService, CheckDNSService, CheckDNSIngress, CheckCurlIngress}

// CheckDNSNames resolves the names users reach the cluster by (--name,
// and OpenShift's api name): it runs, after the others, only when there
// are such names.
const CheckDNSNames = "dns-names"

// KnownChecks are the names --checks takes.
var KnownChecks = append(slices.Clone(AllChecks), CheckDNSNames)

// ServiceSettle is how long curl-service asks again while the connection
// is refused: a Service's proxying follows its pods' readiness by a moment.
const ServiceSettle = 10 * time.Second

// curlCouldNotConnect is curl's exit code for a refused or failed connect.
const curlCouldNotConnect = 7

// Attempts is how often a check whose result was lost is tried.
const Attempts = 3

// Validator runs the proof against a deployed scenario.
type Validator struct {
	Kube     kubernetes.Interface
	Dynamic  dynamic.Interface
	Exec     Execer
	Resolver *net.Resolver
	Curl     CurlOptions
	// Checks selects checks (all when empty).
	Checks []string
	// Ingress is the ingress gateway's address; nil when none was found
	// (IngressErr says why).
	Ingress    *IngressAddress
	IngressErr error
	// Backoff between attempts of a lost result.
	Backoff time.Duration

	// Command is how the user runs this tool ("kubectl dualstack"), for
	// the commands a fix names.
	Command string
	// Names are the names users reach the cluster by, resolved by the
	// dns-names check (none: no such check).
	Names []string

	// loopback counts answers that came from a loopback address: pods
	// and load balancers simulated on this machine (the sandbox).
	loopback atomic.Int32
}

func (v *Validator) command() string {
	if v.Command == "" {
		return "kubectl dualstack"
	}
	return v.Command
}

// sawAnswerFrom notes where an answer came from.
func (v *Validator) sawAnswerFrom(ip string) {
	if a := net.ParseIP(ip); a != nil && a.IsLoopback() {
		v.loopback.Add(1)
	}
}

// NoteLoopback is said once when answers came from loopback addresses.
const NoteLoopback = "the answers came from loopback addresses (127.0.0.0/8, ::1): this cluster's pods and load balancers are simulated on this machine (the sandbox), so the checks show what the plugin verifies, not a real network"

// Notes are what the reader should know about the checks as a whole.
func (v *Validator) Notes() []string {
	if v.loopback.Load() > 0 {
		return []string{NoteLoopback}
	}
	return nil
}

// IngressAddress is where the ingress gateway is reached from outside.
type IngressAddress struct {
	Service  string // namespace/name
	Hostname string // the load balancer's DNS name, or "" when IP is set
	IP       string
	Port     int32
}

func (a IngressAddress) host() string {
	if a.Hostname != "" {
		return a.Hostname
	}
	return a.IP
}

// FindIngress locates the ingress gateway Service: ref ("namespace/name")
// when given, otherwise the one Service labelled istio=<label>.
func FindIngress(ctx context.Context, kc kubernetes.Interface, ref, label string) (*IngressAddress, error) {
	svc, err := FindIngressService(ctx, kc, ref, label)
	if err != nil {
		return nil, err
	}
	return IngressAddressOf(svc)
}

// FindIngressService reads the ingress gateway Service: ref
// ("namespace/name", or a name in istio-system) when given, otherwise the
// one Service labelled istio=<label>.
func FindIngressService(ctx context.Context, kc kubernetes.Interface, ref, label string) (*corev1.Service, error) {
	if ref != "" {
		ns, name, ok := strings.Cut(ref, "/")
		if !ok {
			ns, name = "istio-system", ref
		}
		got, err := kc.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading ingress gateway service %s/%s: %w", ns, name, err)
		}
		return got, nil
	}
	list, err := kc.CoreV1().Services("").List(ctx, metav1.ListOptions{LabelSelector: "istio=" + label, Limit: 50})
	if err != nil {
		return nil, fmt.Errorf("looking for the ingress gateway (services labelled istio=%s): %w", label, err)
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no Service labelled istio=%s: name the ingress gateway with --ingress-service namespace/name", label)
	}
	return &list.Items[Current(list.Items)], nil
}

// Current is the index of the gateway Service that serves among svcs: a
// gateway migration leaves the old Service next to <name>-dualstack
// (labelled gateway.LabelMigratedFrom) until it is retired, and the new
// one is the gateway then; otherwise the first.
func Current(svcs []corev1.Service) int {
	superseded := map[string]bool{}
	for _, s := range svcs {
		if from := s.Labels[gateway.LabelMigratedFrom]; from != "" {
			superseded[s.Namespace+"/"+from] = true
		}
	}
	for i, s := range svcs {
		if !superseded[s.Namespace+"/"+s.Name] {
			return i
		}
	}
	return 0
}

// IngressAddressOf is where the ingress gateway Service svc is reached from
// outside: its load balancer's hostname (or IP) and its http port.
func IngressAddressOf(svc *corev1.Service) (*IngressAddress, error) {
	addr := &IngressAddress{Service: svc.Namespace + "/" + svc.Name}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.Hostname != "" {
			addr.Hostname = ing.Hostname
			break
		}
		if addr.IP == "" {
			addr.IP = ing.IP
		}
	}
	if addr.Hostname == "" && addr.IP == "" {
		return nil, fmt.Errorf("ingress gateway %s has no load balancer address in status yet (kubectl -n %s get svc %s)", addr.Service, svc.Namespace, svc.Name)
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "http2" || p.Name == "http" || (addr.Port == 0 && p.Port == 80) {
			addr.Port = p.Port
			break
		}
	}
	if addr.Port == 0 {
		return nil, fmt.Errorf("ingress gateway %s has no http/http2 port", addr.Service)
	}
	return addr, nil
}

func (v *Validator) selected(name string) bool {
	return len(v.Checks) == 0 || slices.Contains(v.Checks, name)
}

// checks are the checks of this run, in report order.
func (v *Validator) checks() []string {
	if len(v.Names) == 0 {
		return AllChecks
	}
	return KnownChecks
}

// Run runs the selected checks for both families at once and returns the
// report in a fixed order (check, then family).
func (v *Validator) Run(ctx context.Context, d *Deployment) report.Report {
	type job struct {
		name   string
		family Family
		run    func(context.Context, Family) report.Check
	}
	funcs := map[string]func(context.Context, Family) report.Check{
		CheckPodIPs:      func(_ context.Context, f Family) report.Check { return v.podIPs(d, f) },
		CheckServiceIPs:  func(_ context.Context, f Family) report.Check { return v.serviceIPs(d, f) },
		CheckCurlService: func(ctx context.Context, f Family) report.Check { return v.curlService(ctx, d, f) },
		CheckDNSService:  func(ctx context.Context, f Family) report.Check { return v.dnsService(ctx, d, f) },
		CheckDNSIngress:  func(ctx context.Context, f Family) report.Check { return v.dnsIngress(ctx, f) },
		CheckCurlIngress: func(ctx context.Context, f Family) report.Check { return v.curlIngress(ctx, d, f) },
		CheckDNSNames:    v.dnsNames,
	}
	var jobs []job
	for _, name := range v.checks() {
		if !v.selected(name) {
			continue
		}
		for _, f := range Families {
			jobs = append(jobs, job{name, f, funcs[name]})
		}
	}
	results := make([]report.Check, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			start := time.Now()
			c := j.run(ctx, j.family)
			if ctx.Err() != nil && c.Status != report.Pass && c.Status != report.Skip {
				// Ctrl-C or --timeout ended it: whatever it saw last (a
				// refused dial, a missing answer) may be the cut, not the
				// cluster, so it is not a verdict.
				c = report.Check{
					Status:      report.Inconclusive,
					Message:     fmt.Sprintf("cut short (%v): %s", context.Cause(ctx), c.Message),
					Remediation: "re-run it to completion (a longer --timeout, or without interrupting)",
				}
			}
			c.Layer, c.Name, c.Family = report.LayerProof, j.name, string(j.family)
			c.DurationMs = time.Since(start).Milliseconds()
			results[i] = c
		})
	}
	wg.Wait()
	var r report.Report
	for _, c := range results {
		r.Add(c)
	}
	return r
}

// NotRun is the report of a run that stopped before its checks (a setup
// failure, pods that never became Ready, Ctrl-C): every selected check, for
// both families, with status (FAIL, or INCONCLUSIVE when nothing could be
// observed), why and what to do. service-ips needs only the Services, so it
// is judged for real once Deploy made them.
func (v *Validator) NotRun(d *Deployment, status report.Status, why, fix string) report.Report {
	var r report.Report
	for _, name := range v.checks() {
		if !v.selected(name) {
			continue
		}
		for _, f := range Families {
			var c report.Check
			if name == CheckServiceIPs && d != nil && d.Services[HTTPBinName] != nil && d.Services[SleepName] != nil {
				c = v.serviceIPs(d, f)
			} else {
				c = report.Check{Status: status, Message: "not run: " + why, Remediation: fix}
			}
			c.Layer, c.Name, c.Family = report.LayerProof, name, string(f)
			r.Add(c)
		}
	}
	return r
}

func pass(format string, args ...any) report.Check {
	return report.Check{Status: report.Pass, Message: fmt.Sprintf(format, args...)}
}

func fail(fix, format string, args ...any) report.Check {
	return report.Check{Status: report.Fail, Message: fmt.Sprintf(format, args...), Remediation: fix}
}

func skip(format string, args ...any) report.Check {
	return report.Check{Status: report.Skip, Message: fmt.Sprintf(format, args...)}
}

func (v *Validator) podIPs(d *Deployment, f Family) report.Check {
	var have, missing []string
	for _, app := range []string{SleepName, HTTPBinName} {
		pod := d.Pods[app]
		var ips []string
		for _, ip := range pod.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		if got := f.Pick(ips); len(got) > 0 {
			have = append(have, fmt.Sprintf("%s %s", pod.Name, got[0]))
		} else {
			missing = append(missing, fmt.Sprintf("%s (podIPs: %s)", pod.Name, orNone(ips)))
		}
	}
	if len(missing) > 0 {
		return fail("the cluster network needs a pod CIDR of this family (OpenShift: clusterNetwork; kubeadm/kind: --cluster-cidr); see `dualstack status`",
			"no %s pod IP: %s", f, strings.Join(missing, ", "))
	}
	return pass("%s", strings.Join(have, ", "))
}

func (v *Validator) serviceIPs(d *Deployment, f Family) report.Check {
	var have, missing []string
	for _, name := range []string{HTTPBinName, SleepName} {
		svc := d.Services[name]
		if got := f.Pick(svc.Spec.ClusterIPs); len(got) > 0 {
			have = append(have, fmt.Sprintf("%s %s", name, got[0]))
			continue
		}
		why := fmt.Sprintf("%s (clusterIPs: %s)", name, orNone(svc.Spec.ClusterIPs))
		if msg := d.ServiceErrors[name]; msg != "" {
			why += "; the cluster refused RequireDualStack: " + msg
		}
		missing = append(missing, why)
	}
	if len(missing) > 0 {
		return fail("add a service CIDR of this family (OpenShift: serviceNetwork; kubeadm: --service-cluster-ip-range v4,v6)",
			"no %s cluster IP: %s", f, strings.Join(missing, ", "))
	}
	return pass("%s", strings.Join(have, ", "))
}

// retry runs attempt until it returns a result that was not lost, at most
// Attempts times; lost is the last loss when all were lost.
func (v *Validator) retry(ctx context.Context, attempt func() error) (lost error) {
	for i := range Attempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(lost, ctx.Err())
			case <-time.After(v.Backoff * time.Duration(i)):
			}
		}
		if lost = attempt(); lost == nil {
			return nil
		}
	}
	return lost
}

func inconclusive(lost error) report.Check {
	return report.Check{
		Status:      report.Inconclusive,
		Message:     fmt.Sprintf("no result after %d attempts: %v", Attempts, lost),
		Remediation: "the exec stream to the pod was lost, nothing was observed: check the kubelet and any proxy between you and the API server, then re-run",
	}
}

func (v *Validator) sleepRef(d *Deployment) PodRef {
	return PodRef{Namespace: d.Namespace, Name: d.Pods[SleepName].Name, Container: SleepName}
}

func (v *Validator) curlService(ctx context.Context, d *Deployment, f Family) report.Check {
	url := fmt.Sprintf("http://%s:%d/get", HTTPBinName, HTTPBinPort)
	var res CurlResult
	// A refused connection right after the pods got Ready may be the
	// Service's proxy not programmed yet (EndpointSlice controller, then
	// kube-proxy): it is asked again, a second apart, for ServiceSettle.
	settled := time.Now().Add(ServiceSettle)
	for {
		if lost := v.retry(ctx, func() (err error) {
			res, err = Curl(ctx, v.Exec, v.sleepRef(d), f, url, v.Curl)
			return err
		}); lost != nil {
			return inconclusive(lost)
		}
		if res.ExitCode != curlCouldNotConnect || !time.Now().Before(settled) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	fix := "check that httpbin's Service has a cluster IP of this family and its pod listens on it (kubectl -n " + d.Namespace + " get svc,endpointslices)"
	v.sawAnswerFrom(res.RemoteIP)
	switch {
	case res.ExitCode != 0:
		return fail(fix, "curl %s %s: %s", f.CurlFlag(), url, res.Describe())
	case res.HTTPCode != 200:
		return fail(fix, "curl %s %s: HTTP %d from %s, want 200", f.CurlFlag(), url, res.HTTPCode, res.RemoteIP)
	case !f.Has(res.RemoteIP):
		return fail(fix, "curl %s reached %q, not an %s address", f.CurlFlag(), res.RemoteIP, f)
	case !d.NoMesh && !strings.EqualFold(res.Server, "envoy"):
		return fail("check that the sidecar was injected (kubectl -n "+d.Namespace+" get pods -o jsonpath='{..containers[*].name}') and that istiod has ISTIO_DUAL_STACK=true",
			"200 from %s but not through the mesh (server: %q, want envoy)", res.RemoteIP, res.Server)
	}
	via := ""
	if res.Server != "" {
		via = " (server: " + res.Server + ")"
	}
	return pass("200 from %s%s in %.0fms", res.RemoteIP, via, res.Seconds*1000)
}

func (v *Validator) dnsService(ctx context.Context, d *Deployment, f Family) report.Check {
	var addrs []string
	var res ExecResult
	if lost := v.retry(ctx, func() (err error) {
		addrs, res, err = InPodLookup(ctx, v.Exec, v.sleepRef(d), f, HTTPBinName)
		return err
	}); lost != nil {
		return inconclusive(lost)
	}
	if len(addrs) == 0 {
		return fail("a dual-stack Service gets both records from cluster DNS once it has both cluster IPs; check the service-ips check and the DNS pods",
			"%s lookup of %s in pod %s found no %s address (getent exit %d)", f.RecordType(), HTTPBinName, SleepName, f, res.ExitCode)
	}
	return pass("%s %s", HTTPBinName, strings.Join(addrs, ", "))
}

func (v *Validator) dnsIngress(ctx context.Context, f Family) report.Check {
	if v.Ingress == nil {
		return v.noIngress()
	}
	if v.Ingress.Hostname == "" {
		if f.Has(v.Ingress.IP) {
			return pass("ingress %s has address %s (no hostname to resolve)", v.Ingress.Service, v.Ingress.IP)
		}
		return fail("give the ingress gateway Service an address of this family", "ingress %s has only the address %s, no %s", v.Ingress.Service, v.Ingress.IP, f)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := LookupFamily(ctx, v.Resolver, f, v.Ingress.Hostname)
	if err != nil || len(addrs) == 0 {
		why := "no records"
		if err != nil {
			why = err.Error()
		}
		other := IPv4
		if f == IPv4 {
			other = IPv6
		}
		otherAddrs, _ := LookupFamily(ctx, v.Resolver, other, v.Ingress.Hostname)
		var fix string
		switch {
		case len(otherAddrs) == 0:
			fix = fmt.Sprintf("%s has neither A nor AAAA records here: the name does not exist, or this resolver is not the one that knows it (point --dns-server or $KUBECTL_DUALSTACK_DNS_SERVER at the DNS server for the load balancer names)", v.Ingress.Hostname)
		case f == IPv6:
			fix = fmt.Sprintf("%s has A but no AAAA records: the load balancer is not dualstack yet (`%s gateway` makes it so; a load balancer just switched can take a minute or two to get AAAA)", v.Ingress.Hostname, v.command())
		default:
			fix = fmt.Sprintf("%s has AAAA but no A records: the load balancer serves IPv6 only; give it IP address type dualstack (`%s gateway`)", v.Ingress.Hostname, v.command())
		}
		return fail(fix, "%s %s: %s", f.RecordType(), v.Ingress.Hostname, why)
	}
	return pass("%s %s", v.Ingress.Hostname, strings.Join(addrs, ", "))
}

// dnsNames resolves each user-facing name in family f: a name a client
// reaches the cluster by must answer in both families, or that family's
// clients cannot use it, whatever the load balancers behind it do.
func (v *Validator) dnsNames(ctx context.Context, f Family) report.Check {
	var found, missing []string
	for _, name := range v.Names {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := LookupFamily(lctx, v.Resolver, f, name)
		cancel()
		if err != nil || len(addrs) == 0 {
			missing = append(missing, name)
			continue
		}
		for _, a := range addrs {
			v.sawAnswerFrom(a)
		}
		found = append(found, name+" "+strings.Join(addrs, ","))
	}
	if len(missing) == 0 {
		return pass("%s", strings.Join(found, "; "))
	}
	fix := fmt.Sprintf("%s records are missing: `%s dns apply` adds the AAAA twin of each alias A record whose load balancer is dual-stack; a name on a Classic ELB (OpenShift's *.apps behind the default router) needs that load balancer replaced first (`%s upgrade --phases router`)",
		f.RecordType(), v.command(), v.command())
	if f == IPv4 {
		fix = "A records are missing: the name does not exist, or this resolver is not the one that knows it (--dns-server)"
	}
	return fail(fix, "no %s for %s", f.RecordType(), strings.Join(missing, ", "))
}

func (v *Validator) noIngress() report.Check {
	if v.IngressErr == nil {
		return fail("name the ingress gateway with --ingress-service namespace/name, or leave this check out (--checks)", "no ingress gateway Service was found")
	}
	return fail("name the ingress gateway with --ingress-service namespace/name", "no ingress gateway: %v", v.IngressErr)
}

func (v *Validator) curlIngress(ctx context.Context, d *Deployment, f Family) report.Check {
	if d.NoMesh {
		return skip("--no-mesh: no ingress route was created")
	}
	if v.Ingress == nil {
		return v.noIngress()
	}
	res, err := HTTPGet(ctx, v.Resolver, f, v.Ingress.host(), v.Ingress.Port, d.Host, "/get", v.Curl.MaxTime)
	fix := fmt.Sprintf("check the load balancer's %s listeners and security groups, and the Gateway/VirtualService for %s", f, d.Host)
	if err == nil {
		v.sawAnswerFrom(res.RemoteIP)
	} else if strings.Contains(err.Error(), "connection refused") {
		fix = fmt.Sprintf("nothing accepts %s connections there: the load balancer's %s listener, or the gateway's proxies for %s (proxies started before the mesh was dual-stack serve IPv4 only: `%s workloads` re-creates them)", f, f, f, v.command())
	}
	switch {
	case err != nil:
		return fail(fix, "%v", err)
	case res.HTTPCode != 200:
		return fail(fix, "HTTP %d from %s (Host: %s), want 200", res.HTTPCode, res.RemoteIP, d.Host)
	case !strings.EqualFold(res.Server, "istio-envoy"):
		return fail(fix, "200 from %s but not from the Istio gateway (server: %q, want istio-envoy)", res.RemoteIP, res.Server)
	}
	return pass("200 from %s (Host: %s, server: %s) in %dms", res.RemoteIP, d.Host, res.Server, res.Elapsed.Milliseconds())
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ",")
}

// OpenShiftNames are the names of an OpenShift cluster validate always
// resolves: the API, api.<baseDomain>, whose NLB the conversion makes
// dual-stack. api-int resolves inside the VPC only; *.apps stays IPv4
// behind the default router's Classic ELB until the router phase, so it is
// checked when asked (--name console-openshift-console.apps.<baseDomain>).
// None when the cluster is not OpenShift or its DNS config cannot be read.
func OpenShiftNames(ctx context.Context, dc dynamic.Interface) []string {
	if dc == nil {
		return nil
	}
	u, err := dc.Resource(platform.DNSesGVR).Get(ctx, "cluster", metav1.GetOptions{})
	if err != nil {
		return nil
	}
	base, _, _ := unstructured.NestedString(u.Object, "spec", "baseDomain")
	base = strings.TrimSuffix(base, ".")
	if base == "" {
		return nil
	}
	return []string{"api." + base}
}
