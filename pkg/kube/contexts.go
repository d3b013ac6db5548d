package kube

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// Kubeconfig is the merged kubeconfig (every file of --kubeconfig or
// $KUBECONFIG), for commands that talk to several of its contexts.
type Kubeconfig struct {
	raw clientcmdapi.Config
	// requestTimeout is --request-timeout as given ("0": none).
	requestTimeout string
}

// Kubeconfig reads the kubeconfig the flags name. Relative file paths in it
// are already resolved against the file that holds them.
func (f *Factory) Kubeconfig() (*Kubeconfig, error) {
	raw, err := f.flags.ToRawKubeConfigLoader().RawConfig()
	if err != nil {
		return nil, badKubeconfig(err)
	}
	return &Kubeconfig{raw: raw, requestTimeout: stringValue(f.flags.Timeout)}, nil
}

// RequestTimeout is --request-timeout; 0 means none was set.
func (k *Kubeconfig) RequestTimeout() (time.Duration, error) {
	if k.requestTimeout == "" {
		return 0, nil
	}
	d, err := clientcmd.ParseTimeout(k.requestTimeout)
	if err != nil {
		return 0, &cli.UsageError{Err: fmt.Errorf("--request-timeout %q: %w", k.requestTimeout, err)}
	}
	return d, nil
}

// Contexts are the context names, sorted.
func (k *Kubeconfig) Contexts() []string {
	names := make([]string, 0, len(k.raw.Contexts))
	for name := range k.raw.Contexts {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Select checks that every name is a context of the kubeconfig, and keeps
// the order given without repeats.
func (k *Kubeconfig) Select(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		if _, ok := k.raw.Contexts[n]; !ok {
			return nil, &cli.UsageError{Err: fmt.Errorf("context %q is not in the kubeconfig (it has: %v); check --contexts, --kubeconfig or $KUBECONFIG", n, k.Contexts())}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// ContextInfo is what the kubeconfig says about one context.
type ContextInfo struct {
	Name    string
	Cluster string // the kubeconfig's cluster entry
	Server  string
	// AWSProfile is the AWS_PROFILE the context's exec credential plugin
	// runs with (what `aws eks update-kubeconfig --profile` writes): the
	// AWS account whose credentials reach this cluster. Empty otherwise.
	AWSProfile string
}

// Info describes a context of the kubeconfig.
func (k *Kubeconfig) Info(name string) ContextInfo {
	ci := ContextInfo{Name: name}
	c := k.raw.Contexts[name]
	if c == nil {
		return ci
	}
	ci.Cluster = c.Cluster
	if cl := k.raw.Clusters[c.Cluster]; cl != nil {
		ci.Server = cl.Server
	}
	ci.AWSProfile = ExecAWSProfile(k.raw.AuthInfos[c.AuthInfo])
	return ci
}

// ExecAWSProfile is the AWS_PROFILE set in a user's exec credential plugin
// environment, or "".
func ExecAWSProfile(user *clientcmdapi.AuthInfo) string {
	if user == nil || user.Exec == nil {
		return ""
	}
	for _, e := range user.Exec.Env {
		if e.Name == "AWS_PROFILE" {
			return e.Value
		}
	}
	return ""
}

// Clients builds the clients of one context, with --request-timeout applied
// to each request as kubectl does.
func (k *Kubeconfig) Clients(name string) (*Clients, error) {
	overrides := &clientcmd.ConfigOverrides{Timeout: k.requestTimeout}
	cfg, err := clientcmd.NewNonInteractiveClientConfig(k.raw, name, overrides, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", name, err)
	}
	return newClients(cfg)
}

// AWSProfile is the AWS_PROFILE of the exec credential plugin of the
// context the flags select (--context, else the current context; --user
// overrides its user), or "".
func (f *Factory) AWSProfile() string {
	raw, err := f.flags.ToRawKubeConfigLoader().RawConfig()
	if err != nil {
		return ""
	}
	name := stringValue(f.flags.Context)
	if name == "" {
		name = raw.CurrentContext
	}
	user := stringValue(f.flags.AuthInfoName)
	if c := raw.Contexts[name]; c != nil && user == "" {
		user = c.AuthInfo
	}
	return ExecAWSProfile(raw.AuthInfos[user])
}

// newClients builds the clients over one REST config.
func newClients(cfg *rest.Config) (*Clients, error) {
	// Reports list whole clusters; the default 5 QPS would make them crawl.
	cfg.QPS, cfg.Burst = 50, 100
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building Kubernetes client: %w", err)
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building dynamic client: %w", err)
	}
	return &Clients{Kube: kc, Dynamic: dc, Config: cfg}, nil
}
