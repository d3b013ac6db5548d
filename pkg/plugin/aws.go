package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	awsx "github.com/kubectl-dualstack/kubectl-dualstack/pkg/aws"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/convert"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/kube"
)

// NewCmdAWS builds `aws` and its subcommands.
func NewCmdAWS(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "aws",
		Short: "Give the cluster's AWS network (VPC, subnets, routes, security groups, instances, NLBs) IPv6",
		Long: fmt.Sprintf(`The AWS underlay of a dual-stack cluster, resolved through the cluster itself:
the OpenShift Infrastructure object (infraID, region, service endpoints), else
the nodes' providerIDs (instances -> VPC -> the kubernetes.io/cluster/<id> tag).
--region, --vpc-id and --infra-id override; credentials and endpoints come from
the AWS SDK's default chain (environment, profiles, SSO, AWS_ENDPOINT_URL).

  %[1]s aws discover     what belongs to the cluster, read-only
  %[1]s aws plan         the changes that would give it IPv6, read-only
  %[1]s aws apply        make them (asks first), recorded for rollback
  %[1]s aws rollback     undo exactly what apply did
  %[1]s aws iam-policy   the least-privilege IAM policy for all of the above`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newCmdAWSDiscover(inv, streams, factory),
		newCmdAWSPlan(inv, streams, factory),
		newCmdAWSApply(inv, streams, factory),
		newCmdAWSRollback(inv, streams, factory),
		newCmdAWSIAMPolicy(inv, streams),
	)
	return cmd
}

// awsTargetFlags say which cluster and AWS account: shared by every aws subcommand.
type awsTargetFlags struct {
	Region, VPCID, InfraID, Profile string
	Journal                         journalFlag
	ForceVPC                        bool
	MaxAWSRPS                       float64
}

func (f *awsTargetFlags) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.Region, "region", "", "AWS region (default: the cluster's, else the AWS SDK's)")
	fl.StringVar(&f.VPCID, "vpc-id", "", "The cluster's VPC (default: found through the cluster)")
	fl.StringVar(&f.InfraID, "infra-id", "", "The cluster's infrastructure ID, as in the kubernetes.io/cluster/<id> tag (default: found through the cluster)")
	fl.StringVar(&f.Profile, "aws-profile", "", "AWS shared config profile (default: AWS_PROFILE, else the default chain)")
	fl.BoolVar(&f.ForceVPC, "force-vpc", false, "Accept a --vpc-id that holds none of the nodes' instances and has no cluster tag (stated in the plan)")
	fl.Float64Var(&f.MaxAWSRPS, "max-aws-rps", 0, "Calls a second per AWS API: below AWS's documented per-API rates to leave room for other tools of the account; above them only for an account whose limits AWS raised (default: AWS's documented rates, e.g. 5/s for EC2's mutating calls)")
}

func (f *awsTargetFlags) addJournalFlag(cmd *cobra.Command) {
	f.Journal.add(cmd)
}

// validate checks the flags on their own (exit 2).
func (f *awsTargetFlags) validate() error {
	if f.MaxAWSRPS < 0 {
		return cli.Usagef("--max-aws-rps must be positive (or 0: AWS's documented rates), got %g", f.MaxAWSRPS)
	}
	return nil
}

// target is the AWS account and VPC the flags name.
func (f *awsTargetFlags) target() convert.Target {
	return convert.Target{Region: f.Region, VPCID: f.VPCID, InfraID: f.InfraID, Profile: f.Profile, ForceVPC: f.ForceVPC, MaxAWSRPS: max(0, f.MaxAWSRPS)}
}

// resolve reads the cluster and builds the AWS clients.
func (f *awsTargetFlags) resolve(ctx context.Context, factory *kube.Factory) (*convert.Account, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	kc, err := factory.Clients()
	if err != nil {
		return nil, err
	}
	facts, err := convert.Gather(ctx, kc)
	if err != nil {
		return nil, err
	}
	return convert.ResolveAWS(ctx, facts, f.target())
}

