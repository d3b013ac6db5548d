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
	inv              Invocation
	factory          *kube.Factory
	clients          *kube.Clients
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

Exit status: 0 when no check failed, 1 when one did, 2 on bad usage.`,
		Example: fmt.Sprintf(`  # The report as a table, with fixes underneath
  %[1]s status

  # Machine-readable, with stable field names (checks[], summary)
  %[1]s status -o json`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
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
	return cmd
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
	facts, err := status.Gather(ctx, o.clients.Kube, o.clients.Dynamic)
	if err != nil {
		return fmt.Errorf("reading the cluster: %w", err)
	}
	res := StatusResult{Cluster: facts.Platform, Report: status.Evaluate(facts, o.inv.DisplayName)}
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
