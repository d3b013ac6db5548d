package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// networkJournalID is the journal entry of the OpenShift Network patch.
const networkJournalID = "overlay/json-patch/" + network.NetworkResource

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

// NetworkOptions runs `network`.
type NetworkOptions struct {
	Output   *cli.OutputFlags
	Mutation *cli.MutationFlags

	ClusterNetwork string
	HostPrefix     int
	ServiceNetwork string
	Force          bool
	Revert         bool
	Timeout        time.Duration
	Journal        journalFlag

	inv      Invocation
	factory  *kube.Factory
	clients  *kube.Clients
	store    *journal.Store
	request  network.Request
	dryRun   cli.DryRun
	rangeSet bool // a range flag was given
	// result is the last result printed, for upgrade, which runs network
	// in process.
	result *NetworkResult
	genericiooptions.IOStreams
}

// NetworkResult is what `network -o json|yaml` prints. Field names are stable.
type NetworkResult struct {
	Cluster platform.Info `json:"cluster"`
	// Mode is openshift, kubeadm or kind.
	Mode string `json:"mode"`
	// Action is convert, revert or plan.
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	Message string `json:"message"`
	DryRun  string `json:"dryRun,omitempty"`
	// Added is the IPv6 entries this run added (or would add, or removed on revert).
	Added     *network.Added    `json:"added,omitempty"`
	Patch     []network.PatchOp `json:"patch,omitempty"`
	Preflight []network.Problem `json:"preflight,omitempty"`
	// Status is the Network config's status as last seen.
	Status       *NetworkStatus          `json:"status,omitempty"`
	Operator     *network.OperatorStatus `json:"operator,omitempty"`
	IPv4OnlyPods []network.NamespacePods `json:"ipv4OnlyPods,omitempty"`
	Plan         *network.Plan           `json:"plan,omitempty"`
}

// NetworkStatus is the applied networks of the OpenShift Network config.
type NetworkStatus struct {
	ClusterNetwork []network.ClusterNetworkEntry `json:"clusterNetwork"`
	ServiceNetwork []string                      `json:"serviceNetwork"`
}

// NewCmdNetwork builds `network`.
func NewCmdNetwork(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &NetworkOptions{
		Output:         cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		Mutation:       cli.NewMutationFlags(),
		ClusterNetwork: network.DefaultClusterNetwork,
		HostPrefix:     network.DefaultHostPrefix,
		ServiceNetwork: network.DefaultServiceNetwork,
		Timeout:        10 * time.Minute,
		inv:            inv,
		factory:        factory,
		IOStreams:      streams,
	}
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Add IPv6 to the cluster network (OpenShift), or plan it (kubeadm, kind)",
		Long: `Make the cluster network (the overlay) IPv4/IPv6 dual-stack.

OpenShift: append an IPv6 cluster network and service network to
networks.config.openshift.io/cluster (IPv4 stays first), after checking that
the network type, the nodes' addresses and the platform allow it, then wait
until the network operator has rolled them out: the Network status lists them
and the network ClusterOperator is Available, not Progressing, not Degraded.
The change is recorded in the journal; --revert removes exactly what was added.
On AWS the operator refuses converting an installed cluster (since 4.11):
this command says so and stops, unless --force.

kubeadm and kind: read the current flags of kube-apiserver,
kube-controller-manager, kube-proxy and kubeadm-config, and print the exact
changes per component. Nothing on the control-plane hosts is changed.

Exit status: 0 done (or nothing to do, or a plan), 1 refused or failed,
2 bad usage or bad ranges.`,
		Example: fmt.Sprintf(`  # Show the patch and the checks, change nothing
  %[1]s network --dry-run=client

  # Convert with the default ranges (fd01::/48 hostPrefix 64, fd02::/112), no question asked
  %[1]s network --yes

  # Other ranges, and a shorter wait
  %[1]s network --cluster-network fd10::/48 --host-prefix 64 --service-network fd20::/112 --timeout 5m --yes

  # Take back exactly what was added
  %[1]s network --revert --yes`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []string{"cluster-network", "host-prefix", "service-network"} {
				o.rangeSet = o.rangeSet || cmd.Flags().Changed(f)
			}
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ClusterNetwork, "cluster-network", o.ClusterNetwork, "IPv6 pod network (CIDR) to add.")
	f.IntVar(&o.HostPrefix, "host-prefix", o.HostPrefix, "Prefix length of each node's IPv6 pod subnet (64 or longer).")
	f.StringVar(&o.ServiceNetwork, "service-network", o.ServiceNetwork, "IPv6 service network (CIDR, /108 to /120) to add.")
	f.BoolVar(&o.Force, "force", false, "Patch even where the network operator is known to refuse the conversion (OpenShift on AWS since 4.11).")
	f.BoolVar(&o.Revert, "revert", false, "Remove the IPv6 entries this command added (as recorded in the journal), and nothing else.")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for the network operator to roll the change out.")
	o.Journal.add(cmd)
	o.Output.AddFlags(cmd)
	o.Mutation.AddFlags(cmd)
	return cmd
}

