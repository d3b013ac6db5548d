package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/gateway"
	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/network"
)

// upgrade's other phases as typed calls into the same Options the commands
// use: no command line is built and no output is parsed; each returns its
// result as a value. Their progress and warnings go to log.

// overlayPhase is the network phase.
type overlayPhase interface {
	Plan(ctx context.Context) (*NetworkResult, error)
	Apply(ctx context.Context, log io.Writer) (*NetworkResult, error)
}

// edgePhase is the gateway phase.
type edgePhase interface {
	Plan(ctx context.Context) (*gateway.Result, error)
	Apply(ctx context.Context, log io.Writer) (*gateway.Result, error)
}

// proofPhase is the validate phase.
type proofPhase interface {
	Run(ctx context.Context, log io.Writer) (*ValidateResult, error)
}

// inProcess builds the phases from upgrade's options.
type inProcess struct{ o *UpgradeOptions }

func (p inProcess) streams(log io.Writer) genericiooptions.IOStreams {
	return genericiooptions.IOStreams{In: p.o.In, Out: io.Discard, ErrOut: log}
}

// overlay adapts network to overlayPhase.
type overlay struct{ inProcess }

func (p overlay) Plan(ctx context.Context) (*NetworkResult, error) {
	return p.runNetwork(ctx, cli.DryRunClient, io.Discard)
}

func (p overlay) Apply(ctx context.Context, log io.Writer) (*NetworkResult, error) {
	return p.runNetwork(ctx, cli.DryRunNone, log)
}

func (p overlay) runNetwork(ctx context.Context, dry cli.DryRun, log io.Writer) (*NetworkResult, error) {
	n := &NetworkOptions{
		Output:         cli.NewOutputFlags(cli.FormatJSON),
		Mutation:       &cli.MutationFlags{Yes: true, DryRun: string(dry)},
		ClusterNetwork: network.DefaultClusterNetwork, HostPrefix: network.DefaultHostPrefix, ServiceNetwork: network.DefaultServiceNetwork,
		Force: p.o.ForceNetwork, Timeout: p.o.Timeout,
		Journal: journalFlag{ns: p.o.Target.Journal.String(), set: true},
		inv:     p.o.inv, factory: p.o.factory, IOStreams: p.streams(log),
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	if err := n.Complete(); err != nil {
		return nil, err
	}
	err := n.Run(ctx)
	return n.result, err
}

// edge adapts gateway to edgePhase; it reuses the AWS account the aws
// phase resolved.
type edge struct{ inProcess }

func (p edge) Plan(ctx context.Context) (*gateway.Result, error) {
	return p.runGateway(ctx, cli.DryRunClient, io.Discard)
}

func (p edge) Apply(ctx context.Context, log io.Writer) (*gateway.Result, error) {
	return p.runGateway(ctx, cli.DryRunNone, log)
}

func (p edge) runGateway(ctx context.Context, dry cli.DryRun, log io.Writer) (*gateway.Result, error) {
	g := &GatewayOptions{
		Recreate: p.o.RecreateGateway, Timeout: p.o.Timeout, DNSServer: p.o.DNSServer,
		Target:   p.o.Target,
		Mutation: &cli.MutationFlags{Yes: true, DryRun: string(dry)},
		Output:   cli.NewOutputFlags(cli.FormatJSON),
		inv:      p.o.inv, factory: p.o.factory, IOStreams: p.streams(log),
	}
	g.Target.Journal = journalFlag{ns: p.o.Target.Journal.String(), set: true}
	if u, ok := p.o.underlay.(*awsUnderlay); ok {
		g.session = u.session
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	err := g.Run(ctx)
	return g.result, err
}

// proof adapts validate to proofPhase.
type proof struct{ inProcess }

func (p proof) Run(ctx context.Context, log io.Writer) (*ValidateResult, error) {
	v := newValidateOptions(p.o.inv, p.streams(log), p.o.factory)
	v.Output = cli.NewOutputFlags(cli.FormatJSON)
	v.Timeout = p.o.Timeout
	v.DNSServer = p.o.DNSServer
	v.Scenario.Namespace = DefaultValidateNamespace
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	v.Scenario.RunID = hex.EncodeToString(id)
	if err := v.Validate(); err != nil {
		return nil, err
	}
	c, err := p.o.factory.Clients()
	if err != nil {
		return nil, err
	}
	v.clients = c
	err = v.Run(ctx)
	return v.result, err
}
