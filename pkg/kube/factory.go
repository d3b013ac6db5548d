// Package kube builds Kubernetes clients from kubectl's flags, lazily, and
// holds the few list helpers every command uses (always paginated).
package kube

import (
	"fmt"
	"sync"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// Clients are the API clients a command needs.
type Clients struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Config  *rest.Config
	// Getter is kubectl's flags, for libraries that build their own
	// clients from them (Helm's SDK); nil outside a command.
	Getter genericclioptions.RESTClientGetter
}

// Factory turns the kubeconfig flags into clients on first use, so --help and
// version never read a kubeconfig or touch the network.
type Factory struct {
	flags *genericclioptions.ConfigFlags

	once    sync.Once
	clients *Clients
	err     error
}

// NewFactory wraps kubectl's config flags.
func NewFactory(flags *genericclioptions.ConfigFlags) *Factory {
	return &Factory{flags: flags}
}

// Clients returns the clients, building them once.
func (f *Factory) Clients() (*Clients, error) {
	f.once.Do(func() { f.clients, f.err = f.build() })
	return f.clients, f.err
}

// Namespace is the namespace from -n or the kubeconfig context.
func (f *Factory) Namespace() (string, error) {
	ns, _, err := f.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", badKubeconfig(err)
	}
	return ns, nil
}

// badKubeconfig marks an error from reading the kubeconfig as bad input
// (exit 2): a --kubeconfig path that does not exist, an unknown --context,
// a file that does not parse. All of them are fixed by the user's flags or
// files, never by retrying.
func badKubeconfig(err error) error {
	return &cli.UsageError{Err: fmt.Errorf("reading kubeconfig: %w (check --kubeconfig, --context or $KUBECONFIG)", err)}
}

func (f *Factory) build() (*Clients, error) {
	// Without this check client-go silently falls back to localhost:8080.
	if raw, err := f.flags.ToRawKubeConfigLoader().RawConfig(); err == nil && raw.CurrentContext == "" &&
		stringValue(f.flags.Context) == "" && stringValue(f.flags.APIServer) == "" {
		return nil, fmt.Errorf("no cluster to talk to: the kubeconfig has no current context; set KUBECONFIG, --kubeconfig or --context")
	}
	cfg, err := f.flags.ToRESTConfig()
	if err != nil {
		return nil, badKubeconfig(err)
	}
	c, err := newClients(cfg)
	if err != nil {
		return nil, err
	}
	c.Getter = f.flags
	return c, nil
}

func stringValue(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
