package network

// The OpenShift overlay transaction (journal pending -> patch -> wait ->
// revert) and the kubeadm/kind plan, as the network command and upgrade
// both run them; the command layer only wires flags and prints.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cmtext"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// Overlay runs the cluster network conversion.
type Overlay struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Journal records the patch before it is sent; revert reads it.
	Journal *journal.Store
	DryRun  cli.DryRun
	Request Request
	Force   bool
	Timeout time.Duration
	// Command is how the user runs the tool ("kubectl dualstack"), for messages.
	Command string
	// Log hears notes and progress (stderr).
	Log io.Writer
	// Show is shown the patch before it is sent.
	Show func([]PatchOp)
	// Confirm asks whether to send it: nil to go ahead, cli.ErrNotConfirmed not to.
	Confirm func(ctx context.Context, command, question string) error
	// Report is told the result once it is final; the error comes back too.
	Report func(*Result)
	// ExpectEdits, when set, are the kubeadm ConfigMap edits the user
	// confirmed: ConvertKubeadm refuses to write others.
	ExpectEdits *[]cmtext.Edit
}

func (o *Overlay) command(sub string) string { return o.Command + " " + sub }

func (o *Overlay) report(res *Result, err error) error {
	if o.Report != nil {
		o.Report(res)
	}
	return err
}

// JournalID is the journal entry of the OpenShift Network patch.
const JournalID = "overlay/json-patch/" + NetworkResource

// Outcomes of `network`, as -o json reports them.
const (
	OutcomeConverted        = "converted"
	OutcomeAlreadyDualStack = "already-dual-stack"
	OutcomePreflightFailed  = "preflight-failed"
	OutcomeNotConfirmed     = "not-confirmed"
	OutcomeDryRun           = "dry-run"
	OutcomeDegraded         = "degraded"
	OutcomeTimedOut         = "timed-out"
	OutcomeConflict         = "conflict"
	OutcomeReverted         = "reverted"
	OutcomeNothingToRevert  = "nothing-to-revert"
	OutcomePlanned          = "planned"
)

// Result is what `network -o json|yaml` prints. Field names are stable.
type Result struct {
	Cluster platform.Info `json:"cluster"`
	// Mode is openshift, kubeadm or kind.
	Mode string `json:"mode"`
	// Action is convert, revert or plan.
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	Message string `json:"message"`
	DryRun  string `json:"dryRun,omitempty"`
	// Added is the IPv6 entries this run added (or would add, or removed on revert).
	Added     *Added    `json:"added,omitempty"`
	Patch     []PatchOp `json:"patch,omitempty"`
	Preflight []Problem `json:"preflight,omitempty"`
	// Status is the Network config's status as last seen.
	Status       *Status         `json:"status,omitempty"`
	Operator     *OperatorStatus `json:"operator,omitempty"`
	IPv4OnlyPods []NamespacePods `json:"ipv4OnlyPods,omitempty"`
	// PodsChecked: IPv4OnlyPods is the result of listing the pods (not
	// empty for want of it).
	PodsChecked bool  `json:"-"`
	Plan        *Plan `json:"plan,omitempty"`
}

// Status is the applied networks of the OpenShift Network config.
type Status struct {
	ClusterNetwork []ClusterNetworkEntry `json:"clusterNetwork"`
	ServiceNetwork []string              `json:"serviceNetwork"`
}

