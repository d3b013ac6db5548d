package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	dnsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/dns"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// A migration (behind a Classic ELB) puts a dual-stack NLB Service next to
// the Classic one, moves the names to it, and only then retires the old
// one: no downtime, unlike a re-creation.
const (
	// MigratedSuffix names the new Service: <name>-dualstack.
	MigratedSuffix = "-dualstack"
	// LabelMigratedFrom on the new Service names the one it replaces.
	LabelMigratedFrom = "dualstack.kubectl.io/migrated-from"
	// ExternalDNSPrefix is the prefix of external-dns's annotations; they
	// move to the new Service with the names.
	ExternalDNSPrefix = "external-dns.alpha.kubernetes.io/"

	OpMigrateService  = "migrate-service"   // the new Service created
	OpMoveExternalDNS = "move-external-dns" // external-dns annotations moved
	OpRetireService   = "retire-service"    // the old Service deleted
)

// DefaultRetireAfter is how long the old Service keeps serving after the
// names moved when no TTL is known: Route 53 answers alias records to a
// load balancer with a 60-second TTL.
const DefaultRetireAfter = 60 * time.Second

// MigratedName is the name of svc's dual-stack twin.
func MigratedName(name string) string { return name + MigratedSuffix }

// Migrated is the dual-stack NLB Service to create next to svc: as
// Recreated (same selector, ports, labels, annotations plus the NLB ones),
// but named <name>-dualstack, without svc's nodePorts (svc keeps them) and
// without external-dns's annotations (they move once the new load balancer
// answers), labelled with where it comes from.
func Migrated(svc *corev1.Service, w Want) *corev1.Service {
	out := Recreated(svc, w)
	out.Name = MigratedName(svc.Name)
	out.Labels = maps.Clone(svc.Labels)
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	out.Labels[LabelMigratedFrom] = svc.Name
	maps.DeleteFunc(out.Annotations, func(k, _ string) bool { return strings.HasPrefix(k, ExternalDNSPrefix) })
	out.Spec.Ports = slices.Clone(svc.Spec.Ports)
	for i := range out.Spec.Ports {
		out.Spec.Ports[i].NodePort = 0
	}
	out.Spec.HealthCheckNodePort = 0
	return out
}

// ExternalDNSAnnotations are svc's external-dns annotations.
func ExternalDNSAnnotations(svc *corev1.Service) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Annotations {
		if strings.HasPrefix(k, ExternalDNSPrefix) {
			out[k] = v
		}
	}
	return out
}

