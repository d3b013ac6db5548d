package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/journal"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/mesh"
)

// Outcomes of `mesh`, as -o json reports them (--revert's are Revert*).
const (
	MeshPlanned      = "planned"
	MeshConverted    = "converted"
	MeshNothingToDo  = "nothing-to-do"
	MeshBlocked      = "blocked"
	MeshNotConfirmed = "not-confirmed"
	MeshFailed       = "failed"
)

// MeshResult is what `mesh -o json|yaml` prints. Field names are stable.
type MeshResult struct {
	Outcome string               `json:"outcome"`
	Message string               `json:"message"`
	Plan    *mesh.Plan           `json:"plan,omitempty"`
	Applied *mesh.Result         `json:"applied,omitempty"`
	Revert  []journal.UndoResult `json:"revert,omitempty"`
	Journal string               `json:"journal,omitempty"`
}

// MeshOptions runs `mesh`.
type MeshOptions struct {
	Options  mesh.Options
	Require  bool
	Revert   bool
	Journal  journalFlag
	Mutation *cli.MutationFlags
	Output   *cli.OutputFlags

	inv     Invocation
	factory *kube.Factory
	dryRun  cli.DryRun
	genericiooptions.IOStreams
}

// NewCmdMesh builds `mesh`.
func NewCmdMesh(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	o := &MeshOptions{
		Options:  mesh.Options{Timeout: 10 * time.Minute},
		Mutation: cli.NewMutationFlags(),
		Output:   cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML),
		inv:      inv, factory: factory, IOStreams: streams,
	}
	cmd := &cobra.Command{
		Use:   "mesh",
		Short: "Turn on Istio's dual-stack mode through the install method found",
		Long: `Turn on Istio's dual-stack mode: ISTIO_DUAL_STACK=true in istiod's env and
in meshConfig.defaultConfig.proxyMetadata, and istiod's own Service with both
families, changed where the install method keeps them, never behind its back:

  Sail operator   a merge patch of the Istio resource's spec.values
  istioctl/plain  istiod's Deployment env, the istio ConfigMap's mesh config
                  (only the lines needed, the rest byte for byte) and
                  istiod's Service; the plan prints the --set flags the next
                  'istioctl install' needs to keep them
  Helm            a Helm upgrade of istiod's release through Helm's SDK, with
                  the release's own chart and values plus the dual-stack
                  values (as 'helm upgrade --reuse-values --set ...'), so
                  the next 'helm upgrade --reuse-values' keeps them; the
                  release records are read where helm keeps them
                  (HELM_DRIVER, Secrets by default); --revert is a Helm
                  rollback to the revision before

Each original value is journalled before it is changed, every write carries
the resourceVersion the plan read (a concurrent change is refused), and the
command waits for istiod's rollout. Proxies take the setting when their pods
are re-created (the workloads command). --revert gives every object its
original back, leaving one changed since.`,
		Example: fmt.Sprintf(`  %[1]s mesh --dry-run=client
  %[1]s mesh --yes
  %[1]s mesh --require --yes -o json
  %[1]s mesh --revert --yes`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(cmd); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Require, "require", false, "Give istiod's Service ipFamilyPolicy RequireDualStack instead of PreferDualStack")
	f.DurationVar(&o.Options.Timeout, "timeout", o.Options.Timeout, "How long to wait for istiod's rollout")
	f.BoolVar(&o.Revert, "revert", false, "Give Istio's objects their original settings back (from the journal)")
	o.Journal.add(cmd)
	o.Mutation.AddFlags(cmd)
	o.Output.AddFlags(cmd)
	return cmd
}

// Validate checks the flags, before any cluster is contacted.
func (o *MeshOptions) Validate(cmd *cobra.Command) error {
	d, err := clientDryRunOnly(o.Output, o.Mutation, "mesh", "")
	if err != nil {
		return err
	}
	o.dryRun = d
	if o.Revert {
		for _, name := range []string{"require", "timeout"} {
			if flagSet(cmd, name) != nil {
				return cli.Usagef("--revert takes back what the journal recorded: it takes no --%s", name)
			}
		}
		return nil
	}
	o.Options.Policy = corev1.IPFamilyPolicyPreferDualStack
	if o.Require {
		o.Options.Policy = corev1.IPFamilyPolicyRequireDualStack
	}
	return o.Options.Validate()
}

