package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/nodes"
)

// Outcomes of `nodes`, as -o json reports them.
const (
	NodesPlanned      = "planned" // --dry-run=client
	NodesConverted    = "converted"
	NodesNothingToDo  = "nothing-to-do"
	NodesBlocked      = "blocked"
	NodesNotConfirmed = "not-confirmed"
	NodesFailed       = "failed"
)

// NodesResult is what `nodes -o json|yaml` prints. Field names are stable.
type NodesResult struct {
	Outcome string        `json:"outcome"`
	Message string        `json:"message"`
	Plan    *nodes.Plan   `json:"plan,omitempty"`
	Applied *nodes.Result `json:"applied,omitempty"`
	// Wait is the nodes as the wait last saw them.
	Wait    *nodes.WaitResult      `json:"wait,omitempty"`
	Revert  []nodes.RollbackResult `json:"revert,omitempty"`
	Journal string                 `json:"journal,omitempty"`
}

// NodesOptions runs `nodes`.
type NodesOptions struct {
	Options     nodes.Options
	CloudConfig string
	Revert      bool
	Journal     journalFlag
	Mutation    *cli.MutationFlags
	Output      *cli.OutputFlags

	inv     Invocation
	factory *kube.Factory
	dryRun  cli.DryRun
	genericiooptions.IOStreams
}

// NewCmdNodes builds `nodes`.
func NewCmdNodes(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &NodesOptions{
		Options:  nodes.Options{Timeout: 15 * time.Minute},
		Mutation: cli.NewMutationFlags(),
		Output:   cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		inv:      inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "Make the nodes report an IPv6 InternalIP (the AWS cloud provider's NodeIPFamilies)",
		Long: `Make every node report an IPv4 and an IPv6 InternalIP.

On AWS a node's addresses come from the cloud provider (cloud-provider-aws),
which reports only the families its cloud config lists in NodeIPFamilies
under [Global]: ipv4 alone unless told. This command adds
"NodeIPFamilies = ipv4" and "NodeIPFamilies = ipv6" there, keeping the rest
of the text byte for byte, then waits (watching the nodes) until every node
has both InternalIPs. The cloud config is found where the cluster keeps it:
OpenShift's openshift-config/cloud-provider-config (its operators copy it to
the cloud controller and restart it), else the ConfigMap behind the cloud
controller's --cloud-config (it is restarted, as it reads its config only at
start), else kube-system/cloud-config; --cloud-config names it instead.

A node whose kubelet runs with an IPv4-only --node-ip keeps only that
address whatever the cloud config says: the plan names the change its host
needs (--node-ip=<IPv4>,<IPv6>), and the wait names each node still without
IPv6 with the likely cause. The nodes need IPv6 on their instances first
(aws apply). The original text is recorded in the journal before the
change; --revert puts it back byte for byte.`,
		Example: fmt.Sprintf(`  %[1]s nodes --dry-run=client
  %[1]s nodes --yes
  %[1]s nodes --cloud-config kube-system/aws-cloud-config:cloud.conf --yes -o json
  %[1]s nodes --revert --yes`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(cmd); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.CloudConfig, "cloud-config", "", "The ConfigMap and key holding the cloud provider's config, as NAMESPACE/NAME:KEY (default: found)")
	f.StringVar(&o.Options.CCMNamespace, "ccm-namespace", nodes.DefaultCCMNamespace, "Where to look for the cloud controller's DaemonSet or Deployment (outside OpenShift)")
	f.DurationVar(&o.Options.Timeout, "timeout", o.Options.Timeout, "How long to wait for every node to report an IPv6 InternalIP")
	f.BoolVar(&o.Revert, "revert", false, "Give the cloud config its original text back (from the journal) and restart the cloud controller this command restarted")
	o.Journal.add(cmd)
	o.Mutation.AddFlags(cmd)
	o.Output.AddFlags(cmd)
	return cmd
}

// Validate checks the flags, before any cluster is contacted.
func (o *NodesOptions) Validate(cmd *cobra.Command) error {
	d, err := clientDryRunOnly(o.Output, o.Mutation, "nodes", "a ConfigMap update the apiserver accepts proves nothing about the cloud controller")
	if err != nil {
		return err
	}
	o.dryRun = d
	if o.Revert {
		for _, name := range []string{"cloud-config", "ccm-namespace", "timeout"} {
			if flagSet(cmd, name) != nil {
				return cli.Usagef("--revert takes back what the journal recorded: it takes no --%s", name)
			}
		}
		return nil
	}
	if o.CloudConfig != "" {
		ref, err := parseConfigMapKey(o.CloudConfig)
		if err != nil {
			return err
		}
		o.Options.CloudConfig = ref
	}
	return o.Options.Validate()
}

// parseConfigMapKey reads NAMESPACE/NAME:KEY.
func parseConfigMapKey(s string) (nodes.ConfigMapRef, error) {
	nn, key, ok := strings.Cut(s, ":")
	ns, name, ok2 := strings.Cut(nn, "/")
	if !ok || !ok2 || ns == "" || name == "" || key == "" || strings.Contains(name, "/") {
		return nodes.ConfigMapRef{}, cli.Usagef("--cloud-config %q: want NAMESPACE/NAME:KEY, e.g. kube-system/cloud-config:cloud.conf", s)
	}
	return nodes.ConfigMapRef{Namespace: ns, Name: name, Key: key}, nil
}

// Run plans, shows, asks, applies and waits (or reverts).
func (o *NodesOptions) Run(ctx context.Context) error {
	kc, err := o.factory.Clients()
	if err != nil {
		return err
	}
	store, err := o.Journal.store(ctx, kc.Kube)
	if err != nil {
		return err
	}
	if o.Revert {
		return o.revert(ctx, kc)
	}
	c := &nodes.Converter{Kube: kc.Kube, Journal: store, Options: o.Options}
	plan, err := c.Plan(ctx)
	if err != nil {
		return err
	}
	res := &NodesResult{Plan: plan, Journal: store.Location()}
	if !o.Output.Structured() {
		printNodesPlan(o.Out, plan)
	}
	switch {
	case plan.Action == nodes.ActionBlocked:
		res.Outcome, res.Message = NodesBlocked, "nothing was changed: "+plan.Blocker
		return o.print(res, errors.New(res.Message))
	case plan.Action == nodes.ActionNothing:
		res.Outcome, res.Message = NodesNothingToDo, "nothing to do: "+plan.Summary
		return o.print(res, nil)
	case o.dryRun == cli.DryRunClient:
		res.Outcome, res.Message = NodesPlanned, "dry run (client): nothing was changed; would "+plan.Summary
		return o.print(res, nil)
	}
	if plan.Action == nodes.ActionChange {
		if err := o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("nodes"), "Change the cloud config and wait for the nodes?"); err != nil {
			if errors.Is(err, cli.ErrNotConfirmed) {
				res.Outcome, res.Message = NodesNotConfirmed, "nothing was changed"
				_ = o.print(res, nil)
			}
			return err
		}
	}
	_, release, err := o.Journal.open(ctx, kc.Kube, o.dryRun, "nodes")
	if err != nil {
		return err
	}
	defer release()
	if res.Applied, err = c.Apply(ctx, plan); err != nil {
		res.Outcome = NodesFailed
		res.Message = fmt.Sprintf("%v; what was changed is in the journal %s: `%s` takes it back", err, store.Location(), o.inv.Command("nodes --revert"))
		return o.print(res, errors.New(res.Message))
	}
	if res.Applied.Message != "" && !o.Output.Structured() {
		fmt.Fprintln(o.ErrOut, res.Applied.Message)
	}
	progress := cli.NewProgress(o.ErrOut)
	progress.Start(fmt.Sprintf("waiting for %d nodes to report an IPv6 InternalIP (timeout %s)", len(plan.Nodes), o.Options.Timeout))
	c.Progress = func(msg string) { progress.Update(msg) }
	res.Wait, err = c.Wait(ctx, plan)
	progress.Done("")
	if err != nil {
		res.Outcome = NodesFailed
		res.Message = fmt.Sprintf("%v; run `%s` again once the cause is fixed (it waits again), or `%s` to take the cloud config change back", err, o.inv.Command("nodes --yes"), o.inv.Command("nodes --revert"))
		return o.print(res, errors.New(res.Message))
	}
	res.Outcome = NodesConverted
	res.Message = fmt.Sprintf("all %d nodes report an IPv4 and an IPv6 InternalIP", res.Wait.Total)
	return o.print(res, nil)
}