func (o *Overlay) Convert(ctx context.Context, res *Result, nodes []corev1.Node) error {
	dc := o.Dynamic
	nc, err := ReadNetworkConfig(ctx, dc)
	if err != nil {
		return kube.Explain("reading "+NetworkResource, err)
	}
	res.Status = statusOf(nc)
	if strings.HasPrefix(res.Cluster.AWSIPFamily, "DualStack") {
		res.Outcome = OutcomeAlreadyDualStack
		res.Message = fmt.Sprintf("nothing to do: the cluster was installed dual-stack (platformStatus.aws.ipFamily %s)", res.Cluster.AWSIPFamily)
		return o.report(res, nil)
	}
	if nc.SpecDualStack() && nc.StatusDualStack() {
		res.Outcome = OutcomeAlreadyDualStack
		res.Message = fmt.Sprintf("nothing to do: the cluster network is already dual-stack (clusterNetwork %s; serviceNetwork %s)",
			strings.Join(CIDRs(nc.StatusClusterNetwork), ", "), strings.Join(nc.StatusServiceNetwork, ", "))
		return o.report(res, nil)
	}
	op, err := ReadOperatorStatus(ctx, dc)
	if err != nil && !apierrors.IsNotFound(err) {
		return kube.Explain("reading clusteroperators.config.openshift.io/network", err)
	}

	if nc.SpecDualStack() {
		// An earlier run (or someone) requested IPv6 already: wait for it
		// rather than patch again.
		added := &Added{}
		for _, e := range nc.SpecClusterNetwork {
			if Family(e.CIDR) == "IPv6" {
				e := e
				added.ClusterNetwork = &e
			}
		}
		for _, s := range nc.SpecServiceNetwork {
			if Family(s) == "IPv6" {
				added.ServiceNetwork = s
			}
		}
		res.Added = added
		fmt.Fprintf(o.Log, "IPv6 is already requested in %s spec but not yet applied: waiting for the network operator.\n", NetworkResource)
		if o.DryRun != cli.DryRunNone {
			res.Outcome, res.Message = OutcomeDryRun, "IPv6 already requested in spec; nothing to patch"
			return o.report(res, nil)
		}
		o.settlePendingPatch(ctx, added)
		return o.waitConverted(ctx, res, added)
	}
	if HasFamily(CIDRs(nc.SpecClusterNetwork), "IPv6") || HasFamily(nc.SpecServiceNetwork, "IPv6") {
		return fmt.Errorf("%s spec has IPv6 in only one of clusterNetwork [%s] and serviceNetwork [%s]; the operator needs both or neither: fix it by hand (oc edit config.openshift.io cluster)",
			NetworkResource, strings.Join(CIDRs(nc.SpecClusterNetwork), ", "), strings.Join(nc.SpecServiceNetwork, ", "))
	}

	reserved, err := ReadOVNReserved(ctx, dc)
	if err != nil {
		return kube.Explain("reading operator.openshift.io networks/cluster", err)
	}
	reserved = append(reserved, nc.Reserved()...)
	reserved = append(reserved, ReservedFromAddresses("IPv6 InternalIP of a node:", NodeIPv6Addresses(nodes))...)
	if err := o.Request.CheckReserved(reserved); err != nil {
		return &cli.UsageError{Err: err}
	}
	entry := o.Request.ClusterEntry()
	res.Added = &Added{ClusterNetwork: &entry, ServiceNetwork: o.Request.ServiceNetwork.String()}
	res.Patch = AddPatch(nc, o.Request)

	if problems := Preflight(res.Cluster, nc, op, nodes, o.Command); len(problems) > 0 {
		res.Preflight = problems
		blocking := 0
		for _, p := range problems {
			verdict := "FAIL"
			if p.Forceable && o.Force {
				verdict = "WARN (--force)"
			} else {
				blocking++
			}
			fmt.Fprintf(o.Log, "preflight %s %s: %s\n", verdict, p.Check, p.Message)
			if p.Fix != "" {
				fmt.Fprintf(o.Log, "  fix: %s\n", p.Fix)
			}
		}
		if blocking > 0 {
			res.Outcome = OutcomePreflightFailed
			res.Message = fmt.Sprintf("nothing was changed: %d preflight check(s) failed", blocking)
			return o.report(res, errors.New(res.Message))
		}
	}

	if done, err := o.showAndConfirm(ctx, res, "network", "Patch "+NetworkResource+"?"); done {
		return err
	}

	store := o.Journal
	undo := map[string]string{
		"clusterNetwork": entry.CIDR, "hostPrefix": strconv.FormatInt(entry.HostPrefix, 10), "serviceNetwork": o.Request.ServiceNetwork.String(),
	}
	if o.DryRun == cli.DryRunNone {
		if err := store.Put(ctx, journal.Entry{ID: JournalID, Layer: "overlay", Operation: "json-patch add", Resource: NetworkResource, Undo: undo, State: journal.Pending}); err != nil {
			return kube.Explain("recording the change before making it", err)
		}
	}
	obj, err := o.patch(ctx, res.Patch)
	if err != nil {
		// Only a definite refusal means nothing changed. A lost answer (a
		// timeout, a 5xx after the write) leaves the entry pending: the next
		// run finds the entries in spec and settles it, and --revert
		// removes them whichever way it went.
		if o.DryRun == cli.DryRunNone && definitelyRefused(err) {
			_ = store.SetState(ctx, JournalID, journal.Failed, nil)
		}
		if o.concurrentChange(ctx, nc, err) {
			res.Outcome = OutcomeConflict
			res.Message = fmt.Sprintf("nothing was changed: %s was changed by someone else between reading it and patching it (the patch's test operation failed); re-run to plan against the current config", NetworkResource)
			return o.report(res, errors.New(res.Message))
		}
		return kube.Explain("patching "+NetworkResource, err)
	}
	if o.DryRun == cli.DryRunServer {
		res.Outcome = OutcomeDryRun
		after := NetworkConfigFrom(obj)
		res.Message = fmt.Sprintf("dry run (server): the API server accepted the patch; spec would be clusterNetwork [%s] serviceNetwork [%s]; nothing was persisted",
			strings.Join(CIDRs(after.SpecClusterNetwork), ", "), strings.Join(after.SpecServiceNetwork, ", "))
		return o.report(res, nil)
	}
	if err := store.SetState(ctx, JournalID, journal.Done, nil); err != nil {
		fmt.Fprintf(o.Log, "warning: patched, but could not record it as done in the journal: %v\n", err)
	}
	fmt.Fprintf(o.Log, "Patched %s (recorded in the journal %s).\n", NetworkResource, store.Location())
	return o.waitConverted(ctx, res, res.Added)
}

