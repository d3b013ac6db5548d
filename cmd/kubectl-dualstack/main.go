// Command kubectl-dualstack is the kubectl (and oc) plugin that converts a
// Kubernetes cluster on AWS to IPv4/IPv6 dual-stack and proves the result.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	code := plugin.Main(ctx, os.Args, streams)
	stop()
	os.Exit(code)
}