// Validate checks the flags, before any cluster is contacted.
func (o *NetworkOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	d, err := o.Mutation.Strategy()
	if err != nil {
		return err
	}
	o.dryRun = d
	if o.Timeout <= 0 {
		return cli.Usagef("--timeout must be positive, e.g. --timeout 10m")
	}
	if o.Revert {
		if o.rangeSet || o.Force {
			return cli.Usagef("--revert removes what the journal recorded: it takes no --cluster-network, --host-prefix, --service-network or --force")
		}
		return nil
	}
	r, err := network.ParseRequest(o.ClusterNetwork, o.HostPrefix, o.ServiceNetwork)
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	o.request = r
	return nil
}

// Complete builds the clients.
func (o *NetworkOptions) Complete() error {
	c, err := o.factory.Clients()
	if err != nil {
		return err
	}
	o.clients = c
	return nil
}

// Run detects the cluster and dispatches to the OpenShift change or the
// kubeadm/kind plan.
func (o *NetworkOptions) Run(ctx context.Context) error {
	nodes, err := kube.ListNodes(ctx, o.clients.Kube, metav1.ListOptions{})
	if err != nil {
		return kube.Explain("listing nodes", err)
	}
	info, err := platform.Detect(ctx, o.clients.Kube, o.clients.Dynamic, nodes)
	if err != nil {
		return kube.Explain("detecting the platform", err)
	}
	res := &NetworkResult{Cluster: info, Action: "convert"}
	if o.Revert {
		res.Action = "revert"
	}
	if o.dryRun != cli.DryRunNone {
		res.DryRun = string(o.dryRun)
	}
	switch info.Kind {
	case platform.OpenShift:
		res.Mode = "openshift"
		store, release, err := o.Journal.open(ctx, o.clients.Kube, o.dryRun, "network")
		if err != nil {
			return err
		}
		defer release()
		o.store = store
		if o.Revert {
			return o.revertOpenShift(ctx, res)
		}
		return o.convertOpenShift(ctx, res, nodes)
	case platform.Kubeadm, platform.KindKind:
		res.Mode = strings.ToLower(string(info.Kind))
		if o.Revert {
			return cli.Usagef("--revert undoes an OpenShift Network patch; on %s this command only plans, so there is nothing to revert", info.Kind)
		}
		return o.planKubeadm(ctx, res, nodes)
	default:
		return fmt.Errorf("%s network handles OpenShift, kubeadm and kind clusters; this one looks like %s (%s), whose network is configured by its provider",
			o.inv.DisplayName, info.Kind, strings.Join(info.Evidence, "; "))
	}
}

