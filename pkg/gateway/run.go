package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	dnsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/dns"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// LoadBalancer is the AWS load balancer behind a Service's hostname.
type LoadBalancer struct {
	Name          string `json:"name"`
	ARN           string `json:"arn,omitempty"`
	Type          string `json:"type"` // network, application, classic
	IPAddressType string `json:"ipAddressType"`
	DNSName       string `json:"dnsName"`
	// CanonicalHostedZoneID is the zone an alias record to DNSName names.
	CanonicalHostedZoneID string `json:"canonicalHostedZoneId,omitempty"`
	// SubnetsWithoutIPv6 are its subnets that have no IPv6 block yet.
	SubnetsWithoutIPv6 []string `json:"subnetsWithoutIPv6,omitempty"`
	// ByLoadBalancerController: the AWS Load Balancer Controller owns it.
	ByLoadBalancerController bool `json:"byLoadBalancerController,omitempty"`
}

// LoadBalancers is the AWS side of the gateway command.
type LoadBalancers interface {
	// ByHostname finds the load balancer whose DNS name is hostname; nil if none.
	ByHostname(ctx context.Context, hostname string) (*LoadBalancer, error)
	// SetDualStack switches an NLB to dualstack and records it in the journal.
	SetDualStack(ctx context.Context, lb *LoadBalancer) error
}

// Resolver looks up host addresses (the system's, or a --dns-server's).
type Resolver interface {
	LookupIP(ctx context.Context, network, host string) ([]net.IP, error)
}

// Options of a gateway run.
type Options struct {
	ServiceRef string // namespace/name, or "" to find istio=ingressgateway
	Policy     corev1.IPFamilyPolicy
	Recreate   bool          // allowed to re-create a Service behind a Classic ELB
	Timeout    time.Duration // for the load balancer and DNS to catch up
	DryRun     cli.DryRun
	Command    string // "kubectl dualstack", for messages
}

// Action is one thing the run did (or would do). Field names are stable.
type Action struct {
	Kind   string `json:"kind"` // patch-service, recreate-service, set-ip-address-type
	Target string `json:"target"`
	Detail string `json:"detail"`
	Status string `json:"status"` // planned, applied, dry-run, unchanged, verified, skipped
}

// Result is what `gateway -o json` prints. Field names are stable.
type Result struct {
	Service          string        `json:"service"`
	Hostname         string        `json:"hostname,omitempty"`
	PreviousHostname string        `json:"previousHostname,omitempty"`
	LoadBalancer     *LoadBalancer `json:"loadBalancer,omitempty"`
	Actions          []Action      `json:"actions"`
	IPv4             []string      `json:"ipv4,omitempty"`
	IPv6             []string      `json:"ipv6,omitempty"`
	Changed          bool          `json:"changed"`
	// NeedsIPv6Subnets (plans only) are the load balancer's subnets that
	// must get IPv6 (aws apply) before the plan can be applied.
	NeedsIPv6Subnets []string `json:"needsIPv6Subnets,omitempty"`
	// Moves are the Route 53 records a migration moved, and NamesMovedAt
	// when Route 53 had them all (INSYNC).
	Moves        []dnsx.Move `json:"moves,omitempty"`
	NamesMovedAt *time.Time  `json:"namesMovedAt,omitempty"`
}

// Runner carries what a run needs.
type Runner struct {
	Kube     kubernetes.Interface
	AWS      LoadBalancers
	Resolver Resolver
	Progress *cli.Progress
	// Show prints the plan.
	Show func(plan string)
	// Confirm is asked once the plan is shown; nil error means go ahead.
	Confirm func(ctx context.Context) error
	// Journal records the Service's patch or re-creation before it is made.
	Journal Journal
	// Log receives one-line notes (stderr).
	Log io.Writer
	// Names moves the DNS names in a migration (nil: no Route 53; the
	// records to change are printed).
	Names Names
	// Reach makes one HTTP request over family ("IPv4", "IPv6") to
	// addr:port with Host header host and says whether an answer came
	// back; a migration asks it before and after moving the names. nil:
	// not checked.
	Reach func(ctx context.Context, family, addr, host string, port int32) error
}