// annotationPatch is a merge patch setting (or, with remove, deleting) the
// annotations.
func annotationPatch(a map[string]string, remove bool) []byte {
	m := map[string]any{}
	for k, v := range a {
		if remove {
			m[k] = nil
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": m}})
	return b
}

// Names moves the DNS names from one load balancer to another. A Route 53
// implementation is in pkg/convert.
type Names interface {
	// Prepare finds where the records are (the hosted zones), before any
	// change: bad input (a --hosted-zone that is not there) is refused here.
	Prepare(ctx context.Context) error
	// PlanMoves reads the records that lead to from; text describes the
	// moves, or, when no zone the plugin can reach holds such a record
	// (plan has no moves), what to change by hand.
	PlanMoves(ctx context.Context, from string, to *LoadBalancer, resource string) (plan *dnsx.MovePlan, text string, err error)
	// ApplyMoves makes the moves planned last, journalled.
	ApplyMoves(ctx context.Context) error
}

// MigrateOptions of a migration.
type MigrateOptions struct {
	Options
	// RetireOld deletes the old Service once RetireAfter has passed since
	// the names moved (0: at once; the command's default is
	// DefaultRetireAfter).
	RetireOld   bool
	RetireAfter time.Duration
}

// Migrate moves the gateway from its Classic ELB to a dual-stack NLB
// without downtime: (1) a second Service <name>-dualstack, its NLB made
// dualstack and its name answering A and AAAA; (2) the names moved (Route
// 53 alias records with their AAAA twins through Names, or printed when
// there are none; external-dns annotations); (3) with RetireOld, the old
// Service deleted after RetireAfter. Every step is journalled first.
func (r *Runner) Migrate(ctx context.Context, o MigrateOptions) (*Result, error) {
	want := Want{Policy: o.Policy}
	svc, err := Find(ctx, r.Kube, o.ServiceRef, o.Command+" gateway")
	if err != nil {
		return nil, err
	}
	if from := svc.Labels[LabelMigratedFrom]; from != "" {
		// Found the migration's Service (Find prefers it): go on from the
		// old one while it is there.
		old, err := r.Kube.CoreV1().Services(svc.Namespace).Get(ctx, from, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			ref := svc.Namespace + "/" + from
			return &Result{Service: ref, Hostname: hostname(svc), Actions: []Action{{Kind: OpMigrateService, Target: svc.Namespace + "/" + svc.Name,
				Status: "unchanged", Detail: "migrated earlier; " + ref + " is retired"}}}, nil
		case err != nil:
			return nil, kube.Explain("reading service "+svc.Namespace+"/"+from, err)
		}
		svc = old
	}
	ref := svc.Namespace + "/" + svc.Name
	res := &Result{Service: ref, PreviousHostname: hostname(svc)}
	if res.PreviousHostname == "" {
		return nil, cli.Usagef("%s has no load balancer hostname: --migrate moves a gateway off a Classic ELB; run `%s gateway` instead", ref, o.Command)
	}
	lb, err := r.lookup(ctx, svc, res.PreviousHostname)
	if err != nil {
		return nil, err
	}
	if lb.Type != "classic" {
		return nil, cli.Usagef("%s is behind %s load balancer %s, not a Classic ELB: nothing to migrate; run `%s gateway` to make it dual-stack in place", ref, lbKindName(lb.Type), lb.Name, o.Command)
	}
	if len(lb.SubnetsWithoutIPv6) > 0 {
		if o.DryRun == cli.DryRunNone {
			return nil, fmt.Errorf("the NLB of the new Service goes into the subnets of %s, and %s have no IPv6 yet; run `%s aws apply` first",
				lb.Name, strings.Join(lb.SubnetsWithoutIPv6, ", "), o.Command)
		}
		// A plan: the aws phase of the same upgrade gives them IPv6.
		res.NeedsIPv6Subnets = lb.SubnetsWithoutIPv6
	}
	fresh := Migrated(svc, want)
	newRef := fresh.Namespace + "/" + fresh.Name
	existing, err := r.Kube.CoreV1().Services(fresh.Namespace).Get(ctx, fresh.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		existing = nil
	case err != nil:
		return nil, kube.Explain("reading service "+newRef, err)
	case existing.Labels[LabelMigratedFrom] != svc.Name:
		return nil, cli.Usagef("service %s exists and is not a migration of %s (no label %s=%s): rename or delete it first", newRef, ref, LabelMigratedFrom, svc.Name)
	}
	dns := ExternalDNSAnnotations(svc)
	if r.Names != nil {
		if err := r.Names.Prepare(ctx); err != nil {
			return nil, err
		}
	}

	// The plan.
	plan := []string{fmt.Sprintf("Service %s: create next to %s (Classic ELB %s), same selector and ports, behind a %s NLB:", newRef, ref, lb.Name, o.Policy),
		diff(svc, fresh)}
	res.Actions = append(res.Actions, Action{Kind: OpMigrateService, Target: newRef, Status: "planned", Detail: "create a dual-stack NLB Service next to " + ref})
	if len(res.NeedsIPv6Subnets) > 0 {
		plan = append(plan, fmt.Sprintf("  (its subnets %s get IPv6 first: `%s aws apply`)", strings.Join(res.NeedsIPv6Subnets, ", "), o.Command))
	}
	if existing != nil {
		res.Actions[0].Status, res.Actions[0].Detail = "unchanged", "created by an earlier run"
		plan[0] = fmt.Sprintf("Service %s: created by an earlier run; its NLB is made dualstack if it is not", newRef)
		plan = plan[:1]
	}
	plan = append(plan, "Then the names move from "+res.PreviousHostname+" to the new NLB (once it answers A and AAAA):")
	if r.Names != nil {
		// The records are read once the new name is known; here only what they lead to.
		plan = append(plan, "  every Route 53 alias record to "+res.PreviousHostname+", with its AAAA twin")
	} else {
		plan = append(plan, "  no Route 53 access: the records to change are printed")
	}
	if len(dns) > 0 {
		keys := slices.Sorted(maps.Keys(dns))
		plan = append(plan, fmt.Sprintf("  external-dns annotations %s: from %s to %s", strings.Join(keys, ", "), ref, newRef))
		res.Actions = append(res.Actions, Action{Kind: OpMoveExternalDNS, Target: ref + " -> " + newRef, Status: "planned", Detail: strings.Join(keys, ", ")})
	}
	if o.RetireOld {
		plan = append(plan, fmt.Sprintf("Then, %s after the names moved, Service %s is deleted (and its Classic ELB with it)", o.RetireAfter, ref))
		res.Actions = append(res.Actions, Action{Kind: OpRetireService, Target: ref, Status: "planned", Detail: "after " + o.RetireAfter.String()})
	} else {
		plan = append(plan, fmt.Sprintf("Both keep serving; `%s gateway --retire` deletes %s later", o.Command, ref))
	}
	r.Show(strings.Join(plan, "\n"))
	if o.DryRun == cli.DryRunClient {
		return res, nil
	}
	if err := r.Confirm(ctx); err != nil {
		return res, err
	}
	if o.DryRun == cli.DryRunServer {
		_, err := r.Kube.CoreV1().Services(fresh.Namespace).Create(ctx, fresh, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		setStatus(res, "dry-run")
		return res, explainPatch(newRef, err, o.Command)
	}

	// 1. The new Service, its NLB dualstack, its name answering both families.
	if existing == nil {
		created, err := r.createMigrated(ctx, svc, fresh, o)
		if err != nil {
			return res, err
		}
		existing = created
		res.Actions[0].Status = "applied"
		res.Changed = true
	}
	nres := &Result{Service: newRef}
	if _, err := r.finishLB(ctx, o.Options, want, existing, nil, nres, true, false); err != nil {
		return res, fmt.Errorf("%s is created and %s still serves; its load balancer is not ready: %w; re-run `%s gateway --migrate` to go on, or `%s gateway --revert` to delete it",
			newRef, ref, err, o.Command, o.Command)
	}
	res.Hostname, res.LoadBalancer, res.IPv4, res.IPv6 = nres.Hostname, nres.LoadBalancer, nres.IPv4, nres.IPv6
	res.Actions = append(res.Actions, nres.Actions...)

	// A request per family through the new load balancer before any name
	// leads to it.
	port := httpPort(existing)
	if err := r.reachBoth(ctx, "the new load balancer "+res.Hostname, res.Hostname, res.Hostname, port, o.Timeout); err != nil {
		return res, fmt.Errorf("%s is created and %s still serves the names: %w; re-run `%s gateway --migrate` to go on, or `%s gateway --revert` to delete it",
			newRef, ref, err, o.Command, o.Command)
	}

	// 2. The names.
	moved := false // by this run, in Route 53: only then may the old Service go without asking
	var movedAt time.Time
	if r.Names != nil {
		p, text, err := r.Names.PlanMoves(ctx, res.PreviousHostname, res.LoadBalancer, "service/"+ref)
		if err != nil {
			return res, fmt.Errorf("both %s and %s serve; reading the records to move: %w; re-run `%s gateway --migrate` to go on", ref, newRef, err, o.Command)
		}
		if p != nil && len(p.Moves) > 0 {
			r.Show(fmt.Sprintf("Moving %d record(s) to %s:\n%s", len(p.Moves), res.Hostname, text))
			if err := r.Names.ApplyMoves(ctx); err != nil {
				return res, fmt.Errorf("both %s and %s serve; moving the records: %w; re-run `%s gateway --migrate` to go on, or `%s gateway --revert` to move them back", ref, newRef, err, o.Command, o.Command)
			}
			moved, movedAt = true, time.Now()
			res.Moves, res.NamesMovedAt = p.Moves, &movedAt
			res.Actions = append(res.Actions, Action{Kind: "move-records", Target: res.PreviousHostname + " -> " + res.Hostname, Detail: fmt.Sprintf("%d alias record(s)", len(p.Moves)), Status: "applied"})
		} else if earlier := r.movedEarlier(ctx, res.Hostname); len(earlier) > 0 {
			// A re-run after the names moved: nothing is left at the old name.
			r.Show(fmt.Sprintf("%d record(s) were moved to %s by an earlier run (the journal's dns-move layer); nothing more leads to %s", len(earlier), res.Hostname, res.PreviousHostname))
			moved, movedAt = true, time.Now()
			res.Moves = earlier
			res.Actions = append(res.Actions, Action{Kind: "move-records", Target: res.PreviousHostname + " -> " + res.Hostname, Detail: fmt.Sprintf("%d alias record(s), moved by an earlier run", len(earlier)), Status: "unchanged"})
		} else if text != "" {
			r.Show(text)
		}
	}
	if r.Names == nil {
		r.Show(dnsx.ManualMoves(res.PreviousHostname, res.Hostname))
	}
	if len(dns) > 0 {
		if err := r.moveExternalDNS(ctx, svc, existing, dns); err != nil {
			return res, fmt.Errorf("both %s and %s serve; moving the external-dns annotations: %w; re-run `%s gateway --migrate` to go on", ref, newRef, err, o.Command)
		}
		setKind(res, OpMoveExternalDNS, "applied")
	}

	// 3. The old Service.
	if !o.RetireOld {
		return res, nil
	}
	if !moved {
		// The records to change were printed: they are the user's to move,
		// and the old load balancer must serve until they are.
		setKind(res, OpRetireService, "skipped")
		fmt.Fprintf(r.progressOut(), "Not retiring %s: no Route 53 record was moved by this run; change the records printed above, then run `%s gateway --retire`.\n", ref, o.Command)
		return res, nil
	}
	// The names answer the new path: AAAA (the Classic ELB had none), and a
	// request per family through each.
	for _, name := range movedNames(res.Moves) {
		if err := r.waitName(ctx, name, res.Hostname, port, o.Timeout); err != nil {
			return res, fmt.Errorf("both %s and %s serve, and %s was not retired: %w; `%s gateway --retire` retires it once the name answers, `%s gateway --revert` moves the names back",
				ref, newRef, ref, err, o.Command, o.Command)
		}
	}
	// Resolvers that asked before the move keep the old answer for its TTL.
	if wait := o.RetireAfter - time.Since(movedAt); wait > 0 {
		r.Progress.Start(fmt.Sprintf("waiting %s (the old answers' TTL) before retiring %s", wait.Round(time.Second), ref))
		select {
		case <-ctx.Done():
			r.Progress.Done("")
			return res, fmt.Errorf("interrupted before retiring %s; both serve: run `%s gateway --retire` later: %w", ref, o.Command, ctx.Err())
		case <-time.After(wait):
		}
		r.Progress.Done("")
	}
	if err := r.retire(ctx, svc, o.Options); err != nil {
		return res, err
	}
	setKind(res, OpRetireService, "applied")
	return res, nil
}

func setKind(res *Result, kind, status string) {
	for i := range res.Actions {
		if res.Actions[i].Kind == kind {
			res.Actions[i].Status = status
		}
	}
}

func lbKindName(t string) string {
	switch t {
	case "network":
		return "network"
	case "application":
		return "application"
	}
	return "a " + t
}

// createMigrated records the new Service, then creates it.
func (r *Runner) createMigrated(ctx context.Context, old, fresh *corev1.Service, o MigrateOptions) (*corev1.Service, error) {
	newRef := fresh.Namespace + "/" + fresh.Name
	m, err := Manifest(fresh)
	if err != nil {
		return nil, err
	}
	e := journal.Entry{ID: entryID(OpMigrateService, fresh), Layer: Layer, Operation: OpMigrateService,
		Resource: "service/" + newRef, State: journal.Pending,
		Undo: map[string]string{"namespace": fresh.Namespace, "name": fresh.Name, "oldName": old.Name, "oldUID": string(old.UID),
			"previousHostname": hostname(old), "manifest": m}}
	if err := r.Journal.PutAll(ctx, []journal.Entry{e}); err != nil {
		return nil, fmt.Errorf("recording %s before creating it (nothing was changed): %w", newRef, err)
	}
	created, err := r.Kube.CoreV1().Services(fresh.Namespace).Create(ctx, fresh, metav1.CreateOptions{})
	if err != nil {
		if kube.Refused(err) {
			_ = setState(ctx, r.Journal, e, journal.Failed, nil)
		}
		return nil, explainPatch(newRef, err, o.Command)
	}
	if err := setState(ctx, r.Journal, e, journal.Done, map[string]string{"uid": string(created.UID)}); err != nil {
		return created, fmt.Errorf("created %s but could not record it (rollback still finds it as pending): %w", newRef, err)
	}
	return created, nil
}

// moveExternalDNS puts the annotations on the new Service, then takes them
// off the old one (so external-dns never sees neither).
func (r *Runner) moveExternalDNS(ctx context.Context, old, fresh *corev1.Service, a map[string]string) error {
	raw, _ := json.Marshal(a)
	e := journal.Entry{ID: entryID(OpMoveExternalDNS, old), Layer: Layer, Operation: OpMoveExternalDNS,
		Resource: "service/" + old.Namespace + "/" + old.Name, State: journal.Pending,
		Undo: map[string]string{"namespace": old.Namespace, "name": old.Name, "uid": string(old.UID), "newName": fresh.Name, "annotations": string(raw)}}
	if err := r.Journal.PutAll(ctx, []journal.Entry{e}); err != nil {
		return err
	}
	svcs := r.Kube.CoreV1().Services(old.Namespace)
	if _, err := svcs.Patch(ctx, fresh.Name, types.MergePatchType, annotationPatch(a, false), metav1.PatchOptions{}); err != nil {
		return kube.Explain("annotating service "+old.Namespace+"/"+fresh.Name, err)
	}
	if _, err := svcs.Patch(ctx, old.Name, types.MergePatchType, annotationPatch(a, true), metav1.PatchOptions{}); err != nil {
		return kube.Explain("removing the external-dns annotations of service "+old.Namespace+"/"+old.Name, err)
	}
	return setState(ctx, r.Journal, e, journal.Done, nil)
}

// Retire deletes the Service a migration left serving next to its
// dual-stack twin (gateway --retire), once the twin has a load balancer.
// Which migration: the journal's latest done one (of o.ServiceRef, the old
// Service, when given).
func (r *Runner) Retire(ctx context.Context, o Options) (*Result, error) {
	jr, err := r.Journal.Load(ctx)
	if err != nil {
		return nil, err
	}
	var e *journal.Entry
	for _, x := range slices.Backward(jr.Layer(Layer)) {
		if x.Operation == OpMigrateService && x.State == journal.Done &&
			(o.ServiceRef == "" || o.ServiceRef == x.Undo["namespace"]+"/"+x.Undo["oldName"] || o.ServiceRef == x.Undo["namespace"]+"/"+x.Undo["name"]) {
			e = &x
			break
		}
	}
	if e == nil {
		return nil, cli.Usagef("the journal records no gateway migration to retire: run `%s gateway --migrate` first", o.Command)
	}
	ns, oldName, newName := e.Undo["namespace"], e.Undo["oldName"], e.Undo["name"]
	ref := ns + "/" + oldName
	res := &Result{Service: ns + "/" + newName, PreviousHostname: e.Undo["previousHostname"]}
	fresh, err := r.Kube.CoreV1().Services(ns).Get(ctx, newName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the migrated service %s/%s is not there to take over (%w): %s is not retired", ns, newName, kube.Explain("reading service "+ns+"/"+newName, err), ref)
	}
	if res.Hostname = hostname(fresh); res.Hostname == "" {
		return nil, fmt.Errorf("the migrated service %s/%s has no load balancer yet: %s is not retired; run `%s gateway --migrate` to finish the migration", ns, newName, ref, o.Command)
	}
	old, err := r.Kube.CoreV1().Services(ns).Get(ctx, oldName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		res.Actions = []Action{{Kind: OpRetireService, Target: ref, Status: "unchanged", Detail: "already deleted"}}
		return res, nil
	}
	if err != nil {
		return nil, kube.Explain("reading service "+ref, err)
	}
	if string(old.UID) != e.Undo["oldUID"] {
		return nil, fmt.Errorf("service %s is not the one the migration started from (re-created since): left alone", ref)
	}
	res.Actions = []Action{{Kind: OpRetireService, Target: ref, Status: "planned", Detail: "delete it and its Classic ELB " + hostname(old)}}
	r.Show(fmt.Sprintf("Service %s: delete (and its Classic ELB %s); %s/%s serves at %s", ref, hostname(old), ns, newName, res.Hostname))
	if o.DryRun == cli.DryRunClient {
		return res, nil
	}
	if err := r.Confirm(ctx); err != nil {
		return res, err
	}
	if o.DryRun == cli.DryRunServer {
		err := r.Kube.CoreV1().Services(ns).Delete(ctx, oldName, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		setStatus(res, "dry-run")
		return res, kube.Explain("deleting service "+ref+" (server dry run)", err)
	}
	if err := r.retire(ctx, old, o); err != nil {
		return res, err
	}
	setStatus(res, "applied")
	res.Changed = true
	return res, nil
}

// retire records the old Service's manifest and deletes it.
func (r *Runner) retire(ctx context.Context, old *corev1.Service, o Options) error {
	ref := old.Namespace + "/" + old.Name
	m, err := Manifest(old)
	if err != nil {
		return err
	}
	e := journal.Entry{ID: entryID(OpRetireService, old), Layer: Layer, Operation: OpRetireService, Resource: "service/" + ref, State: journal.Pending,
		Undo: map[string]string{"namespace": old.Namespace, "name": old.Name, "uid": string(old.UID), "original": m, "previousHostname": hostname(old)}}
	if err := r.Journal.PutAll(ctx, []journal.Entry{e}); err != nil {
		return fmt.Errorf("recording %s before deleting it (nothing was deleted): %w", ref, err)
	}
	uid := old.UID
	if err := r.Kube.CoreV1().Services(old.Namespace).Delete(ctx, old.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) {
		if kube.Refused(err) {
			_ = setState(ctx, r.Journal, e, journal.Failed, nil)
		}
		return fmt.Errorf("the names moved, but retiring %s failed: %w; both still serve: run `%s gateway --retire` to try again", ref, kube.Explain("deleting service "+ref, err), o.Command)
	}
	if err := setState(ctx, r.Journal, e, journal.Done, nil); err != nil {
		return err
	}
	// The cloud controller's finalizer holds the Service until its ELB is deleted.
	r.Progress.Start(fmt.Sprintf("waiting for %s and its Classic ELB to be deleted", ref))
	err = waitGoneAfterDelete(ctx, r.Kube, old.Namespace, old.Name, o.Timeout, 30*time.Second)
	r.Progress.Done("")
	if err != nil {
		return fmt.Errorf("%s is being deleted but still there after %s (%v): its load balancer's finalizer holds it; `kubectl -n %s get svc %s` shows it", ref, o.Timeout, err, old.Namespace, old.Name)
	}
	return nil
}

// undoMigration takes back one migration entry (the names are moved back
// by the dns-move layer's rollback first).
func undoMigration(ctx context.Context, kc kubernetes.Interface, e journal.Entry, timeout time.Duration) (string, error) {
	ns, name := e.Undo["namespace"], e.Undo["name"]
	svcs := kc.CoreV1().Services(ns)
	switch e.Operation {
	case OpMigrateService:
		cur, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if uid := e.Undo["uid"]; uid != "" && string(cur.UID) != uid || cur.Labels[LabelMigratedFrom] != e.Undo["oldName"] {
			return fmt.Sprintf("service %s/%s is not the one the migration created; left alone", ns, name), nil
		}
		u := cur.UID
		if err := svcs.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &u}}); err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("deleting the migrated service %s/%s: %w", ns, name, err)
		}
		// Its NLB goes first (the cloud controller's finalizer holds it).
		if err := waitGoneAfterDelete(ctx, kc, ns, name, timeout, 30*time.Second); err != nil {
			return "", fmt.Errorf("service %s/%s is still being deleted (%v); re-run the rollback once it is gone", ns, name, err)
		}
		return "", nil
	case OpMoveExternalDNS:
		var a map[string]string
		if err := json.Unmarshal([]byte(e.Undo["annotations"]), &a); err != nil {
			return "", fmt.Errorf("the journal's external-dns annotations of %s/%s are unreadable: %w", ns, name, err)
		}
		if _, err := svcs.Patch(ctx, name, types.MergePatchType, annotationPatch(a, false), metav1.PatchOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Sprintf("service %s/%s is gone; its external-dns annotations were %s", ns, name, e.Undo["annotations"]), nil
			}
			return "", fmt.Errorf("putting the external-dns annotations back on %s/%s: %w", ns, name, err)
		}
		if _, err := svcs.Patch(ctx, e.Undo["newName"], types.MergePatchType, annotationPatch(a, true), metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("removing the external-dns annotations from %s/%s: %w", ns, e.Undo["newName"], err)
		}
		return "", nil
	}
	return "", fmt.Errorf("unknown gateway operation %q in the journal", e.Operation)
}