func (o *NetworkOptions) convertOpenShift(ctx context.Context, res *NetworkResult, nodes []corev1.Node) error {
	dc := o.clients.Dynamic
	nc, err := network.ReadNetworkConfig(ctx, dc)
	if err != nil {
		return kube.Explain("reading "+network.NetworkResource, err)
	}
	res.Status = statusOf(nc)
	if strings.HasPrefix(res.Cluster.AWSIPFamily, "DualStack") {
		res.Outcome = OutcomeAlreadyDualStack
		res.Message = fmt.Sprintf("nothing to do: the cluster was installed dual-stack (platformStatus.aws.ipFamily %s)", res.Cluster.AWSIPFamily)
		return o.finish(res, nil)
	}
	if nc.SpecDualStack() && nc.StatusDualStack() {
		res.Outcome = OutcomeAlreadyDualStack
		res.Message = fmt.Sprintf("nothing to do: the cluster network is already dual-stack (clusterNetwork %s; serviceNetwork %s)",
			strings.Join(network.CIDRs(nc.StatusClusterNetwork), ", "), strings.Join(nc.StatusServiceNetwork, ", "))
		return o.finish(res, nil)
	}
	op, err := network.ReadOperatorStatus(ctx, dc)
	if err != nil && !apierrors.IsNotFound(err) {
		return kube.Explain("reading clusteroperators.config.openshift.io/network", err)
	}

	if nc.SpecDualStack() {
		// An earlier run (or someone) requested IPv6 already: wait for it
		// rather than patch again.
		added := &network.Added{}
		for _, e := range nc.SpecClusterNetwork {
			if network.Family(e.CIDR) == "IPv6" {
				e := e
				added.ClusterNetwork = &e
			}
		}
		for _, s := range nc.SpecServiceNetwork {
			if network.Family(s) == "IPv6" {
				added.ServiceNetwork = s
			}
		}
		res.Added = added
		fmt.Fprintf(o.ErrOut, "IPv6 is already requested in %s spec but not yet applied: waiting for the network operator.\n", network.NetworkResource)
		if o.dryRun != cli.DryRunNone {
			res.Outcome, res.Message = OutcomeDryRun, "IPv6 already requested in spec; nothing to patch"
			return o.finish(res, nil)
		}
		o.settlePendingPatch(ctx, added)
		return o.waitConverted(ctx, res, added)
	}
	if network.HasFamily(network.CIDRs(nc.SpecClusterNetwork), "IPv6") || network.HasFamily(nc.SpecServiceNetwork, "IPv6") {
		return fmt.Errorf("%s spec has IPv6 in only one of clusterNetwork [%s] and serviceNetwork [%s]; the operator needs both or neither: fix it by hand (oc edit network.config.openshift.io cluster)",
			network.NetworkResource, strings.Join(network.CIDRs(nc.SpecClusterNetwork), ", "), strings.Join(nc.SpecServiceNetwork, ", "))
	}

	reserved, err := network.ReadOVNReserved(ctx, dc)
	if err != nil {
		return kube.Explain("reading operator.openshift.io networks/cluster", err)
	}
	reserved = append(reserved, nc.Reserved()...)
	reserved = append(reserved, network.ReservedFromAddresses("IPv6 InternalIP of a node:", network.NodeIPv6Addresses(nodes))...)
	if err := o.request.CheckReserved(reserved); err != nil {
		return &cli.UsageError{Err: err}
	}
	entry := o.request.ClusterEntry()
	res.Added = &network.Added{ClusterNetwork: &entry, ServiceNetwork: o.request.ServiceNetwork.String()}
	res.Patch = network.AddPatch(nc, o.request)

	if problems := network.Preflight(res.Cluster, nc, op, nodes, o.inv.DisplayName); len(problems) > 0 {
		res.Preflight = problems
		blocking := 0
		for _, p := range problems {
			verdict := "FAIL"
			if p.Forceable && o.Force {
				verdict = "WARN (--force)"
			} else {
				blocking++
			}
			fmt.Fprintf(o.ErrOut, "preflight %s %s: %s\n", verdict, p.Check, p.Message)
			if p.Fix != "" {
				fmt.Fprintf(o.ErrOut, "  fix: %s\n", p.Fix)
			}
		}
		if blocking > 0 {
			res.Outcome = OutcomePreflightFailed
			res.Message = fmt.Sprintf("nothing was changed: %d preflight check(s) failed", blocking)
			return o.finish(res, errors.New(res.Message))
		}
	}

	if done, err := o.showAndConfirm(ctx, res, "network", "Patch "+network.NetworkResource+"?"); done {
		return err
	}

	store := o.store
	undo := map[string]string{
		"clusterNetwork": entry.CIDR, "hostPrefix": strconv.FormatInt(entry.HostPrefix, 10), "serviceNetwork": o.request.ServiceNetwork.String(),
	}
	if o.dryRun == cli.DryRunNone {
		if err := store.Put(ctx, journal.Entry{ID: networkJournalID, Layer: "overlay", Operation: "json-patch add", Resource: network.NetworkResource, Undo: undo, State: journal.Pending}); err != nil {
			return kube.Explain("recording the change before making it", err)
		}
	}
	obj, err := o.patch(ctx, res.Patch)
	if err != nil {
		// Only a definite refusal means nothing changed. A lost answer (a
		// timeout, a 5xx after the write) leaves the entry pending: the next
		// run finds the entries in spec and settles it, and --revert
		// removes them whichever way it went.
		if o.dryRun == cli.DryRunNone && definitelyRefused(err) {
			_ = store.SetState(ctx, networkJournalID, journal.Failed, nil)
		}
		if o.concurrentChange(ctx, nc, err) {
			res.Outcome = OutcomeConflict
			res.Message = fmt.Sprintf("nothing was changed: %s was changed by someone else between reading it and patching it (the patch's test operation failed); re-run to plan against the current config", network.NetworkResource)
			return o.finish(res, errors.New(res.Message))
		}
		return kube.Explain("patching "+network.NetworkResource, err)
	}
	if o.dryRun == cli.DryRunServer {
		res.Outcome = OutcomeDryRun
		after := network.NetworkConfigFrom(obj)
		res.Message = fmt.Sprintf("dry run (server): the API server accepted the patch; spec would be clusterNetwork [%s] serviceNetwork [%s]; nothing was persisted",
			strings.Join(network.CIDRs(after.SpecClusterNetwork), ", "), strings.Join(after.SpecServiceNetwork, ", "))
		return o.finish(res, nil)
	}
	if err := store.SetState(ctx, networkJournalID, journal.Done, nil); err != nil {
		fmt.Fprintf(o.ErrOut, "warning: patched, but could not record it as done in the journal: %v\n", err)
	}
	fmt.Fprintf(o.ErrOut, "Patched %s (recorded in the journal %s).\n", network.NetworkResource, store.Location())
	return o.waitConverted(ctx, res, res.Added)
}