// ErrClassic is returned when the gateway sits behind a Classic ELB and
// re-creating it was not allowed.
var ErrClassic = errors.New("the ingress gateway is behind a Classic ELB, which cannot serve IPv6 in a VPC")

// Run makes the gateway Service dual-stack and its NLB dualstack, then waits
// until the hostname answers A and AAAA.
func (r *Runner) Run(ctx context.Context, o Options) (*Result, error) {
	want := Want{Policy: o.Policy}
	if o.DryRun == cli.DryRunNone {
		if res, err := r.resume(ctx, o, want); res != nil || err != nil {
			return res, err
		}
	} else if res, err := r.planResume(ctx, o); res != nil || err != nil {
		return res, err
	}
	svc, err := Find(ctx, r.Kube, o.ServiceRef, o.Command+" gateway")
	if err != nil {
		return nil, err
	}
	ref := svc.Namespace + "/" + svc.Name
	res := &Result{Service: ref, Hostname: hostname(svc)}

	var lb *LoadBalancer
	if res.Hostname != "" {
		if lb, err = r.lookup(ctx, svc, res.Hostname); err != nil {
			return nil, err
		}
		res.LoadBalancer = lb
	}

	recreate := lb != nil && lb.Type == "classic"
	if recreate && !o.Recreate {
		return nil, fmt.Errorf("%w: %s sits behind Classic ELB %s, and the load-balancer type of a Service cannot change in place. "+
			"Re-run with --migrate to create a dual-stack NLB Service next to it and move the DNS names to it without downtime, "+
			"or with --recreate to delete and re-create the Service as a dual-stack NLB (same ports, nodePorts, selector, labels and annotations; "+
			"an outage until the NLB is provisioned, and its hostname changes from %s, so update DNS records that point at it)", ErrClassic, ref, lb.Name, res.Hostname)
	}
	// Every precondition before any change: a re-created NLB goes into the
	// subnets the Classic ELB uses, so they need IPv6 as much.
	if lb != nil && len(lb.SubnetsWithoutIPv6) > 0 && o.DryRun == cli.DryRunClient {
		// A plan, not a refusal: the caller (upgrade) knows whether its
		// underlay phase gives these subnets IPv6 first.
		res.NeedsIPv6Subnets = lb.SubnetsWithoutIPv6
	} else if lb != nil && len(lb.SubnetsWithoutIPv6) > 0 {
		return nil, fmt.Errorf("the load balancer %s of %s cannot become dualstack: its subnets %s have no IPv6 yet; run `%s aws apply` first",
			lb.Name, ref, strings.Join(lb.SubnetsWithoutIPv6, ", "), o.Command)
	}

	// The plan.
	var plan []string
	var patch []byte
	if recreate {
		res.Actions = append(res.Actions, Action{Kind: "recreate-service", Target: ref, Status: "planned",
			Detail: fmt.Sprintf("delete and re-create as a %s NLB; hostname %s will change", o.Policy, res.Hostname)})
		plan = append(plan, fmt.Sprintf("Service %s: delete and re-create behind a dual-stack NLB (Classic ELB %s cannot do IPv6)", ref, lb.Name),
			diff(svc, Recreated(svc, want)),
			fmt.Sprintf("  the hostname changes: %s -> (new NLB)", res.Hostname))
	} else {
		if patch, err = Patch(svc, want); err != nil {
			return nil, err
		}
		if patch != nil {
			res.Actions = append(res.Actions, Action{Kind: "patch-service", Target: ref, Detail: string(patch), Status: "planned"})
			plan = append(plan, fmt.Sprintf("Service %s (merge patch, nothing else changes):", ref), diff(svc, applyWant(svc, want)))
		}
	}
	nlbChange := lb != nil && !recreate && lb.Type == "network" && lb.IPAddressType != "dualstack"
	if nlbChange && !lb.ByLoadBalancerController {
		res.Actions = append(res.Actions, Action{Kind: "set-ip-address-type", Target: lb.Name, Status: "planned",
			Detail: lb.IPAddressType + " -> dualstack"})
		plan = append(plan, fmt.Sprintf("NLB %s: SetIpAddressType %s -> dualstack (recorded; `%s aws rollback` undoes it)", lb.Name, lb.IPAddressType, o.Command))
	}
	if len(plan) == 0 {
		res.Actions = append(res.Actions, Action{Kind: "service", Target: ref, Detail: "already dual-stack", Status: "unchanged"})
		if o.DryRun != cli.DryRunNone {
			return res, nil // planning never waits: DNS is the verify step's (and validate's) to report
		}
		if err := r.waitDNS(ctx, o, res); err != nil {
			return res, err
		}
		return res, nil
	}
	r.Show(strings.Join(plan, "\n"))
	if o.DryRun == cli.DryRunClient {
		return res, nil
	}
	if err := r.Confirm(ctx); err != nil {
		return res, err
	}

	// Apply.
	switch {
	case recreate && o.DryRun == cli.DryRunServer:
		err = r.Kube.CoreV1().Services(svc.Namespace).Delete(ctx, svc.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		setStatus(res, "dry-run")
		return res, kube.Explain("deleting service "+ref+" (server dry run)", err)
	case recreate:
		res.PreviousHostname = res.Hostname
		deleted, err := r.recreate(ctx, svc, want, o)
		res.Changed = deleted
		if err != nil {
			return res, err
		}
		res.Hostname = ""
		res.Actions[0].Status = "applied"
	case patch != nil && o.DryRun == cli.DryRunServer:
		opts := metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}
		if _, err := r.Kube.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.MergePatchType, patch, opts); err != nil {
			return res, explainPatch(ref, err, o.Command)
		}
		setStatus(res, "dry-run")
		return res, nil
	case patch != nil:
		if err := r.patchRecorded(ctx, svc, patch, o); err != nil {
			return res, err
		}
		res.Actions[0].Status = "applied"
	}
	res.Changed = true
	return r.finishLB(ctx, o, want, svc, lb, res, recreate, nlbChange)
}