// inventory resolves the cluster's AWS account and reads its network.
func (f *awsTargetFlags) inventory(ctx context.Context, factory *kube.Factory) (*convert.Account, *awsx.Inventory, error) {
	s, err := f.resolve(ctx, factory)
	if err != nil {
		return nil, nil, err
	}
	inv, err := s.Refresh(ctx)
	return s, inv, err
}

func orNone(s string) string {
	if s == "" {
		return "not set"
	}
	return s
}

// ---- discover

func newCmdAWSDiscover(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	var f awsTargetFlags
	out := cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML)
	cmd := &cobra.Command{
		Use:   "discover",
		Short: "Show, read-only, the cluster's AWS network and how it was found",
		Example: fmt.Sprintf(`  %[1]s aws discover
  %[1]s aws discover -o json
  %[1]s aws discover --vpc-id vpc-0abc --region eu-west-1`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			_, inv, err := f.inventory(cmd.Context(), factory)
			if err != nil {
				return err
			}
			return out.Print(streams.Out, inv, func(w io.Writer, _ bool) error { return printInventory(w, inv) })
		},
	}
	f.addFlags(cmd)
	out.AddFlags(cmd)
	return cmd
}

func printInventory(w io.Writer, inv *awsx.Inventory) error {
	fmt.Fprintf(w, "Cluster %s in %s, VPC %s %s IPv6 %s\n", orNone(inv.InfraID), inv.Region, inv.VPC.ID,
		strings.Join(inv.VPC.IPv4CIDRs, ","), orDash(inv.VPC.IPv6CIDR))
	for _, r := range inv.ResolvedBy {
		fmt.Fprintf(w, "  found by: %s\n", r)
	}
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "\nSUBNET\tNAME\tZONE\tKIND\tIPV4\tIPV6\tROUTE TABLE\tASSIGN IPV6")
	for _, s := range inv.Subnets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%t\n", s.ID, s.Name, s.AZ, kindWord(s.Public), s.IPv4CIDR, orDash(s.IPv6CIDR), s.RouteTableID, s.AssignIPv6OnCreation)
	}
	fmt.Fprintln(tw, "\nROUTE TABLE\tNAME\tMAIN\tSUBNETS\t0.0.0.0/0\t::/0")
	for _, r := range inv.RouteTables {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%d\t%s\t%s\n", r.ID, r.Name, r.Main, len(r.SubnetIDs), orDash(r.IPv4Default), orDash(r.IPv6Default))
	}
	fmt.Fprintln(tw, "\nGATEWAY\tKIND\tNAME")
	for _, g := range inv.InternetGateways {
		fmt.Fprintf(tw, "%s\tinternet\t%s\n", g.ID, g.Name)
	}
	for _, g := range inv.EgressOnlyGateways {
		fmt.Fprintf(tw, "%s\tegress-only internet\t%s\n", g.ID, g.Name)
	}
	for _, g := range inv.NATGateways {
		fmt.Fprintf(tw, "%s\tNAT\t%s\n", g.ID, g.Name)
	}
	fmt.Fprintln(tw, "\nSECURITY GROUP\tNAME\tINGRESS\tEGRESS\tIPV6 RULES")
	for _, g := range inv.SecurityGroups {
		n6 := 0
		for _, r := range append(append([]awsx.Rule{}, g.Ingress...), g.Egress...) {
			n6 += len(r.IPv6)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", g.ID, g.Name, len(g.Ingress), len(g.Egress), n6)
	}
	ipv6 := map[string][]string{}
	for _, e := range inv.NetworkInterfaces {
		ipv6[e.ID] = e.IPv6Addresses
	}
	fmt.Fprintln(tw, "\nINSTANCE\tNAME\tTYPE\tIPV6 SUPPORT\tROLE\tSTATE\tPRIMARY ENI\tENI IPV6")
	for _, in := range inv.Instances {
		role := "worker"
		if in.ControlPlane {
			role = "control-plane"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\t%s\n", in.ID, in.Name, in.Type, in.IPv6Supported, role, in.State, in.PrimaryENI, orDash(strings.Join(ipv6[in.PrimaryENI], ",")))
	}
	fmt.Fprintln(tw, "\nLOAD BALANCER\tTYPE\tSCHEME\tIP ADDRESS TYPE\tSERVICE\tSUBNETS")
	for _, lb := range inv.LoadBalancers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", lb.Name, lb.Type, lb.Scheme, lb.IPAddressType, orDash(lb.Service), len(lb.SubnetIDs))
	}
	fmt.Fprintf(tw, "\n%d subnets, %d route tables, %d security groups, %d instances, %d network interfaces, %d load balancers\n",
		len(inv.Subnets), len(inv.RouteTables), len(inv.SecurityGroups), len(inv.Instances), len(inv.NetworkInterfaces), len(inv.LoadBalancers))
	if err := tw.Flush(); err != nil {
		return err
	}
	printNotes(w, inv.Notes)
	return nil
}