// showAndConfirm shows the patch, then ends the command for a client dry run
// or asks for confirmation; done says the command ends here, with err.
func (o *NetworkOptions) showAndConfirm(ctx context.Context, res *NetworkResult, command, question string) (done bool, err error) {
	o.showPatch(res.Patch)
	switch o.dryRun {
	case cli.DryRunClient:
		res.Outcome, res.Message = OutcomeDryRun, "dry run (client): nothing was sent"
		return true, o.finish(res, nil)
	case cli.DryRunNone:
		if err := o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command(command), question); err != nil {
			if errors.Is(err, cli.ErrNotConfirmed) {
				res.Outcome, res.Message = OutcomeNotConfirmed, "nothing was changed"
				_ = o.finish(res, nil)
			}
			return true, err
		}
	}
	return false, nil
}

// definitelyRefused reports whether the API server answered that it did not
// apply the patch (as opposed to an answer that was lost).
func definitelyRefused(err error) bool {
	return network.IsRejectedPatch(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) ||
		apierrors.IsInvalid(err) || apierrors.IsConflict(err) || apierrors.IsBadRequest(err) || apierrors.IsNotFound(err)
}

// settlePendingPatch marks a pending journal entry done once the Network spec
// shows the entries it recorded: the patch landed though its answer was lost.
func (o *NetworkOptions) settlePendingPatch(ctx context.Context, inSpec *network.Added) {
	store := o.store
	j, err := store.Load(ctx)
	if err != nil {
		return
	}
	e, ok := j.Get(networkJournalID)
	if !ok || e.State != journal.Pending || inSpec.ClusterNetwork == nil ||
		e.Undo["clusterNetwork"] != inSpec.ClusterNetwork.CIDR || e.Undo["serviceNetwork"] != inSpec.ServiceNetwork {
		return
	}
	if err := store.SetState(ctx, networkJournalID, journal.Done, nil); err != nil {
		fmt.Fprintf(o.ErrOut, "warning: could not record the earlier patch as done in the journal: %v\n", err)
	}
}