// patchRecorded patches the Service after recording the patch's inverse.
func (r *Runner) patchRecorded(ctx context.Context, svc *corev1.Service, patch []byte, o Options) error {
	ref := svc.Namespace + "/" + svc.Name
	e, err := patchEntry(svc)
	if err != nil {
		return err
	}
	if err := r.Journal.PutAll(ctx, []journal.Entry{e}); err != nil {
		return fmt.Errorf("recording the patch of %s before making it (nothing was changed): %w", ref, err)
	}
	if _, err := r.Kube.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			_ = setState(ctx, r.Journal, e, journal.Failed, nil)
		}
		return explainPatch(ref, err, o.Command)
	}
	if err := setState(ctx, r.Journal, e, journal.Done, nil); err != nil {
		return fmt.Errorf("patched %s but could not record it as done (it stays recorded as pending, so rollback still finds it): %w", ref, err)
	}
	return nil
}

// finishLB waits for the (new) load balancer, makes it dualstack and waits
// for its name to answer both families.
func (r *Runner) finishLB(ctx context.Context, o Options, want Want, svc *corev1.Service, lb *LoadBalancer, res *Result, recreate, nlbChange bool) (*Result, error) {
	// The load balancer: wait for the hostname (new after a re-creation), then dualstack.
	if res.Hostname == "" || recreate {
		host, err := r.waitHostname(ctx, svc.Namespace, svc.Name, res.PreviousHostname, o.Timeout)
		if err != nil {
			return res, err
		}
		res.Hostname = host
		if lb, err = r.lookup(ctx, Recreated(svc, want), host); err != nil {
			return res, err
		}
		res.LoadBalancer = lb
		if len(lb.SubnetsWithoutIPv6) > 0 {
			return res, fmt.Errorf("NLB %s cannot become dualstack: its subnets %s have no IPv6 yet; run `%s aws apply`, then `%s gateway` again",
				lb.Name, strings.Join(lb.SubnetsWithoutIPv6, ", "), o.Command, o.Command)
		}
		nlbChange = lb.Type == "network" && lb.IPAddressType != "dualstack"
		if nlbChange && !lb.ByLoadBalancerController {
			res.Actions = append(res.Actions, Action{Kind: "set-ip-address-type", Target: lb.Name, Detail: lb.IPAddressType + " -> dualstack"})
		}
	}
	if nlbChange && lb.ByLoadBalancerController {
		// The AWS Load Balancer Controller acts on the annotation itself.
		if err := r.waitLB(ctx, res, o.Timeout); err != nil {
			return res, err
		}
		res.Actions = append(res.Actions, Action{Kind: "set-ip-address-type", Target: lb.Name, Detail: "by the AWS Load Balancer Controller", Status: "verified"})
	} else if nlbChange {
		if err := r.AWS.SetDualStack(ctx, lb); err != nil {
			return res, err
		}
		lb.IPAddressType = "dualstack"
		res.Actions[len(res.Actions)-1].Status = "applied"
	}
	return res, r.waitDNS(ctx, o, res)
}