func kindWord(public bool) string {
	if public {
		return "public"
	}
	return "private"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- plan

type awsPlanFlags struct {
	awsTargetFlags
	NewInstanceType          string
	AllowControlPlaneRestart bool
}

func (f *awsPlanFlags) addFlags(cmd *cobra.Command) {
	f.awsTargetFlags.addFlags(cmd)
	cmd.Flags().StringVar(&f.NewInstanceType, "allow-instance-type-change", "",
		"Change instances whose type has no IPv6 support to this type (each is stopped, modified and started, one at a time, its Node Ready again before the next)")
	cmd.Flags().BoolVar(&f.AllowControlPlaneRestart, "allow-control-plane-restart", false,
		"With --allow-instance-type-change, change control-plane instances too (else they are only reported)")
}

func newCmdAWSPlan(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	var f awsPlanFlags
	out := cli.NewOutputFlags(cli.FormatTable, cli.FormatWide, cli.FormatJSON, cli.FormatYAML)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show, read-only, the AWS changes that would make the cluster's network dual-stack",
		Example: fmt.Sprintf(`  %[1]s aws plan
  %[1]s aws plan -o json   # {cluster, changes[] {id, operation, resource, reason, parameters, phase}, notes[]}`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			_, invn, err := f.inventory(cmd.Context(), factory)
			if err != nil {
				return err
			}
			p := awsx.MakePlan(invn, awsx.PlanOptions{NewInstanceType: f.NewInstanceType, AllowControlPlaneRestart: f.AllowControlPlaneRestart, Command: inv.DisplayName})
			return out.Print(streams.Out, p, func(w io.Writer, wide bool) error { return printPlan(w, p, wide) })
		},
	}
	f.addFlags(cmd)
	out.AddFlags(cmd)
	return cmd
}