// waitConverted waits for the operator to roll out the added entries.
func (o *NetworkOptions) waitConverted(ctx context.Context, res *NetworkResult, added *network.Added) error {
	goal := network.Goal{FailOnDegraded: true}
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
	revert := o.inv.Command("network --revert --yes")
	var degraded *network.DegradedError
	switch {
	case errors.As(err, &degraded):
		res.Outcome = OutcomeDegraded
		res.Message = fmt.Sprintf("the network operator refused the change: Degraded, reason %s: %s", degraded.Operator.Reason, degraded.Operator.Message)
		fmt.Fprintf(o.ErrOut, "The network operator did not apply IPv6: it is Degraded (%s).\n  %s\nThe cluster stays IPv4-only. To remove exactly the entries this command added:\n  %s\n",
			degraded.Operator.Reason, degraded.Operator.Message, revert)
		return o.finish(res, errors.New(res.Message))
	case errors.Is(err, network.ErrTimeout):
		res.Outcome = OutcomeTimedOut
		res.Message = fmt.Sprintf("the network operator did not finish within --timeout %s: %v", o.Timeout, err)
		fmt.Fprintf(o.ErrOut, "The patch is in place; the operator may still roll it out. Check again with: %s network --timeout 30m; or undo it: %s\n", o.inv.DisplayName, revert)
		return o.finish(res, errors.New(res.Message))
	case err != nil:
		return err
	}
	res.Outcome = OutcomeConverted
	res.Message = fmt.Sprintf("dual-stack: status.clusterNetwork [%s], status.serviceNetwork [%s]; network operator %s",
		strings.Join(network.CIDRs(seen.Network.StatusClusterNetwork), ", "), strings.Join(seen.Network.StatusServiceNetwork, ", "), seen.Operator)
	pods, err := network.IPv4OnlyPods(ctx, o.clients.Kube)
	if err != nil {
		fmt.Fprintf(o.ErrOut, "warning: could not list pods to find IPv4-only ones: %v\n", kube.Explain("listing pods", err))
	}
	res.IPv4OnlyPods = pods
	return o.finish(res, nil)
}