// showAndConfirm shows the patch, then ends the command for a client dry run
// or asks for confirmation; done says the command ends here, with err.
func (o *Overlay) showAndConfirm(ctx context.Context, res *Result, command, question string) (done bool, err error) {
	if o.Show != nil {
		o.Show(res.Patch)
	}
	switch o.DryRun {
	case cli.DryRunClient:
		res.Outcome, res.Message = OutcomeDryRun, "dry run (client): nothing was sent"
		return true, o.report(res, nil)
	case cli.DryRunNone:
		if err := o.Confirm(ctx, o.command(command), question); err != nil {
			if errors.Is(err, cli.ErrNotConfirmed) {
				res.Outcome, res.Message = OutcomeNotConfirmed, "nothing was changed"
				_ = o.report(res, nil)
			}
			return true, err
		}
	}
	return false, nil
}

// settlePendingPatch marks a pending journal entry done once the Network spec
// shows the entries it recorded: the patch landed though its answer was lost.
func (o *Overlay) settlePendingPatch(ctx context.Context, inSpec *Added) {
	store := o.Journal
	j, err := store.Load(ctx)
	if err != nil {
		return
	}
	e, ok := j.Get(JournalID)
	if !ok || e.State != journal.Pending || inSpec.ClusterNetwork == nil ||
		e.Undo["clusterNetwork"] != inSpec.ClusterNetwork.CIDR || e.Undo["serviceNetwork"] != inSpec.ServiceNetwork {
		return
	}
	if err := store.SetState(ctx, JournalID, journal.Done, nil); err != nil {
		fmt.Fprintf(o.Log, "warning: could not record the earlier patch as done in the journal: %v\n", err)
	}
}