func printPlan(w io.Writer, p *awsx.Plan, wide bool) error {
	if len(p.Changes) == 0 {
		fmt.Fprintf(w, "No changes: the underlay of VPC %s is already dual-stack.\n", p.Cluster.VPCID)
	} else {
		fmt.Fprintf(w, "Plan for VPC %s (cluster %s, %s): %d changes\n", p.Cluster.VPCID, orNone(p.Cluster.InfraID), p.Cluster.Region, len(p.Changes))
		fmt.Fprintln(w, "Applied phase by phase, in the order below; a phase starts when the one before it is done, and rollback runs them backwards:")
		for ph := awsx.PhaseVPC; ph <= awsx.PhaseAddresses; ph++ {
			fmt.Fprintf(w, "  %d  %s\n", ph, awsx.PhaseNames[ph])
		}
		fmt.Fprintln(w)
		tw := printers.GetNewTabWriter(w)
		header := "PHASE\tOPERATION\tRESOURCE\tREASON"
		if wide {
			header += "\tPARAMETERS"
		}
		fmt.Fprintln(tw, header)
		awsx.SortChanges(p.Changes) // rows in the order apply runs them: by phase
		for _, c := range p.Changes {
			row := fmt.Sprintf("%d\t%s\t%s\t%s", c.Phase, c.Operation, c.Resource, c.Reason)
			if wide {
				row += "\t" + params(c.Parameters)
			}
			fmt.Fprintln(tw, row)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	printNotes(w, p.Notes)
	return nil
}

func printNotes(w io.Writer, notes []awsx.Note) {
	if len(notes) == 0 {
		return
	}
	fmt.Fprintf(w, "\nNot changed (%d):\n", len(notes))
	for _, n := range notes {
		fmt.Fprintf(w, "  - %s: %s\n", n.Resource, n.Message)
		if n.Fix != "" {
			fmt.Fprintf(w, "    fix: %s\n", n.Fix)
		}
	}
}

func params(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

// ---- apply

// AWSApplyResult is what `aws apply -o json|yaml` prints. Field names are stable.
type AWSApplyResult struct {
	Cluster awsx.Cluster  `json:"cluster"`
	DryRun  string        `json:"dryRun"`
	Changes []awsx.Result `json:"changes"`
	Notes   []awsx.Note   `json:"notes"`
}

func newCmdAWSApply(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	var f awsPlanFlags
	mut := cli.NewMutationFlags()
	out := cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML)
	parallel := 4
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make the AWS changes of `aws plan`, after confirmation; recorded for rollback",
		Long: `Plan, show the plan, ask (unless --yes), then apply in dependency order:
the VPC /56 and the egress-only internet gateway; subnet /64s, ::/0 routes
and security group mirrors; AssignIpv6AddressOnCreation; instance type
changes (only with --allow-instance-type-change, one at a time); ENI
addresses and dualstack load balancers. Independent changes run in parallel.

Each AWS API's calls are paced within AWS's documented request limits (EC2:
5 mutating calls a second per API after a burst; AssignIpv6Addresses 100 at
once, then 5 a second), slowing down further when AWS throttles anyway
(other tools share the account's limits); --max-aws-rps leaves them more
room (or, above the documented rates, uses limits AWS raised on request).
On a terminal the progress line says what paces the apply.

Every change is recorded before and after it is made, in AWS tags on what is
created and in the journal ConfigMap, so a re-run resumes and
'aws rollback' undoes exactly this. A second apply changes nothing.`,
		Example: fmt.Sprintf(`  %[1]s aws apply
  %[1]s aws apply --yes -o json
  %[1]s aws apply --dry-run=server   # EC2 checks permissions and parameters, nothing is changed`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := out.Validate(); err != nil {
				return err
			}
			dry, err := mut.Strategy()
			if err != nil {
				return err
			}
			if parallel < 1 {
				return cli.Usagef("--parallel must be at least 1")
			}
			s, invn, err := f.inventory(ctx, factory)
			if err != nil {
				return err
			}
			// The lock is held from before the plan: what is applied is what was planned.
			store, release, err := f.Journal.open(ctx, s.Kube().Kube, dry, "aws apply")
			if err != nil {
				return err
			}
			defer release()
			p := awsx.MakePlan(invn, awsx.PlanOptions{NewInstanceType: f.NewInstanceType, AllowControlPlaneRestart: f.AllowControlPlaneRestart, Command: inv.DisplayName})
			res := AWSApplyResult{Cluster: p.Cluster, DryRun: string(dry), Notes: p.Notes, Changes: []awsx.Result{}}
			for _, c := range p.Changes {
				res.Changes = append(res.Changes, awsx.Result{Operation: c.Operation, Resource: c.Resource, Reason: c.Reason, Parameters: c.Parameters, Status: "planned"})
			}
			if len(p.Changes) == 0 {
				return out.Print(streams.Out, res, func(w io.Writer, _ bool) error { return printPlan(w, p, false) })
			}
			if dry == cli.DryRunClient {
				return out.Print(streams.Out, res, func(w io.Writer, _ bool) error { return printPlan(w, p, false) })
			}
			if !out.Structured() {
				if err := printPlan(streams.Out, p, false); err != nil {
					return err
				}
			}
			if dry == cli.DryRunNone {
				if err := mut.Confirm(ctx, streams, inv.Command("aws apply"), fmt.Sprintf("Apply these %d changes to VPC %s?", len(p.Changes), p.Cluster.VPCID)); err != nil {
					if errors.Is(err, cli.ErrNotConfirmed) && out.Structured() {
						_ = out.Print(streams.Out, res, nil)
					}
					return err
				}
			}
			progress := cli.NewProgress(streams.ErrOut)
			verb := "Applying"
			if dry == cli.DryRunServer {
				verb = "Checking (EC2 DryRun)"
			}
			progress.Start(fmt.Sprintf("%s %d changes to VPC %s", verb, len(p.Changes), p.Cluster.VPCID))
			results, applyErr := awsx.Apply(ctx, s.AWS, invn, p, awsx.ApplyOptions{
				DryRunServer: dry == cli.DryRunServer,
				Parallel:     parallel,
				NodeReady:    s.NodeReady(),
				Journal:      store,
				Status:       awsx.StatusPrinter(progress.Update, progress.Terminal()),
			})
			res.Changes = results
			applied, failed := 0, 0
			for _, r := range results {
				switch r.Status {
				case awsx.StatusApplied, awsx.StatusDryRun:
					applied++
				case awsx.StatusFailed:
					failed++
				}
			}
			if dry == cli.DryRunServer {
				progress.Done(fmt.Sprintf("Dry run: %d changes accepted by EC2's DryRun, %d failed, %d not checkable (no DryRun in that API, or depend on an earlier change). Nothing was changed.", applied, failed, len(results)-applied-failed))
			} else {
				progress.Done(fmt.Sprintf("Applied %d of %d changes; recorded in the journal %s", applied, len(results), store.Location()))
			}
			if err := out.Print(streams.Out, res, func(w io.Writer, _ bool) error { return printResults(w, results) }); err != nil {
				return err
			}
			return applyErr
		},
	}
	f.addFlags(cmd)
	f.addJournalFlag(cmd)
	mut.AddFlags(cmd)
	out.AddFlags(cmd)
	cmd.Flags().IntVar(&parallel, "parallel", parallel, "How many calls of each AWS API to have under way at once (different APIs go on side by side, each at its own pace)")
	return cmd
}

func printResults(w io.Writer, results []awsx.Result) error {
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "\nSTATUS\tOPERATION\tRESOURCE\tERROR")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Status, r.Operation, r.Resource, r.Error)
	}
	return tw.Flush()
}

