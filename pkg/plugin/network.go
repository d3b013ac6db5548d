package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
)

// NetworkResult is what `network -o json|yaml` prints: the transaction's
// result, from pkg/network.
type NetworkResult = network.Result

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
		Short: "Add IPv6 to the cluster network (OpenShift, kubeadm), or plan it (kind)",
		Long: `Make the cluster network (the overlay) IPv4/IPv6 dual-stack.

OpenShift: append an IPv6 cluster network and service network to
networks.config.openshift.io/cluster (IPv4 stays first), after checking that
the network type, the nodes' addresses and the platform allow it, then wait
until the network operator has rolled them out: the Network status lists them
and the network ClusterOperator is Available, not Progressing, not Degraded.
The change is recorded in the journal; --revert removes exactly what was added.
On AWS the operator refuses converting an installed cluster (since 4.11):
this command says so and stops, unless --force.

kubeadm: read the current flags of kube-apiserver, kube-controller-manager,
kube-proxy and kubeadm-config, and print the exact changes per component and
node. With --yes, make the ones kept in the API (kubeadm-config's podSubnet
and serviceSubnet, so the next 'kubeadm upgrade' and 'join' keep the new
flags, and kube-proxy's clusterCIDR; each original journalled, --revert
restores it byte for byte), then wait up to --timeout for the host-side
changes (static pod flags, kubelet --node-ip: this tool does not edit the
hosts) to show in the API: every node with both InternalIP families and the
apiserver giving Services both families; then restart kube-proxy.

kind: print the same changes and a kind config that creates the cluster
dual-stack (kind cannot change the network in place).

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
	facts, err := convert.Gather(ctx, o.clients)
	if err != nil {
		return err
	}
	info, nodes := facts.Platform, facts.Nodes
	res := &NetworkResult{Cluster: info, Action: "convert"}
	if o.Revert {
		res.Action = "revert"
	}
	if o.dryRun != cli.DryRunNone {
		res.DryRun = string(o.dryRun)
	}
	ov := o.overlay()
	// The journal and the lock, for the kinds this command changes.
	openJournal := func() (func(), error) {
		store, release, err := o.Journal.open(ctx, o.clients.Kube, o.dryRun, "network")
		if err != nil {
			return nil, err
		}
		o.store, ov.Journal = store, store
		return release, nil
	}
	switch info.Kind {
	case platform.OpenShift:
		res.Mode = "openshift"
		release, err := openJournal()
		if err != nil {
			return err
		}
		defer release()
		if o.Revert {
			return ov.Revert(ctx, res)
		}
		return ov.Convert(ctx, res, nodes)
	case platform.KindKind:
		res.Mode = "kind"
		if o.Revert {
			return cli.Usagef("--revert undoes what network changed; on kind this command only plans (kind cannot change the network in place), so there is nothing to revert")
		}
		return ov.PlanKubeadm(ctx, res, nodes)
	case platform.Kubeadm:
		res.Mode = "kubeadm"
		if o.dryRun == cli.DryRunServer {
			return cli.Usagef("--dry-run=server is not supported on kubeadm (the ConfigMap edits are shown in full by --dry-run=client -o yaml)")
		}
		release, err := openJournal()
		if err != nil {
			return err
		}
		defer release()
		if o.Revert {
			res.Action = "revert"
			return ov.RevertKubeadm(ctx, res)
		}
		return ov.ConvertKubeadm(ctx, res, nodes)
	default:
		return fmt.Errorf("%s network handles OpenShift, kubeadm and kind clusters; this one looks like %s (%s), whose network is configured by its provider",
			o.inv.DisplayName, info.Kind, strings.Join(info.Evidence, "; "))
	}
}

// overlay is the domain transaction, wired to this command's flags,
// streams and printing.
func (o *NetworkOptions) overlay() *network.Overlay {
	return &network.Overlay{
		Kube: o.clients.Kube, Dynamic: o.clients.Dynamic, Journal: o.store,
		DryRun: o.dryRun, Request: o.request, Force: o.Force, Timeout: o.Timeout,
		Command: o.inv.DisplayName, Log: o.ErrOut,
		Show: o.showPatch,
		Confirm: func(ctx context.Context, command, question string) error {
			return o.Mutation.Confirm(ctx, o.IOStreams, command, question)
		},
		Report: o.print,
	}
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

// print prints the result; upgrade reads it from result.
func (o *NetworkOptions) print(res *NetworkResult) {
	o.result = res
	if err := o.Output.Print(o.Out, res, func(w io.Writer, _ bool) error { return printNetworkResult(w, res) }); err != nil {
		fmt.Fprintf(o.ErrOut, "warning: printing the result: %v\n", err)
	}
}

func printNetworkResult(w io.Writer, res *NetworkResult) error {
	if res.Plan != nil {
		tw := printers.GetNewTabWriter(w)
		fmt.Fprintln(tw, "COMPONENT\tSETTING\tCURRENT\tDESIRED\tBY\tWHERE")
		for _, c := range res.Plan.Changes {
			by := "you, on the host"
			if c.InAPI {
				by = "this tool"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Component, c.Setting, dash(c.Current), c.Desired, by, c.Where)
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
	if res.Outcome == network.OutcomeConverted {
		fmt.Fprintln(w, "Existing pods keep their IPv4-only addresses: re-create them (e.g. kubectl rollout restart) to get IPv6.")
		switch {
		case !res.PodsChecked:
			// the warning said why the pods were not listed
		case len(res.IPv4OnlyPods) == 0:
			fmt.Fprintln(w, "No running pod on the pod network is IPv4-only.")
		default:
			parts := make([]string, 0, len(res.IPv4OnlyPods))
			for _, p := range res.IPv4OnlyPods {
				parts = append(parts, fmt.Sprintf("%s (%d)", p.Namespace, p.Pods))
			}
			fmt.Fprintf(w, "Namespaces with IPv4-only pods: %s\n", strings.Join(parts, ", "))
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