// waitConverted waits for the operator to roll out the added entries.
func (o *Overlay) waitConverted(ctx context.Context, res *Result, added *Added) error {
	goal := Goal{FailOnDegraded: true}
	if added.ClusterNetwork != nil {
		goal.PresentCluster = []string{added.ClusterNetwork.CIDR}
	}
	if added.ServiceNetwork != "" {
		goal.PresentService = []string{added.ServiceNetwork}
	}
	seen, err := o.wait(ctx, "waiting for the network operator to roll out IPv6", goal)
	res.Operator = &seen.Operator
	if seen.Network != nil {
		res.Status = statusOf(seen.Network)
	}
	revert := o.command("network --revert --yes")
	var degraded *DegradedError
	switch {
	case errors.As(err, &degraded):
		res.Outcome = OutcomeDegraded
		res.Message = fmt.Sprintf("the network operator refused the change: Degraded, reason %s: %s", degraded.Operator.Reason, degraded.Operator.Message)
		fmt.Fprintf(o.Log, "The network operator did not apply IPv6: it is Degraded (%s).\n  %s\nThe cluster stays IPv4-only. To remove exactly the entries this command added:\n  %s\n",
			degraded.Operator.Reason, degraded.Operator.Message, revert)
		return o.report(res, errors.New(res.Message))
	case errors.Is(err, ErrTimeout):
		res.Outcome = OutcomeTimedOut
		res.Message = fmt.Sprintf("the network operator did not finish within --timeout %s: %v", o.Timeout, err)
		fmt.Fprintf(o.Log, "The patch is in place; the operator may still roll it out. Check again with: %s network --timeout 30m; or undo it: %s\n", o.Command, revert)
		return o.report(res, errors.New(res.Message))
	case err != nil:
		return err
	}
	res.Outcome = OutcomeConverted
	res.Message = fmt.Sprintf("dual-stack: status.clusterNetwork [%s], status.serviceNetwork [%s]; network operator %s",
		strings.Join(CIDRs(seen.Network.StatusClusterNetwork), ", "), strings.Join(seen.Network.StatusServiceNetwork, ", "), seen.Operator)
	o.findIPv4OnlyPods(ctx, res)
	return o.report(res, nil)
}

// findIPv4OnlyPods lists, once the pod network is dual-stack, the running
// pods that still have only IPv4 (per namespace); when the list fails it
// warns, and res says the pods were not checked.
func (o *Overlay) findIPv4OnlyPods(ctx context.Context, res *Result) {
	pods, err := IPv4OnlyPods(ctx, o.Kube)
	if err != nil {
		fmt.Fprintf(o.Log, "warning: could not list pods to find IPv4-only ones: %v\n", kube.Explain("listing pods", err))
		return
	}
	res.IPv4OnlyPods, res.PodsChecked = pods, true
}

func (o *Overlay) Revert(ctx context.Context, res *Result) error {
	store := o.Journal
	j, err := store.Load(ctx)
	if err != nil {
		return kube.Explain("reading the journal", err)
	}
	e, ok := j.Get(JournalID)
	if !ok || e.State == journal.Undone || e.State == journal.Failed {
		res.Outcome = OutcomeNothingToRevert
		res.Message = fmt.Sprintf("nothing to revert: the journal %s records no IPv6 entries added by this command", store.Location())
		return o.report(res, nil)
	}
	added := &Added{ServiceNetwork: e.Undo["serviceNetwork"]}
	if c := e.Undo["clusterNetwork"]; c != "" {
		hp, _ := strconv.ParseInt(e.Undo["hostPrefix"], 10, 64)
		added.ClusterNetwork = &ClusterNetworkEntry{CIDR: c, HostPrefix: hp}
	}
	res.Added = added
	nc, err := ReadNetworkConfig(ctx, o.Dynamic)
	if err != nil {
		return kube.Explain("reading "+NetworkResource, err)
	}
	res.Patch = RevertPatch(nc, *added)
	if len(res.Patch) == 0 {
		if o.DryRun == cli.DryRunNone {
			_ = store.SetState(ctx, JournalID, journal.Undone, nil)
		}
		res.Outcome = OutcomeNothingToRevert
		res.Message = "nothing to revert: none of the recorded entries is in the spec any more"
		return o.report(res, nil)
	}
	if done, err := o.showAndConfirm(ctx, res, "network --revert", "Remove these entries from "+NetworkResource+"?"); done {
		return err
	}
	if _, err := o.patch(ctx, res.Patch); err != nil {
		if o.concurrentChange(ctx, nc, err) {
			res.Outcome = OutcomeConflict
			res.Message = fmt.Sprintf("nothing was changed: %s was changed by someone else meanwhile; re-run --revert", NetworkResource)
			return o.report(res, errors.New(res.Message))
		}
		return kube.Explain("patching "+NetworkResource, err)
	}
	if o.DryRun == cli.DryRunServer {
		res.Outcome, res.Message = OutcomeDryRun, "dry run (server): the API server accepted the removal; nothing was persisted"
		return o.report(res, nil)
	}
	if err := store.SetState(ctx, JournalID, journal.Undone, nil); err != nil {
		fmt.Fprintf(o.Log, "warning: reverted, but could not record it in the journal: %v\n", err)
	}
	goal := Goal{}
	if added.ClusterNetwork != nil {
		goal.AbsentCluster = []string{added.ClusterNetwork.CIDR}
	}
	if added.ServiceNetwork != "" {
		goal.AbsentService = []string{added.ServiceNetwork}
	}
	seen, err := o.wait(ctx, "waiting for the network operator to settle", goal)
	res.Operator = &seen.Operator
	if seen.Network != nil {
		res.Status = statusOf(seen.Network)
	}
	if errors.Is(err, ErrTimeout) {
		res.Outcome = OutcomeTimedOut
		res.Message = fmt.Sprintf("the entries were removed from spec, but the network operator did not settle within --timeout %s: %v", o.Timeout, err)
		return o.report(res, errors.New(res.Message))
	} else if err != nil {
		return err
	}
	res.Outcome = OutcomeReverted
	res.Message = fmt.Sprintf("removed the IPv6 entries this command added; network operator %s", seen.Operator)
	return o.report(res, nil)
}