// ---- rollback

func newCmdAWSRollback(inv Invocation, streams genericiooptions.IOStreams, factory *kube.Factory) *cobra.Command {
	var f awsTargetFlags
	mut := cli.NewMutationFlags()
	out := cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML)
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Undo exactly the AWS changes `aws apply` recorded, newest first",
		Long: `Undo, in reverse dependency order (ENI addresses, load balancer address
type, security group rules, routes, the egress-only internet gateway, subnet
/64s, the VPC /56), exactly what the journal says 'aws apply' did to the VPC.
Rules, routes and blocks that were there before apply are never touched.`,
		Example: fmt.Sprintf(`  %[1]s aws rollback
  %[1]s aws rollback --yes`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := out.Validate(); err != nil {
				return err
			}
			dry, err := mut.Strategy()
			if err != nil {
				return err
			}
			s, invn, err := f.inventory(ctx, factory)
			if err != nil {
				return err
			}
			store, release, err := f.Journal.open(ctx, s.Kube().Kube, dry, "aws rollback")
			if err != nil {
				return err
			}
			defer release()
			j, err := store.Load(ctx)
			if err != nil {
				return err
			}
			entries := awsx.Undoable(j, invn.VPC.ID)
			res := AWSApplyResult{Cluster: awsx.ClusterOf(invn), DryRun: string(dry), Changes: []awsx.Result{}, Notes: []awsx.Note{}}
			for _, e := range entries {
				res.Changes = append(res.Changes, awsx.Result{Operation: e.Operation, Resource: e.Resource, Parameters: e.Undo, Status: "planned"})
			}
			if len(entries) == 0 {
				return out.Print(streams.Out, res, func(w io.Writer, _ bool) error {
					_, err := fmt.Fprintf(w, "Nothing to roll back: the journal %s has no underlay change to VPC %s that is not undone.\n", store.Location(), invn.VPC.ID)
					return err
				})
			}
			if !out.Structured() || dry == cli.DryRunClient {
				if err := out.Print(streams.Out, res, func(w io.Writer, _ bool) error {
					fmt.Fprintf(w, "Rollback of VPC %s: undo %d recorded changes, in this order\n", invn.VPC.ID, len(entries))
					tw := printers.GetNewTabWriter(w)
					fmt.Fprintln(tw, "\nOPERATION TO UNDO\tRESOURCE\tSTATE")
					for _, e := range entries {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Operation, e.Resource, e.State)
					}
					return tw.Flush()
				}); err != nil {
					return err
				}
			}
			if dry != cli.DryRunNone {
				return nil // no dry run exists for most undo operations: the list is the check
			}
			if err := mut.Confirm(ctx, streams, inv.Command("aws rollback"), fmt.Sprintf("Undo these %d changes to VPC %s?", len(entries), invn.VPC.ID)); err != nil {
				return err
			}

			progress := cli.NewProgress(streams.ErrOut)
			progress.Start(fmt.Sprintf("Rolling back %d changes to VPC %s", len(entries), invn.VPC.ID))
			results, rbErr := awsx.Rollback(ctx, s.AWS, invn.VPC.ID, store, awsx.RollbackOptions{
				NodeReady: s.NodeReady(),
				Progress: func(done, total int, r awsx.Result) {
					progress.Update(fmt.Sprintf("%d/%d undo %s %s: %s %s", done, total, r.Operation, r.Resource, r.Status, r.Error))
				},
			})
			progress.Done(fmt.Sprintf("Undid %d of %d changes", convert.CountStatus(results, awsx.StatusUndone), len(entries)))
			res.Changes = results
			if err := out.Print(streams.Out, res, func(w io.Writer, _ bool) error { return printResults(w, results) }); err != nil {
				return err
			}
			return rbErr
		},
	}
	f.addFlags(cmd)
	f.addJournalFlag(cmd)
	mut.AddFlags(cmd)
	out.AddFlags(cmd)
	return cmd
}