// revert takes back the cloud config change the journal recorded.
func (o *NodesOptions) revert(ctx context.Context, kc *kube.Clients) error {
	r := revertRun{command: "nodes --revert", what: "cloud config change", undoable: nodes.Undoable,
		rollback: func(ctx context.Context, store *journal.Store) ([]journal.UndoResult, error) {
			return nodes.Rollback(ctx, kc.Kube, store)
		},
		done: "restored the cloud config; the nodes drop their IPv6 InternalIPs when the cloud controller next syncs them"}
	out, err := r.run(ctx, &o.Journal, kc, o.dryRun, o.Mutation, o.IOStreams, o.Output.Structured(), o.inv)
	if out == nil {
		return err
	}
	res := &NodesResult{Outcome: out.Outcome, Message: out.Message, Revert: out.Results, Journal: out.Journal}
	if errors.Is(err, cli.ErrNotConfirmed) {
		_ = o.print(res, nil)
		return err
	}
	return o.print(res, err)
}

func (o *NodesOptions) print(res *NodesResult, failure error) error {
	return printOutcome(o.Output, o.IOStreams, res, res.Message, failure != nil, func(w io.Writer) {
		if res.Wait != nil && res.Outcome == NodesFailed {
			printNodeViews(w, res.Wait.Nodes)
		}
		if res.Revert != nil && res.Outcome != RevertPlanned && res.Outcome != NodesNotConfirmed {
			printRevert(w, res.Revert)
		}
	})
}

func printNodesPlan(w io.Writer, p *nodes.Plan) {
	if c := p.Cloud; c != nil {
		fmt.Fprintf(w, "Cloud config %s (%s): NodeIPFamilies %s", c.ConfigMapRef, c.Source, strings.Join(c.Current, ","))
		if len(c.Current) == 0 {
			fmt.Fprint(w, "unset (ipv4 only)")
		}
		fmt.Fprintln(w)
		for _, d := range c.Diff {
			fmt.Fprintf(w, "  %s\n", d)
		}
	}
	if p.Restart != nil {
		fmt.Fprintf(w, "Restart: %s\n", p.Restart)
	}
	printNodeViews(w, p.Nodes)
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "%s\n", p.Summary)
}

func printNodeViews(w io.Writer, views []nodes.NodeView) {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "NODE\tADDRESSES FROM\tIPV4\tIPV6\tDONE\tHOST CHANGE / CAUSE")
	for _, v := range views {
		note := v.HostChange
		if v.Cause != "" {
			note = v.Cause
		}
		if note == "" {
			note = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\n", v.Name, v.Addresses, dashJoin(v.IPv4), dashJoin(v.IPv6), v.Done, note)
	}
	_ = tw.Flush()
}