func (o *Overlay) PlanKubeadm(ctx context.Context, res *Result, nodes []corev1.Node) error {
	res.Action = "plan"
	plan, err := o.planKubeadm(ctx, res, nodes)
	if err != nil || plan == nil {
		return o.report(res, err)
	}
	res.Outcome = OutcomePlanned
	res.Message = fmt.Sprintf("%d changes planned; nothing was changed (apply them on the hosts)", len(plan.Changes))
	return o.report(res, nil)
}

func (o *Overlay) patch(ctx context.Context, ops []PatchOp) (*unstructured.Unstructured, error) {
	body, err := MarshalPatch(ops)
	if err != nil {
		return nil, err
	}
	opts := metav1.PatchOptions{}
	if o.DryRun == cli.DryRunServer {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return o.Dynamic.Resource(platform.NetworksGVR).Patch(ctx, NetworkConfigName, types.JSONPatchType, body, opts)
}

// concurrentChange tells whether a patch failed because the Network config
// changed after it was read (the patch's test operations failed).
func (o *Overlay) concurrentChange(ctx context.Context, read *NetworkConfig, err error) bool {
	if IsTestFailed(err) {
		return true
	}
	if !IsRejectedPatch(err) {
		return false
	}
	now, rerr := ReadNetworkConfig(ctx, o.Dynamic)
	return rerr == nil && ChangedSince(read, now)
}

func (o *Overlay) wait(ctx context.Context, what string, goal Goal) (Observed, error) {
	p := cli.NewProgress(o.Log)
	p.Start(fmt.Sprintf("%s (timeout %s)", what, o.Timeout))
	seen, err := Wait(ctx, o.Dynamic, goal, o.Timeout, func(s Observed) { p.Update(s.Describe()) })
	if err != nil {
		p.Done("")
	} else {
		p.Done("network operator: " + seen.Operator.String())
	}
	return seen, err
}

// definitelyRefused reports whether the API server answered that it did not
// apply the patch (as opposed to an answer that was lost).
func definitelyRefused(err error) bool {
	return IsRejectedPatch(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) ||
		apierrors.IsInvalid(err) || apierrors.IsConflict(err) || apierrors.IsBadRequest(err) || apierrors.IsNotFound(err)
}

func statusOf(nc *NetworkConfig) *Status {
	return &Status{ClusterNetwork: nc.StatusClusterNetwork, ServiceNetwork: nc.StatusServiceNetwork}
}