// ---- iam-policy

func newCmdAWSIAMPolicy(inv Invocation, streams genericiooptions.IOStreams) *cobra.Command {
	forWhat := "apply"
	instanceTypes := ""
	cmd := &cobra.Command{
		Use:   "iam-policy",
		Short: "Print the least-privilege IAM policy (JSON) for the aws commands",
		Example: fmt.Sprintf(`  %[1]s aws iam-policy > dualstack-policy.json
  %[1]s aws iam-policy --for plan   # read-only: discover, plan, status`, inv.DisplayName),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if forWhat != "plan" && forWhat != "apply" {
				return cli.Usagef("invalid --for %q: use --for plan (read-only) or --for apply (apply and rollback too)", forWhat)
			}
			o := cli.NewOutputFlags(cli.FormatJSON)
			return o.Print(streams.Out, awsx.Policy(forWhat, instanceTypes != ""), nil)
		},
	}
	cmd.Flags().StringVar(&forWhat, "for", forWhat, `"plan" for the read-only subset (discover, plan, status), "apply" for apply and rollback too`)
	cmd.Flags().StringVar(&instanceTypes, "allow-instance-type-change", "", "Include the actions that aws apply --allow-instance-type-change=TYPE needs (stop, modify, start instances); the TYPE does not change the policy, and the flag alone means any")
	cmd.Flags().Lookup("allow-instance-type-change").NoOptDefVal = "any"
	return cmd
}