func (o *NetworkOptions) revertOpenShift(ctx context.Context, res *NetworkResult) error {
	store := o.store
	j, err := store.Load(ctx)
	if err != nil {
		return kube.Explain("reading the journal", err)
	}
	e, ok := j.Get(networkJournalID)
	if !ok || e.State == journal.Undone || e.State == journal.Failed {
		res.Outcome = OutcomeNothingToRevert
		res.Message = fmt.Sprintf("nothing to revert: the journal %s records no IPv6 entries added by this command", store.Location())
		return o.finish(res, nil)
	}
	added := &network.Added{ServiceNetwork: e.Undo["serviceNetwork"]}
	if c := e.Undo["clusterNetwork"]; c != "" {
		hp, _ := strconv.ParseInt(e.Undo["hostPrefix"], 10, 64)
		added.ClusterNetwork = &network.ClusterNetworkEntry{CIDR: c, HostPrefix: hp}
	}
	res.Added = added
	nc, err := network.ReadNetworkConfig(ctx, o.clients.Dynamic)
	if err != nil {
		return kube.Explain("reading "+network.NetworkResource, err)
	}
	res.Patch = network.RevertPatch(nc, *added)
	if len(res.Patch) == 0 {
		if o.dryRun == cli.DryRunNone {
			_ = store.SetState(ctx, networkJournalID, journal.Undone, nil)
		}
		res.Outcome = OutcomeNothingToRevert
		res.Message = "nothing to revert: none of the recorded entries is in the spec any more"
		return o.finish(res, nil)
	}
	if done, err := o.showAndConfirm(ctx, res, "network --revert", "Remove these entries from "+network.NetworkResource+"?"); done {
		return err
	}
	if _, err := o.patch(ctx, res.Patch); err != nil {
		if o.concurrentChange(ctx, nc, err) {
			res.Outcome = OutcomeConflict
			res.Message = fmt.Sprintf("nothing was changed: %s was changed by someone else meanwhile; re-run --revert", network.NetworkResource)
			return o.finish(res, errors.New(res.Message))
		}
		return kube.Explain("patching "+network.NetworkResource, err)
	}
	if o.dryRun == cli.DryRunServer {
		res.Outcome, res.Message = OutcomeDryRun, "dry run (server): the API server accepted the removal; nothing was persisted"
		return o.finish(res, nil)
	}
	if err := store.SetState(ctx, networkJournalID, journal.Undone, nil); err != nil {
		fmt.Fprintf(o.ErrOut, "warning: reverted, but could not record it in the journal: %v\n", err)
	}
	goal := network.Goal{}
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
	if errors.Is(err, network.ErrTimeout) {
		res.Outcome = OutcomeTimedOut
		res.Message = fmt.Sprintf("the entries were removed from spec, but the network operator did not settle within --timeout %s: %v", o.Timeout, err)
		return o.finish(res, errors.New(res.Message))
	} else if err != nil {
		return err
	}
	res.Outcome = OutcomeReverted
	res.Message = fmt.Sprintf("removed the IPv6 entries this command added; network operator %s", seen.Operator)
	return o.finish(res, nil)
}

func (o *NetworkOptions) planKubeadm(ctx context.Context, res *NetworkResult, nodes []corev1.Node) error {
	res.Action = "plan"
	flags, err := network.ReadClusterFlags(ctx, o.clients.Kube)
	if err != nil {
		return kube.Explain("reading the control-plane configuration", err)
	}
	if flags.DualStack() {
		res.Outcome = OutcomeAlreadyDualStack
		res.Message = "nothing to do: the control plane already runs with IPv4 and IPv6 ranges"
		return o.finish(res, nil)
	}
	if err := o.request.CheckNodeMask(); err != nil {
		return &cli.UsageError{Err: err}
	}
	reserved := append(flags.Reserved(), network.ReservedFromAddresses("IPv6 InternalIP of a node:", network.NodeIPv6Addresses(nodes))...)
	if err := o.request.CheckReserved(reserved); err != nil {
		return &cli.UsageError{Err: err}
	}
	plan := network.KubeadmPlan(res.Cluster.Kind, flags, o.request, nodes)
	res.Plan = &plan
	entry := o.request.ClusterEntry()
	res.Added = &network.Added{ClusterNetwork: &entry, ServiceNetwork: o.request.ServiceNetwork.String()}
	res.Outcome = OutcomePlanned
	res.Message = fmt.Sprintf("%d changes planned; nothing was changed (apply them on the hosts)", len(plan.Changes))
	return o.finish(res, nil)
}