// recreateRetired creates a retired Service again from the manifest its
// entry recorded and waits for its new load balancer's hostname.
func recreateRetired(ctx context.Context, kc kubernetes.Interface, e journal.Entry, timeout time.Duration) (host, msg string, err error) {
	ns, name := e.Undo["namespace"], e.Undo["name"]
	svcs := kc.CoreV1().Services(ns)
	if cur, err := svcs.Get(ctx, name, metav1.GetOptions{}); err == nil {
		if h := hostname(cur); h != "" {
			return h, fmt.Sprintf("service %s/%s exists (at %s); nothing to put back", ns, name, h), nil
		}
		return "", fmt.Sprintf("service %s/%s exists; nothing to put back", ns, name), nil
	} else if !apierrors.IsNotFound(err) {
		return "", "", err
	}
	orig, err := FromManifest(e.Undo["original"])
	if err != nil {
		return "", "", err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := createService(cctx, kc, orig); err != nil {
		return "", "", fmt.Errorf("creating the retired service %s/%s again (its manifest is in the journal entry %s): %w", ns, name, e.ID, err)
	}
	host, err = untilHostname(ctx, kc, ns, name, "", timeout)
	if err != nil {
		return "", "", fmt.Errorf("created the retired service %s/%s again, but it has no load balancer yet (%w); re-run the rollback once it has one", ns, name, err)
	}
	return host, fmt.Sprintf("service %s/%s is created again behind a new Classic ELB %s (%s was deleted with it)", ns, name, host, e.Undo["previousHostname"]), nil
}

// RestoreRetired creates the Services a migration retired again (each gets
// a new Classic ELB) and records each one's new hostname, for
// Redirects: the moved records can only go back once the old gateway
// serves again. First step of a migration's rollback.
func RestoreRetired(ctx context.Context, kc kubernetes.Interface, j Journal, timeout time.Duration) ([]RollbackResult, error) {
	results, err := rollback(ctx, kc, j, timeout, func(e journal.Entry) bool { return e.Operation == OpRetireService })
	if err != nil {
		return results, fmt.Errorf("putting the retired gateway back: %w; nothing else was rolled back", err)
	}
	return results, nil
}

// Redirects maps each retired-then-restored Service's old load balancer
// name to its new one (dns.NormalizeDNSName form), for dns.RollbackMoves.
func Redirects(j *journal.Journal) map[string]string {
	out := map[string]string{}
	for _, e := range j.Layer(Layer) {
		if e.Operation == OpRetireService && e.State == journal.Undone && e.Undo["recreatedHostname"] != "" && e.Undo["previousHostname"] != "" {
			out[dnsx.NormalizeDNSName(e.Undo["previousHostname"])] = e.Undo["recreatedHostname"]
		}
	}
	return out
}

// RetiredWithoutRestore says whether a migration retired a Service that is
// not created again yet (its records would lead nowhere if moved back
// before RestoreRetired).
func RetiredWithoutRestore(j *journal.Journal) bool {
	for _, e := range j.Undoable(Layer) {
		if e.Operation == OpRetireService {
			return true
		}
	}
	return false
}

// httpPort is the gateway's http port: named http2 or http, else 80, else
// the first.
func httpPort(svc *corev1.Service) int32 {
	for _, p := range svc.Spec.Ports {
		if p.Name == "http2" || p.Name == "http" {
			return p.Port
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == 80 {
			return p.Port
		}
	}
	if len(svc.Spec.Ports) > 0 {
		return svc.Spec.Ports[0].Port
	}
	return 80
}

// reachBoth waits (up to timeout) for an answer over each family from
// addr:port with Host header host; what says where. Without Reach it
// checks nothing.
func (r *Runner) reachBoth(ctx context.Context, what, addr, host string, port int32, timeout time.Duration) error {
	if r.Reach == nil {
		return nil
	}
	for _, family := range []string{"IPv4", "IPv6"} {
		r.Progress.Start(fmt.Sprintf("waiting for an %s answer from %s", family, what))
		var last error
		err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
			last = r.Reach(ctx, family, addr, host, port)
			return last == nil, nil
		})
		r.Progress.Done("")
		if err != nil {
			if last == nil {
				last = err
			}
			return fmt.Errorf("no %s answer from %s within %s: %v", family, what, timeout, last)
		}
		fmt.Fprintf(r.progressOut(), "%s answered over %s\n", what, family)
	}
	return nil
}