// lookup finds the load balancer behind svc's hostname.
func (r *Runner) lookup(ctx context.Context, svc *corev1.Service, host string) (*LoadBalancer, error) {
	lb, err := r.AWS.ByHostname(ctx, host)
	if err != nil {
		return nil, err
	}
	if lb == nil {
		return nil, fmt.Errorf("no AWS load balancer has the DNS name %s of %s/%s: is the cluster's AWS region right (--region)?", host, svc.Namespace, svc.Name)
	}
	lb.ByLoadBalancerController = RequestedLB(svc) == LBExternal
	return lb, nil
}

func setStatus(res *Result, status string) {
	for i := range res.Actions {
		res.Actions[i].Status = status
	}
}

func hostname(svc *corev1.Service) string {
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.Hostname != "" {
			return ing.Hostname
		}
	}
	return ""
}

// applyWant is svc as the patch leaves it, for the diff.
func applyWant(svc *corev1.Service, w Want) *corev1.Service {
	out := svc.DeepCopy()
	policy := w.Policy
	out.Spec.IPFamilyPolicy = &policy
	out.Spec.IPFamilies = families(svc)
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	for k, v := range wantedAnnotations(svc) {
		out.Annotations[k] = v
	}
	return out
}

// diff lists the fields the gateway command changes, old -> new.
func diff(before, after *corev1.Service) string {
	var lines []string
	policy := func(p *corev1.IPFamilyPolicy) string {
		if p == nil {
			return "(unset)"
		}
		return string(*p)
	}
	if a, b := policy(before.Spec.IPFamilyPolicy), policy(after.Spec.IPFamilyPolicy); a != b {
		lines = append(lines, fmt.Sprintf("  spec.ipFamilyPolicy: %s -> %s", a, b))
	}
	fam := func(f []corev1.IPFamily) string {
		s := make([]string, len(f))
		for i, x := range f {
			s[i] = string(x)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	if a, b := fam(before.Spec.IPFamilies), fam(after.Spec.IPFamilies); a != b {
		lines = append(lines, fmt.Sprintf("  spec.ipFamilies: %s -> %s", a, b))
	}
	keys := make([]string, 0, len(after.Annotations))
	for k := range after.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		old, ok := before.Annotations[k]
		if !ok {
			old = "(none)"
		}
		if old != after.Annotations[k] {
			lines = append(lines, fmt.Sprintf("  metadata.annotations[%s]: %s -> %s", k, old, after.Annotations[k]))
		}
	}
	return strings.Join(lines, "\n")
}

// explainPatch turns the apiserver's refusal of a dual-stack Service on a
// single-stack cluster into the step that is missing.
func explainPatch(ref string, err error, command string) error {
	if apierrors.IsInvalid(err) && strings.Contains(err.Error(), "not configured for dual-stack") {
		return fmt.Errorf("the cluster refused a dual-stack %s: its service network is single-stack; convert the cluster network first (`%s network`), then re-run: %w", ref, command, err)
	}
	return kube.Explain("patching service "+ref, err)
}

// recreate records both manifests, deletes svc, waits until it is gone
// and creates its dual-stack NLB twin; deleted says whether the delete
// happened. Once the delete is made the replacement is created even after
// Ctrl-C or a timeout, if the old Service goes within a grace period;
// otherwise the journal keeps both manifests for a re-run or rollback.
func (r *Runner) recreate(ctx context.Context, svc *corev1.Service, w Want, o Options) (deleted bool, err error) {
	ref := svc.Namespace + "/" + svc.Name
	fresh := Recreated(svc, w)
	// A server-side dry run of the create first: a single-stack cluster or
	// a bad field fails here, before anything is deleted.
	probe := fresh.DeepCopy()
	probe.Name = ""
	probe.GenerateName = svc.Name + "-dryrun-"
	for i := range probe.Spec.Ports {
		probe.Spec.Ports[i].NodePort = 0 // taken by the live Service until it is deleted
	}
	probe.Spec.HealthCheckNodePort = 0
	if _, err := r.Kube.CoreV1().Services(svc.Namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		return false, explainPatch(ref, err, o.Command)
	}
	e, err := recreateEntry(svc, fresh)
	if err != nil {
		return false, err
	}
	if err := r.Journal.PutAll(ctx, []journal.Entry{e}); err != nil {
		return false, fmt.Errorf("recording %s before deleting it (nothing was changed): %w", ref, err)
	}
	uid := svc.UID
	if err := r.Kube.CoreV1().Services(svc.Namespace).Delete(ctx, svc.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) {
		if kube.Refused(err) {
			_ = setState(ctx, r.Journal, e, journal.Failed, nil)
			return false, kube.Explain("deleting service "+ref, err)
		}
		// No clear answer (a timeout, a 5xx, a lost connection): the delete
		// may have landed. If it did, go on as if it had answered; if that
		// cannot be told, the entry stays pending and a re-run finishes the
		// re-creation or finds the Service never deleted.
		cur, gerr := r.Kube.CoreV1().Services(svc.Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
		landed := apierrors.IsNotFound(gerr) || gerr == nil && (cur.UID != uid || cur.DeletionTimestamp != nil)
		if !landed {
			r.showManifest(e)
			return true, fmt.Errorf("deleting service %s: %w; whether it was deleted is not known: it is recorded in the journal, and running `%s gateway --recreate` (or upgrade) again finishes the re-creation or leaves the Service as it is", ref, err, o.Command)
		}
	}
	r.Progress.Start("waiting for " + ref + " to be deleted (its load balancer goes first)")
	if err := waitGoneAfterDelete(ctx, r.Kube, svc.Namespace, svc.Name, o.Timeout, 30*time.Second); err != nil {
		r.Progress.Done("")
		r.showManifest(e)
		return true, errors.New(stuckMessage(ctx, r.Kube, svc.Namespace, svc.Name, o.Command, err))
	}
	if _, err := finishRecreation(ctx, r.Kube, r.Journal, e); err != nil {
		r.Progress.Done("")
		r.showManifest(e)
		return true, fmt.Errorf("re-creating %s failed after it was deleted; its manifest is in the journal (and above): run `%s gateway --recreate` to try again, or `%s rollback` to put the original back: %w", ref, o.Command, o.Command, err)
	}
	r.Progress.Done("re-created " + ref)
	if err := ctx.Err(); err != nil {
		return true, fmt.Errorf("interrupted after re-creating %s; run `%s gateway` to finish making its NLB dualstack: %w", ref, o.Command, err)
	}
	return true, nil
}

// showManifest prints the replacement Service, so it is never only in the
// journal when something went wrong.
func (r *Runner) showManifest(e journal.Entry) {
	if r.Show != nil {
		r.Show("The Service to create (recorded in the journal entry " + e.ID + "):\n" + e.Undo["replacement"])
	}
}

// resume finishes a re-creation that an earlier run left half done (the old
// Service deleted, the new one not created); nil, nil when there is none.
func (r *Runner) resume(ctx context.Context, o Options, want Want) (*Result, error) {
	e, cur, err := r.interrupted(ctx, o)
	if err != nil || e == nil {
		return nil, err
	}
	ns, name := e.Undo["namespace"], e.Undo["name"]
	ref := ns + "/" + name
	switch {
	case cur != nil && string(cur.UID) != e.Undo["uid"]:
		// Created since (by the last run, its answer lost, or by hand).
		_ = setState(ctx, r.Journal, *e, journal.Done, map[string]string{"replacementUID": string(cur.UID)})
		return nil, nil
	case cur != nil && cur.DeletionTimestamp == nil:
		// The delete never happened: nothing to finish.
		_ = setState(ctx, r.Journal, *e, journal.Failed, nil)
		return nil, nil
	}
	fmt.Fprintf(r.progressOut(), "Finishing the re-creation of %s that an earlier run left half done (recorded in the journal).\n", ref)
	res := &Result{Service: ref, PreviousHostname: e.Undo["previousHostname"],
		Actions: []Action{{Kind: "recreate-service", Target: ref, Detail: "finish an interrupted re-creation from the journal", Status: "planned"}}}
	if cur != nil {
		r.Progress.Start("waiting for " + ref + " to be deleted (its load balancer goes first)")
		if werr := waitGoneAfterDelete(ctx, r.Kube, ns, name, o.Timeout, 30*time.Second); werr != nil {
			r.Progress.Done("")
			r.showManifest(*e)
			return res, errors.New(stuckMessage(ctx, r.Kube, ns, name, o.Command, werr))
		}
		r.Progress.Done("")
	}
	created, err := finishRecreation(ctx, r.Kube, r.Journal, *e)
	if err != nil {
		r.showManifest(*e)
		return res, fmt.Errorf("re-creating %s from the journal: %w", ref, err)
	}
	res.Actions[0].Status = "applied"
	res.Changed = true
	return r.finishLB(ctx, o, want, created, nil, res, true, false)
}

// interrupted is the re-creation an earlier run left pending in the
// journal, if any, and its Service as it is now (nil when gone).
func (r *Runner) interrupted(ctx context.Context, o Options) (*journal.Entry, *corev1.Service, error) {
	if r.Journal == nil {
		return nil, nil, nil
	}
	e, err := pendingRecreation(ctx, r.Journal, o.ServiceRef)
	if err != nil || e == nil {
		return nil, nil, err
	}
	ref := e.Undo["namespace"] + "/" + e.Undo["name"]
	cur, err := r.Kube.CoreV1().Services(e.Undo["namespace"]).Get(ctx, e.Undo["name"], metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return e, nil, nil
	case err != nil:
		return nil, nil, kube.Explain("reading service "+ref, err)
	}
	return e, cur, nil
}

// planResume is resume's plan, read-only: an interrupted re-creation whose
// old Service is gone (or going) is planned as finished from the journal,
// which a dry run's lookup by label could not otherwise find.
func (r *Runner) planResume(ctx context.Context, o Options) (*Result, error) {
	e, cur, err := r.interrupted(ctx, o)
	if err != nil || e == nil {
		return nil, err
	}
	ref := e.Undo["namespace"] + "/" + e.Undo["name"]
	switch {
	case cur != nil && (string(cur.UID) != e.Undo["uid"] || cur.DeletionTimestamp == nil):
		return nil, nil // created since, or never deleted: planned as usual
	}
	return &Result{Service: ref, PreviousHostname: e.Undo["previousHostname"],
		Actions: []Action{{Kind: "recreate-service", Target: ref, Status: "planned",
			Detail: "finish the re-creation an earlier run left half done: create the replacement recorded in the journal"}}}, nil
}

func (r *Runner) progressOut() io.Writer {
	if r.Log != nil {
		return r.Log
	}
	return io.Discard
}

func waitGone(ctx context.Context, kc kubernetes.Interface, ns, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Without a finalizer the delete is immediate: no watch needed.
	if _, err := kc.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return nil
	}
	err := kube.WaitAll(ctx, serviceLW(kc, ns, name), &corev1.Service{}, timeout, func(objs map[string]runtime.Object) (bool, error) {
		return len(objs) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for service %s/%s to be deleted: %w", ns, name, err)
	}
	return nil
}

func serviceLW(kc kubernetes.Interface, ns, name string) *cache.ListWatch {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	return &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return kc.CoreV1().Services(ns).List(context.Background(), o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return kc.CoreV1().Services(ns).Watch(context.Background(), o)
		},
	}
}

// waitHostname waits until the Service's status has a hostname other than old.
func (r *Runner) waitHostname(ctx context.Context, ns, name, old string, timeout time.Duration) (string, error) {
	r.Progress.Start(fmt.Sprintf("waiting for the load balancer of %s/%s", ns, name))
	host, err := untilHostname(ctx, r.Kube, ns, name, old, timeout)
	if err != nil {
		r.Progress.Done("")
		return "", err
	}
	r.Progress.Done("load balancer hostname: " + host)
	return host, nil
}

// untilHostname watches the Service until its status has a load balancer
// hostname other than old, and returns it.
func untilHostname(ctx context.Context, kc kubernetes.Interface, ns, name, old string, timeout time.Duration) (string, error) {
	var host string
	err := kube.WaitAll(ctx, serviceLW(kc, ns, name), &corev1.Service{}, timeout, func(objs map[string]runtime.Object) (bool, error) {
		for _, o := range objs {
			// The name too: the field selector is the server's to apply, and a fake may not.
			if svc, ok := o.(*corev1.Service); ok && svc.Name == name {
				if h := hostname(svc); h != "" && h != old {
					host = h
					return true, nil
				}
			}
		}
		return false, nil
	})
	var timedOut *kube.TimeoutError
	if err != nil && !errors.As(err, &timedOut) && !errors.Is(err, context.Canceled) {
		return "", fmt.Errorf("watching service %s/%s for its load balancer: %w", ns, name, err)
	}
	if err != nil {
		return "", fmt.Errorf("no load balancer hostname on %s/%s within %s (check its events: kubectl describe service -n %s %s): %w", ns, name, timeout, ns, name, err)
	}
	return host, nil
}

// waitLB waits until the AWS Load Balancer Controller made the NLB dualstack.
func (r *Runner) waitLB(ctx context.Context, res *Result, timeout time.Duration) error {
	r.Progress.Start("waiting for the AWS Load Balancer Controller to make " + res.LoadBalancer.Name + " dualstack")
	deadline := time.Now().Add(timeout)
	for {
		lb, err := r.AWS.ByHostname(ctx, res.Hostname)
		if err != nil {
			r.Progress.Done("")
			return err
		}
		if lb != nil && lb.IPAddressType == "dualstack" {
			res.LoadBalancer = lb
			r.Progress.Done(lb.Name + " is dualstack")
			return nil
		}
		if time.Now().After(deadline) {
			r.Progress.Done("")
			return fmt.Errorf("the AWS Load Balancer Controller did not make %s dualstack within %s", res.LoadBalancer.Name, timeout)
		}
		select {
		case <-ctx.Done():
			r.Progress.Done("")
			return ctx.Err()
		case <-time.After(5 * time.Second): // AWS has no watch; poll gently
		}
	}
}

// waitDNS waits until the hostname resolves to addresses of both families.
func (r *Runner) waitDNS(ctx context.Context, o Options, res *Result) error {
	if res.Hostname == "" {
		return nil
	}
	r.Progress.Start(fmt.Sprintf("waiting for %s to resolve A and AAAA", res.Hostname))
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	delay := 250 * time.Millisecond
	for {
		v4, err4 := r.Resolver.LookupIP(ctx, "ip4", res.Hostname)
		v6, err6 := r.Resolver.LookupIP(ctx, "ip6", res.Hostname)
		res.IPv4, res.IPv6 = ipStrings(v4), ipStrings(v6)
		if len(v4) > 0 && len(v6) > 0 {
			r.Progress.Done(fmt.Sprintf("%s resolves to %s and %s", res.Hostname, strings.Join(res.IPv4, ", "), strings.Join(res.IPv6, ", ")))
			return nil
		}
		r.Progress.Update(fmt.Sprintf("waiting for %s: %d A, %d AAAA records", res.Hostname, len(v4), len(v6)))
		select {
		case <-ctx.Done():
			r.Progress.Done("")
			missing := "AAAA"
			if len(v4) == 0 {
				missing = "A"
			}
			return fmt.Errorf("%s has no %s record after %s (last errors: A %v, AAAA %v); DNS may still be catching up: re-run `%s gateway` to check again",
				res.Hostname, missing, o.Timeout, err4, err6, o.Command)
		case <-time.After(delay):
		}
		if delay < 5*time.Second {
			delay *= 2
		}
	}
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}