func (o *NetworkOptions) patch(ctx context.Context, ops []network.PatchOp) (*unstructured.Unstructured, error) {
	body, err := network.MarshalPatch(ops)
	if err != nil {
		return nil, err
	}
	opts := metav1.PatchOptions{}
	if o.dryRun == cli.DryRunServer {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return o.clients.Dynamic.Resource(platform.NetworksGVR).Patch(ctx, network.NetworkConfigName, types.JSONPatchType, body, opts)
}

// concurrentChange tells whether a patch failed because the Network config
// changed after it was read (the patch's test operations failed).
func (o *NetworkOptions) concurrentChange(ctx context.Context, read *network.NetworkConfig, err error) bool {
	if network.IsTestFailed(err) {
		return true
	}
	if !network.IsRejectedPatch(err) {
		return false
	}
	now, rerr := network.ReadNetworkConfig(ctx, o.clients.Dynamic)
	return rerr == nil && network.ChangedSince(read, now)
}

func (o *NetworkOptions) wait(ctx context.Context, what string, goal network.Goal) (network.Observed, error) {
	p := cli.NewProgress(o.ErrOut)
	p.Start(fmt.Sprintf("%s (timeout %s)", what, o.Timeout))
	seen, err := network.Wait(ctx, o.clients.Dynamic, goal, o.Timeout, func(s network.Observed) { p.Update(s.Describe()) })
	if err != nil {
		p.Done("")
	} else {
		p.Done("network operator: " + seen.Operator.String())
	}
	return seen, err
}

// showPatch prints the patch before it is sent (to stdout for the table
// format; -o json|yaml carry it in the result).
func (o *NetworkOptions) showPatch(ops []network.PatchOp) {
	if o.Output.Structured() {
		return
	}
	b, _ := json.MarshalIndent(ops, "", "  ")
	fmt.Fprintf(o.Out, "JSON patch for %s:\n%s\n", network.NetworkResource, b)
}

// finish prints the result and returns err (already explained on stderr
// where it needed more than one line).
func (o *NetworkOptions) finish(res *NetworkResult, err error) error {
	o.result = res
	if perr := o.Output.Print(o.Out, res, func(w io.Writer, _ bool) error { return printNetworkResult(w, res) }); perr != nil {
		return perr
	}
	return err
}

func printNetworkResult(w io.Writer, res *NetworkResult) error {
	if res.Plan != nil {
		tw := printers.GetNewTabWriter(w)
		fmt.Fprintln(tw, "COMPONENT\tSETTING\tCURRENT\tDESIRED\tWHERE")
		for _, c := range res.Plan.Changes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Component, c.Setting, dash(c.Current), c.Desired, c.Where)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, c := range res.Plan.Changes {
			if c.Note != "" {
				fmt.Fprintf(w, "note: %s %s: %s\n", c.Component, c.Setting, c.Note)
			}
		}
		for _, n := range res.Plan.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
		if res.Plan.KindConfig != "" {
			fmt.Fprintf(w, "kind config for a dual-stack cluster:\n%s", res.Plan.KindConfig)
		}
	}
	fmt.Fprintln(w, res.Message)
	if res.Outcome == OutcomeConverted {
		fmt.Fprintln(w, "Existing pods keep their IPv4-only addresses: re-create them (e.g. kubectl rollout restart) to get IPv6.")
		if len(res.IPv4OnlyPods) == 0 {
			fmt.Fprintln(w, "No running pod on the pod network is IPv4-only.")
		} else {
			parts := make([]string, 0, len(res.IPv4OnlyPods))
			for _, p := range res.IPv4OnlyPods {
				parts = append(parts, fmt.Sprintf("%s (%d)", p.Namespace, p.Pods))
			}
			fmt.Fprintf(w, "Namespaces with IPv4-only pods: %s\n", strings.Join(parts, ", "))
		}
	}
	return nil
}

func statusOf(nc *network.NetworkConfig) *NetworkStatus {
	return &NetworkStatus{ClusterNetwork: nc.StatusClusterNetwork, ServiceNetwork: nc.StatusServiceNetwork}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