// probeName is a name to resolve for a record name: a wildcard's label
// replaced by one of ours.
func probeName(name string) string {
	name = strings.TrimSuffix(name, ".")
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		return "kubectl-dualstack-check." + rest
	}
	return name
}

// movedNames are the names of the moved records, once each.
func movedNames(moves []dnsx.Move) []string {
	var out []string
	for _, m := range moves {
		if n := probeName(m.Name); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// unresolvableGrace is how long a moved name may fail to resolve from this
// machine before it counts as one only the VPC resolves (a private zone).
const unresolvableGrace = 10 * time.Second

// waitName waits until name answers AAAA (the old Classic ELB had none, so
// the record moved for this resolver) and a request per family through it
// is answered. A name this machine cannot resolve at all (a private zone)
// is noted and not waited for.
func (r *Runner) waitName(ctx context.Context, name, nlb string, port int32, timeout time.Duration) error {
	if r.Resolver == nil {
		return nil
	}
	r.Progress.Start(fmt.Sprintf("waiting for %s to answer AAAA (the moved record)", name))
	start := time.Now()
	var last error
	private := false
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		ips, err := r.Resolver.LookupIP(lctx, "ip6", name)
		switch {
		case err == nil && len(ips) > 0:
			return true, nil
		case err != nil && isNotFound(err) && time.Since(start) > unresolvableGrace:
			if _, err4 := r.Resolver.LookupIP(lctx, "ip4", name); err4 != nil && isNotFound(err4) {
				private = true
				return true, nil
			}
		}
		last = err
		if last == nil {
			last = fmt.Errorf("no AAAA record yet")
		}
		return false, nil
	})
	r.Progress.Done("")
	if private {
		fmt.Fprintf(r.progressOut(), "%s does not resolve from this machine (a private zone answers inside the VPC only): not checked from here\n", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s still answers no AAAA after %s (%v): is a resolver on the way caching the old answer?", name, timeout, last)
	}
	return r.reachBoth(ctx, name, name, name, port, timeout)
}

func isNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// movedEarlier are the record moves to host the journal holds as done.
func (r *Runner) movedEarlier(ctx context.Context, host string) []dnsx.Move {
	jr, err := r.Journal.Load(ctx)
	if err != nil {
		return nil
	}
	var out []dnsx.Move
	for _, e := range jr.Layer(dnsx.MoveLayer) {
		if e.State != journal.Done || dnsx.NormalizeDNSName(e.Undo["to"]) != dnsx.NormalizeDNSName(host) {
			continue
		}
		name, typ, _ := strings.Cut(e.Resource, " ")
		out = append(out, dnsx.Move{ID: e.ID, Operation: e.Operation, ZoneID: e.Undo["zoneId"], ZoneName: e.Undo["zoneName"], Name: name, Type: typ, To: e.Undo["to"]})
	}
	return out
}
