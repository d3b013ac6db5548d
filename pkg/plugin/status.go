package plugin

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/istio"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/platform"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/report"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/status"
)

// StatusOptions runs the read-only readiness report.
type StatusOptions struct {
	Output           *cli.OutputFlags
	PrintIstioValues bool
	// fleet is --all-contexts / --contexts: one row per context instead.
	fleet   *FleetOptions
	inv     Invocation
	factory *kube.Factory
	clients *kube.Clients
	genericiooptions.IOStreams
}

// StatusResult is what `status -o json|yaml` prints: the cluster as detected,
// then checks[] and summary. Field names are stable.
type StatusResult struct {
	Cluster platform.Info `json:"cluster"`
	report.Report
}

// NewCmdStatus builds `status`.
func NewCmdStatus(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &StatusOptions{
		Output:    cli.NewOutputFlags(cli.FormatTable, cli.FormatWide, cli.FormatJSON, cli.FormatYAML),
		factory:   factory,
		inv:       inv,
		IOStreams: streams,
	}
	o.fleet = &FleetOptions{Output: o.Output, inv: inv, factory: factory, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Report, read-only, how ready each layer of the cluster is for IPv4/IPv6 dual-stack",
		Long: `Report, without changing anything, how ready the cluster is for IPv4/IPv6
dual-stack, layer by layer: the cluster (Kubernetes version, platform), the
AWS underlay (VPC, subnets, routes, security groups, instances, load
balancers; when AWS can be reached), the overlay (node addresses, pod and
service ranges, the OpenShift Network config) and the mesh (istiod and
ISTIO_DUAL_STACK, the ingress gateway Service and its load balancer).
Each check is PASS, WARN, FAIL or SKIP, with the fix for what is not ready.

With --all-contexts (or --contexts a,b,c) it reports every context of the
kubeconfig at once, one row each: the cluster, its platform and version, the
worst verdict of each layer (underlay, overlay, mesh, edge: the ingress
gateway) and how many checks failed. Clusters are read concurrently
(--parallel), each within --request-timeout (default 1m); one that cannot be
read is a row with its error. AWS is read only for clusters on AWS, with the
AWS_PROFILE of the context's exec credential plugin when it sets one (as
aws eks update-kubeconfig --profile does), else the standard chain. -o json
or yaml holds each cluster's full report; -o wide adds columns and prints
each report underneath.

Exit status: 0 when no check failed, 1 when one did (or, with several
contexts, when a cluster could not be read), 2 on bad usage.`,
		Example: fmt.Sprintf(`  # The report as a table, with fixes underneath
  %[1]s status

  # Machine-readable, with stable field names (checks[], summary)
  %[1]s status -o json

  # Every cluster of the kubeconfig, one row each, 10 seconds at most per cluster
  %[1]s status --all-contexts --request-timeout 10s

  # Some of them, with each cluster's full report
  %[1]s status --contexts prod-east,prod-west -o json`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.fleet.requested() {
				return o.runFleet(cmd)
			}
			// Flags first: a bad -o is a usage error even without a cluster.
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.Output.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.PrintIstioValues, "print-istio-values", false,
		"Print the istioctl flags, Helm values or Sail Istio patch that enable ISTIO_DUAL_STACK for the install method found, and nothing else")
	o.fleet.addFlags(cmd)
	return cmd
}

// runFleet is status with --all-contexts or --contexts.
func (o *StatusOptions) runFleet(cmd *cobra.Command) error {
	if o.PrintIstioValues {
		return cli.Usagef("--print-istio-values reads one cluster: pick it with --context instead of --all-contexts or --contexts")
	}
	if err := o.fleet.Validate(cmd); err != nil {
		return err
	}
	if err := o.fleet.Complete(); err != nil {
		return err
	}
	return o.fleet.Run(cmd.Context())
}

// Complete builds the clients from the kubeconfig flags.
func (o *StatusOptions) Complete() error {
	c, err := o.factory.Clients()
	if err != nil {
		return err
	}
	o.clients = c
	return nil
}

// Validate checks the flags.
func (o *StatusOptions) Validate() error { return o.Output.Validate() }

// Run gathers, judges and prints; cli.SilentFailure when a check failed.
func (o *StatusOptions) Run(ctx context.Context) error {
	if o.PrintIstioValues {
		facts, err := istio.Inspect(ctx, o.clients.Kube, o.clients.Dynamic)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(o.Out, istio.EnableInstructions(facts))
		return err
	}
	res, err := readStatus(ctx, o.clients, status.Options{AWSProfile: o.factory.AWSProfile()}, o.inv.DisplayName)
	if err != nil {
		return err
	}
	paint := cli.NewPainter(o.Out)
	if err := o.Output.Print(o.Out, res, func(w io.Writer, wide bool) error {
		return res.Report.PrintTable(w, wide, paint)
	}); err != nil {
		return err
	}
	if res.Failed() {
		return cli.SilentFailure
	}
	return nil
}

// readStatus gathers and judges one cluster; command is how the user runs
// the plugin, for the fixes.
func readStatus(ctx context.Context, c *kube.Clients, opts status.Options, command string) (StatusResult, error) {
	facts, err := status.Gather(ctx, c.Kube, c.Dynamic, opts)
	if err != nil {
		return StatusResult{}, fmt.Errorf("reading the cluster: %w", err)
	}
	return StatusResult{Cluster: facts.Platform, Report: status.Evaluate(facts, command)}, nil
}