// Run plans, shows, asks and applies (or reverts).
func (o *MeshOptions) Run(ctx context.Context) error {
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
	c := &mesh.Converter{Kube: kc.Kube, Dynamic: kc.Dynamic, Helm: mesh.HelmFor(kc), Journal: store, Options: o.Options, Log: o.ErrOut}
	plan, err := c.Plan(ctx)
	if err != nil {
		return err
	}
	res := &MeshResult{Plan: plan, Journal: store.Location()}
	if !o.Output.Structured() {
		printMeshPlan(o.Out, plan)
	}
	switch {
	case plan.Action == mesh.ActionBlocked:
		res.Outcome, res.Message = MeshBlocked, "nothing was changed: "+plan.Blocker
		return o.print(res, errors.New(res.Message))
	case plan.Action == mesh.ActionNothing:
		res.Outcome, res.Message = MeshNothingToDo, "nothing to do: "+plan.Summary
		return o.print(res, nil)
	case o.dryRun == cli.DryRunClient:
		res.Outcome, res.Message = MeshPlanned, "dry run (client): nothing was changed; would "+plan.Summary
		return o.print(res, nil)
	}
	if err := o.Mutation.Confirm(ctx, o.IOStreams, o.inv.Command("mesh"), "Change Istio's objects?"); err != nil {
		if errors.Is(err, cli.ErrNotConfirmed) {
			res.Outcome, res.Message = MeshNotConfirmed, "nothing was changed"
			_ = o.print(res, nil)
		}
		return err
	}
	_, release, err := o.Journal.open(ctx, kc.Kube, o.dryRun, "mesh")
	if err != nil {
		return err
	}
	defer release()
	res.Applied, err = c.Apply(ctx, plan)
	if err != nil {
		res.Outcome = MeshFailed
		res.Message = fmt.Sprintf("%v; what was changed is in the journal %s: `%s` takes it back", err, store.Location(), o.inv.Command("mesh --revert"))
		return o.print(res, errors.New(res.Message))
	}
	res.Outcome, res.Message = MeshConverted, res.Applied.Message
	return o.print(res, nil)
}

func (o *MeshOptions) revert(ctx context.Context, kc *kube.Clients) error {
	r := revertRun{command: "mesh --revert", what: "Istio change", undoable: mesh.Undoable,
		rollback: func(ctx context.Context, store *journal.Store) ([]journal.UndoResult, error) {
			return mesh.Rollback(ctx, kc.Kube, kc.Dynamic, mesh.HelmFor(kc), store)
		},
		done: "restored Istio's settings; proxies keep dual-stack until their pods are re-created"}
	out, err := r.run(ctx, &o.Journal, kc, o.dryRun, o.Mutation, o.IOStreams, o.Output.Structured(), o.inv)
	if out == nil {
		return err
	}
	res := &MeshResult{Outcome: out.Outcome, Message: out.Message, Revert: out.Results, Journal: out.Journal}
	if errors.Is(err, cli.ErrNotConfirmed) {
		_ = o.print(res, nil)
		return err
	}
	return o.print(res, err)
}

func (o *MeshOptions) print(res *MeshResult, failure error) error {
	return printOutcome(o.Output, o.IOStreams, res, res.Message, failure != nil, func(w io.Writer) {
		if res.Revert != nil && res.Outcome != RevertPlanned && res.Outcome != RevertNotConfirm {
			printRevert(w, res.Revert)
		}
	})
}

func printMeshPlan(w io.Writer, p *mesh.Plan) {
	if p.Istiod != "" {
		fmt.Fprintf(w, "istiod %s/%s %s, installed with %s\n", p.Namespace, p.Istiod, p.Version, p.Method)
	}
	if p.Env != nil && p.Env.Change {
		fmt.Fprintf(w, "  env ISTIO_DUAL_STACK=true in %s/%s container %s\n", p.Env.Namespace, p.Env.Deployment, p.Env.Container)
	}
	if mc := p.MeshConfig; mc != nil && mc.Change {
		fmt.Fprintf(w, "  mesh config %s/%s [%s] (%s edit):\n", mc.Namespace, mc.Name, mc.Key, mc.Edit)
		for _, d := range mc.Diff {
			fmt.Fprintf(w, "    %s\n", d)
		}
	}
	if sp := p.Service; sp != nil && sp.Change {
		fmt.Fprintf(w, "  Service %s/%s: %s %v -> %s %v\n", sp.Namespace, sp.Name, sp.Policy, sp.Families, sp.TargetPolicy, sp.TargetFamilies)
	}
	if s := p.Sail; s != nil {
		for _, c := range s.Changes {
			was := c.Original
			if !c.Present {
				was = "(unset)"
			}
			fmt.Fprintf(w, "  Istio %s spec.%s: %s -> %s\n", s.Name, strings.Join(c.Path, "."), was, c.Target)
		}
	}
	if h := p.Helm; h != nil {
		fmt.Fprintf(w, "  Helm release %s/%s revision %d (%s %s), upgraded with its own values plus:\n", h.Namespace, h.Release, h.Revision, h.Chart, h.ChartVersion)
		for _, c := range h.Changes {
			was := c.Original
			if !c.Present {
				was = "(unset)"
			}
			fmt.Fprintf(w, "    %s: %s -> %s\n", strings.Join(c.Path, "."), was, c.Target)
		}
		if sp := h.Service; sp != nil && sp.Change {
			fmt.Fprintf(w, "  Service %s/%s (rendered by the chart): %s %v -> %s %v\n", sp.Namespace, sp.Name, sp.Policy, sp.Families, sp.TargetPolicy, sp.TargetFamilies)
		}
	}
	if p.HelmCommand != "" && (p.Helm == nil || p.Blocker != "") {
		fmt.Fprintf(w, "  helm: %s\n", p.HelmCommand)
	}
	for _, f := range p.IstioctlFlags {
		fmt.Fprintf(w, "  istioctl install keeps it with: %s\n", f)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w, p.Summary)
}
