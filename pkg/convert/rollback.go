package convert

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/dns"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/mesh"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/nodes"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/policies"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/router"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/services"
)

// RollbackResult is what `rollback -o json|yaml` prints. Field names are stable.
type RollbackResult struct {
	// Outcome is rolled-back, nothing-to-do, dry-run, not-confirmed or failed.
	Outcome string          `json:"outcome"`
	Message string          `json:"message"`
	Journal string          `json:"journal"`
	Changes []RollbackEntry `json:"changes"`
}

// RollbackEntry is one recorded change to take back, and how it went.
type RollbackEntry struct {
	Layer     string `json:"layer"` // gateway, overlay, underlay
	Operation string `json:"operation"`
	Resource  string `json:"resource"`
	// Status is planned, undone, skipped, failed or not-run.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// Rollback takes back, newest layer first, what the journal recorded:
// OpenShift's router, the gateway Service, the other Services, the
// NetworkPolicies, Istio's settings, the network, the nodes' cloud config,
// then the AWS changes.
type Rollback struct {
	Clients *kube.Clients
	Journal *journal.Store
	Target  Target
	Timeout time.Duration
	// Tool is how the user calls this tool ("kubectl dualstack").
	Tool string
	// Log takes the layers' notes; Progress their progress lines.
	Log      io.Writer
	Progress *cli.Progress

	netEntry journal.Entry
	hasNet   bool
	hasNodes bool
	hasMesh  bool
	hasDNS   bool
	// hasMoves: a gateway migration moved alias records (dns-move layer).
	hasMoves bool
	// hasRetired: a gateway migration retired the old Service; it is
	// created again before the records move back to it.
	hasRetired bool
	// hasRouter and hasPolicies: the journal holds their changes.
	hasRouter, hasPolicies bool
	// kubeadm are the kubeadm ConfigMap edits the network phase made.
	kubeadm []journal.Entry
	// recreated are the gateway Services whose original rollback creates again.
	recreated [][2]string
	account   *Account
	vpc       string
}

// Plan lists what the journal says is to be undone; AWS is only contacted
// when the journal holds AWS changes.
func (r *Rollback) Plan(ctx context.Context) (*RollbackResult, error) {
	j, err := r.Journal.Load(ctx)
	if err != nil {
		return nil, kube.Explain("reading the journal", err)
	}
	res := &RollbackResult{Journal: r.Journal.Location(), Changes: []RollbackEntry{}}
	for _, e := range DNSUndoable(j) {
		r.hasDNS = true
		res.Changes = append(res.Changes, RollbackEntry{Layer: dns.Layer, Operation: "DeleteAAAA", Resource: e.Resource, Status: "planned",
			Message: "zone " + e.Undo["zoneName"]})
	}
	for _, e := range gateway.Undoable(j) {
		if e.Operation == gateway.OpRetireService {
			r.hasRetired = true
			res.Changes = append(res.Changes, RollbackEntry{Layer: gateway.Layer, Operation: e.Operation, Resource: e.Resource, Status: "planned",
				Message: "create it again first (a new Classic ELB); the moved records go back to that one"})
		}
	}
	for _, e := range j.Undoable(dns.MoveLayer) {
		r.hasMoves, r.hasDNS = true, true // hasDNS: Route 53 is needed
		res.Changes = append(res.Changes, RollbackEntry{Layer: dns.MoveLayer, Operation: "Undo" + e.Operation, Resource: e.Resource, Status: "planned",
			Message: "zone " + e.Undo["zoneName"] + ": back to the old gateway's load balancer"})
	}
	for _, e := range router.Undoable(j) {
		r.hasRouter = true
		res.Changes = append(res.Changes, RollbackEntry{Layer: router.Layer, Operation: e.Operation, Resource: e.Resource, Status: "planned",
			Message: "restore the previous providerParameters; the ingress operator re-creates the router Service (minutes of *.apps outage, another hostname)"})
	}
	for _, e := range gateway.Undoable(j) {
		if e.Operation == gateway.OpRetireService {
			continue // listed first
		}
		res.Changes = append(res.Changes, RollbackEntry{Layer: gateway.Layer, Operation: e.Operation, Resource: e.Resource, Status: "planned"})
		if e.Operation == gateway.OpRecreateService {
			r.recreated = append(r.recreated, [2]string{e.Undo["namespace"], e.Undo["name"]})
		}
	}
	for _, e := range services.Undoable(j) {
		res.Changes = append(res.Changes, RollbackEntry{Layer: services.Layer, Operation: e.Operation, Resource: e.Resource, Status: "planned"})
	}
	for _, e := range policies.Undoable(j) {
		r.hasPolicies = true
		res.Changes = append(res.Changes, RollbackEntry{Layer: policies.Layer, Operation: e.Operation, Resource: e.Resource, Status: "planned"})
	}
	for _, e := range mesh.Undoable(j) {
		r.hasMesh = true
		res.Changes = append(res.Changes, RollbackEntry{Layer: mesh.Layer, Operation: e.Operation, Resource: e.Resource, Status: "planned"})
	}
	r.netEntry, r.hasNet = j.Get(network.JournalID)
	r.hasNet = r.hasNet && (r.netEntry.State == journal.Done || r.netEntry.State == journal.Pending)
	if r.hasNet {
		res.Changes = append(res.Changes, RollbackEntry{Layer: "overlay", Operation: r.netEntry.Operation, Resource: r.netEntry.Resource, Status: "planned",
			Message: fmt.Sprintf("remove clusterNetwork %s, serviceNetwork %s", r.netEntry.Undo["clusterNetwork"], r.netEntry.Undo["serviceNetwork"])})
	}
	for _, e := range j.Undoable(network.KubeadmLayer) {
		if e.Operation == network.OpUpdateConfigMap {
			r.kubeadm = append(r.kubeadm, e)
			res.Changes = append(res.Changes, RollbackEntry{Layer: network.KubeadmLayer, Operation: e.Operation, Resource: e.Resource, Status: "planned",
				Message: "restore the original text (the host-side flags are yours to take back)"})
		}
	}
	for _, e := range nodes.Undoable(j) {
		r.hasNodes = true
		res.Changes = append(res.Changes, RollbackEntry{Layer: nodes.Layer, Operation: e.Operation, Resource: e.Resource, Status: "planned"})
	}
	if underlayPending(j) || r.hasDNS {
		facts, err := Gather(ctx, r.Clients)
		if err != nil {
			return nil, fmt.Errorf("the journal records AWS changes, so rollback needs AWS: %w", err)
		}
		acct, err := ResolveAWS(ctx, facts, r.Target)
		if err != nil {
			return nil, fmt.Errorf("the journal records AWS changes, so rollback needs AWS: %w", err)
		}
		r.account = acct
		if !underlayPending(j) {
			return res, nil // Route 53 only
		}
		inv, err := acct.Refresh(ctx)
		if err != nil {
			return nil, fmt.Errorf("the journal records AWS changes, so rollback needs AWS: %w", err)
		}
		r.account, r.vpc = acct, inv.VPC.ID
		for _, e := range awsx.Undoable(j, r.vpc) {
			res.Changes = append(res.Changes, RollbackEntry{Layer: awsx.Layer, Operation: e.Operation, Resource: e.Resource, Status: "planned"})
		}
	}
	return res, nil
}

// Apply undoes res's changes, layer by layer, and stops at the first layer
// that fails; res says how each change went.
func (r *Rollback) Apply(ctx context.Context, res *RollbackResult) error {
	var failed []string
	set := func(layer, resource, status, msg string) {
		for i := range res.Changes {
			c := &res.Changes[i]
			if c.Layer == layer && c.Resource == resource && c.Status == "planned" {
				c.Status, c.Message = status, msg
				return
			}
		}
	}
	// The names first: they stop leading to anything before it changes.
	// A gateway migration's records go back to the old load balancer while
	// it serves (before the gateway layer deletes the new one); a retired
	// old Service comes back before them (behind a new Classic ELB), else
	// they would lead to the deleted one. Then the AAAA records: the names
	// stop answering IPv6 before anything they lead to loses it.
	if r.hasRetired {
		r.Progress.Start("Creating the retired gateway Service again")
		gres, gerr := gateway.RestoreRetired(ctx, r.Clients.Kube, r.Journal, r.Timeout)
		r.Progress.Done("")
		for _, g := range gres {
			set(gateway.Layer, g.Resource, g.Status, g.Message)
		}
		if gerr != nil {
			failed = append(failed, gerr.Error())
		}
	}
	if r.hasMoves && len(failed) == 0 {
		r.Progress.Start("Moving the gateway's records back")
		j, err := r.Journal.Load(ctx)
		var mres []awsx.Result
		if err == nil {
			mres, err = dns.RollbackMoves(ctx, r.account.AWS.Route53, r.Journal, gateway.Redirects(j))
		}
		r.Progress.Done("")
		for _, m := range mres {
			set(dns.MoveLayer, m.Resource, m.Status, m.Error)
		}
		if err != nil {
			failed = append(failed, err.Error())
		}
	}
	if r.hasDNS && len(failed) == 0 {
		r.Progress.Start("Rolling back the AAAA records")
		dres, derr := dns.Rollback(ctx, r.account.AWS.Route53, r.Journal)
		r.Progress.Done("")
		for _, d := range dres {
			set(dns.Layer, d.Resource, d.Status, d.Error)
		}
		if derr != nil {
			failed = append(failed, derr.Error())
		}
	}
	// Then OpenShift's router: its operator's new Service sits on the
	// underlay.
	if r.hasRouter && len(failed) == 0 {
		r.Progress.Start("Rolling back the default IngressController's load balancer type")
		c := &router.Changer{Kube: r.Clients.Kube, Dynamic: r.Clients.Dynamic, Journal: r.Journal, Timeout: r.Timeout,
			Progress: func(msg string) { r.Progress.Update(msg) }}
		rres, rerr := c.Rollback(ctx)
		r.Progress.Done("")
		for _, x := range rres {
			set(router.Layer, x.Resource, x.Status, x.Message)
		}
		if rerr != nil {
			failed = append(failed, rerr.Error())
		}
	}
	// The gateway: its Service sits on the network and the NLB.
	if len(failed) == 0 {
		r.Progress.Start("Rolling back the gateway")
		gres, gerr := gateway.Rollback(ctx, r.Clients.Kube, r.Journal, r.Timeout)
		r.Progress.Done("")
		for _, g := range gres {
			set(gateway.Layer, g.Resource, g.Status, g.Message)
		}
		if gerr != nil {
			failed = append(failed, gerr.Error())
		}
	}
	// Then the Services, while the cluster still has both service families.
	if len(failed) == 0 {
		r.Progress.Start("Rolling back the Services")
		sres, serr := services.Rollback(ctx, r.Clients.Kube, r.Journal)
		r.Progress.Done("")
		for _, s := range sres {
			set(services.Layer, s.Resource, s.Status, s.Message)
		}
		if serr != nil {
			failed = append(failed, serr.Error())
		}
	}
	// Then the NetworkPolicies' IPv6 twins, while the ranges they name exist.
	if r.hasPolicies && len(failed) == 0 {
		r.Progress.Start("Rolling back the NetworkPolicies")
		pres, perr := policies.Rollback(ctx, r.Clients.Kube, r.Journal)
		r.Progress.Done("")
		for _, x := range pres {
			set(policies.Layer, x.Resource, x.Status, x.Message)
		}
		if perr != nil {
			failed = append(failed, perr.Error())
		}
	}
	// Then Istio's settings, while istiod's Service still has both families.
	if r.hasMesh && len(failed) == 0 {
		r.Progress.Start("Rolling back Istio's dual-stack settings")
		mres, merr := mesh.Rollback(ctx, r.Clients.Kube, r.Clients.Dynamic, mesh.HelmFor(r.Clients), r.Journal)
		r.Progress.Done("")
		for _, m := range mres {
			set(mesh.Layer, m.Resource, m.Status, m.Message)
		}
		if merr != nil {
			failed = append(failed, merr.Error())
		}
	}
	if r.hasNet && len(failed) == 0 {
		nres, nerr := r.revertNetwork(ctx)
		switch {
		case nerr != nil:
			set("overlay", r.netEntry.Resource, "failed", nerr.Error())
			failed = append(failed, "network: "+nerr.Error())
		case nres.Outcome == network.OutcomeNothingToRevert:
			set("overlay", r.netEntry.Resource, "skipped", nres.Message)
		default:
			set("overlay", r.netEntry.Resource, "undone", nres.Message)
		}
	}
	if len(r.kubeadm) > 0 && len(failed) == 0 {
		r.Progress.Start("Rolling back kubeadm-config and kube-proxy")
		kres := &network.Result{Mode: "kubeadm", Action: "revert"}
		kerr := r.overlay().RevertKubeadm(ctx, kres)
		r.Progress.Done("")
		status := "undone"
		switch {
		case kerr != nil:
			status = "failed"
			failed = append(failed, "network: "+kerr.Error())
		case kres.Outcome == network.OutcomeNothingToRevert:
			status = "skipped"
		}
		for _, e := range r.kubeadm {
			set(network.KubeadmLayer, e.Resource, status, kres.Message)
		}
	}
	// The nodes' cloud config, once nothing in the cluster network needs
	// their IPv6 addresses any more, and before AWS takes them away.
	if r.hasNodes && len(failed) == 0 {
		r.Progress.Start("Rolling back the nodes' cloud config")
		nres, nerr := nodes.Rollback(ctx, r.Clients.Kube, r.Journal)
		r.Progress.Done("")
		for _, n := range nres {
			set(nodes.Layer, n.Resource, n.Status, n.Message)
		}
		if nerr != nil {
			failed = append(failed, nerr.Error())
		}
	}
	if r.account != nil && r.vpc != "" && len(failed) == 0 {
		r.Progress.Start("Rolling back the AWS changes to VPC " + r.vpc)
		results, aerr := awsx.Rollback(ctx, r.account.AWS, r.vpc, r.Journal, awsx.RollbackOptions{
			NodeReady: r.account.NodeReady(),
			Progress: func(done, total int, a awsx.Result) {
				r.Progress.Update(fmt.Sprintf("%d/%d undo %s %s: %s %s", done, total, a.Operation, a.Resource, a.Status, a.Error))
			},
		})
		r.Progress.Done("")
		for _, a := range results {
			status := a.Status
			if status == awsx.StatusUndone {
				status = "undone"
			}
			set(awsx.Layer, a.Resource, status, a.Error)
		}
		if aerr != nil {
			failed = append(failed, "aws: "+aerr.Error())
		}
		if aerr == nil && len(r.recreated) > 0 {
			if err := r.tidyRecreatedLoadBalancers(ctx, res); err != nil {
				failed = append(failed, "aws: "+err.Error())
			}
		}
	}
	for i := range res.Changes {
		if res.Changes[i].Status == "planned" {
			res.Changes[i].Status, res.Changes[i].Message = "not-run", "an earlier layer failed"
		}
	}
	if len(failed) > 0 {
		res.Outcome = "failed"
		res.Message = fmt.Sprintf("rollback stopped: %s; what was undone is recorded, so running `%s rollback --yes` again continues from there", strings.Join(failed, "; "), r.Tool)
		return fmt.Errorf("%s", res.Message)
	}
	if err := ForgetPhases(ctx, r.Journal); err != nil {
		fmt.Fprintf(r.Log, "warning: could not mark upgrade's phases as rolled back in the journal: %v\n", err)
	}
	res.Outcome = "rolled-back"
	res.Message = fmt.Sprintf("undid the recorded changes of every layer (journal %s)", r.Journal.Location())
	return nil
}

// DNSUndoable are the dns layer's records not taken back yet (done, or
// pending: may have been made).
func DNSUndoable(j *journal.Journal) []journal.Entry {
	var out []journal.Entry
	for _, e := range j.Layer(dns.Layer) {
		if e.State == journal.Done || e.State == journal.Pending {
			out = append(out, e)
		}
	}
	return out
}

// underlayPending says whether the journal has AWS changes not undone.
func underlayPending(j *journal.Journal) bool {
	for _, e := range j.Layer(awsx.Layer) {
		if e.State != journal.Undone {
			return true
		}
	}
	return false
}

// overlay is network's transaction for rollback, already confirmed.
func (r *Rollback) overlay() *network.Overlay {
	return &network.Overlay{
		Kube: r.Clients.Kube, Dynamic: r.Clients.Dynamic, Journal: r.Journal, DryRun: cli.DryRunNone, Timeout: r.Timeout,
		Command: r.Tool, Log: Indent(r.Log, "    "),
		Confirm: func(context.Context, string, string) error { return nil }, // rollback asked once for every layer
	}
}

// revertNetwork takes back network's entries with the same transaction as
// `network --revert`, already confirmed.
func (r *Rollback) revertNetwork(ctx context.Context) (*network.Result, error) {
	res := &network.Result{Mode: "openshift", Action: "revert"}
	err := r.overlay().Revert(ctx, res)
	if err != nil && res.Message != "" {
		return res, fmt.Errorf("%s (%s)", res.Message, network.NetworkResource)
	}
	return res, err
}

// tidyRecreatedLoadBalancers: the gateway is put back before the underlay
// (the NLB it replaced sat on the subnets' IPv6), so the load balancer of
// the original Service is created while the VPC still has its IPv6 block,
// and AWS gives its new security group the default egress rule to ::/0.
// Once the block is gone, that rule is taken out, so the group is as the
// one it replaces was; a VPC that keeps an IPv6 block (not ours) keeps it.
func (r *Rollback) tidyRecreatedLoadBalancers(ctx context.Context, res *RollbackResult) error {
	inv, err := r.account.Refresh(ctx)
	if err != nil {
		return err
	}
	if inv.VPC.IPv6CIDR != "" {
		return nil
	}
	for _, nn := range r.recreated {
		svc, err := r.Clients.Kube.CoreV1().Services(nn[0]).Get(ctx, nn[1], metav1.GetOptions{})
		if err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
			continue // not restored, or no load balancer yet: nothing AWS made
		}
		host := strings.TrimSuffix(svc.Status.LoadBalancer.Ingress[0].Hostname, ".")
		for _, lb := range inv.LoadBalancers {
			if host == "" || !strings.EqualFold(strings.TrimSuffix(lb.DNSName, "."), host) {
				continue
			}
			groups, err := awsx.RevokeDefaultIPv6Egress(ctx, r.account.AWS, lb.SecurityGroups)
			for _, g := range groups {
				res.Changes = append(res.Changes, RollbackEntry{Layer: awsx.Layer, Operation: "RevokeSecurityGroupEgress", Resource: g, Status: "undone",
					Message: fmt.Sprintf("the default egress to ::/0 AWS gave the group of %s/%s's re-created load balancer %s while the VPC had IPv6", nn[0], nn[1], lb.Name)})
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
