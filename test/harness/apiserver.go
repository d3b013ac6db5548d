// Package harness runs the real parts the end-to-end tests and the sandbox
// need on one machine: a kube-apiserver in process with embedded etcd, loaded
// with CRDs from their owners' Go modules, and the cluster objects of the
// fixtures. Everything listens on loopback only.
package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/apiserver/pkg/storage/etcd3/testserver"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"k8s.io/kubernetes/test/utils/ktesting"
)

// VersionLDFlagsHint names the linker flags that stamp the in-process
// apiserver with its release, as a release build of kube-apiserver is; a plain
// `go test` build reports v0.0.0-master, which no real cluster does.
const VersionLDFlagsHint = "-ldflags '-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37'"

// APIServerOptions shape the test cluster.
type APIServerOptions struct {
	// ServiceCIDRs is --service-cluster-ip-range: one CIDR for a single-stack
	// cluster, "v4,v6" for dual-stack. Default: OpenShift's 172.30.0.0/16.
	ServiceCIDRs string
	// ExtraFlags are passed to kube-apiserver as they are.
	ExtraFlags []string
	// RBAC turns on RBAC authorization (default: everything allowed). The
	// harness's own client stays allowed everything (system:masters).
	RBAC bool
	// TokenUsers can log in with a bearer token (--token-auth-file); see
	// APIServer.UserKubeconfig.
	TokenUsers []TokenUser
}

// APIServer is a running kube-apiserver with its clients.
type APIServer struct {
	Config  *rest.Config
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Kubeconfig is a file with one context, "sandbox", for the plugin binary.
	Kubeconfig string

	etcd []string // endpoints, kept across Restart
	stop func()   // tears this apiserver down (once)
}

// StartAPIServer runs etcd and kube-apiserver until t's cleanups run.
func StartAPIServer(t ktesting.TB, opts APIServerOptions) (*APIServer, error) {
	tb, ok := t.(interface{ TempDir() string })
	if !ok {
		return nil, fmt.Errorf("test handle cannot make temp dirs")
	}
	etcd := testserver.RunEtcd(t.(testingTB), nil)
	a := &APIServer{etcd: etcd.Endpoints(), Kubeconfig: filepath.Join(tb.TempDir(), "kubeconfig")}
	if err := a.start(t, opts); err != nil {
		return nil, err
	}
	return a, nil
}

// Restart stops the apiserver and starts another on the same etcd with
// opts, as a control plane rolled out with new flags is: everything stored
// stays (Services keep their families and cluster IPs), only the flags
// change, e.g. a service range gaining IPv6. Config, the clients and the
// Kubeconfig file (same path) then point at the new one.
func (a *APIServer) Restart(t ktesting.TB, opts APIServerOptions) error {
	a.stop()
	return a.start(t, opts)
}

func (a *APIServer) start(t ktesting.TB, opts APIServerOptions) error {
	if opts.ServiceCIDRs == "" {
		opts.ServiceCIDRs = "172.30.0.0/16"
	}
	tb := t.(interface{ TempDir() string })
	storage := storagebackend.NewDefaultConfig("/registry", nil)
	storage.Transport.ServerList = a.etcd

	flags := append([]string{
		"--service-cluster-ip-range=" + opts.ServiceCIDRs,
		"--bind-address=127.0.0.1",
	}, opts.ExtraFlags...)
	authFlags, err := authFlags(tb.TempDir(), opts)
	if err != nil {
		return err
	}
	flags = append(flags, authFlags...)
	srv, err := kubeapiservertesting.StartTestServer(t, &kubeapiservertesting.TestServerInstanceOptions{
		EnableCertAuth:         true,
		DisableInvariantChecks: true,
	}, flags, storage)
	if err != nil {
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	var once sync.Once
	a.stop = func() { once.Do(srv.TearDownFn) }
	t.Cleanup(a.stop)

	cfg := rest.CopyConfig(srv.ClientConfig)
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if v, err := kc.Discovery().ServerVersion(); err != nil || strings.HasPrefix(v.GitVersion, "v0.0.0") {
		return fmt.Errorf("kube-apiserver reports no release version (%v): build the tests with `make e2e`, which sets %s", v, VersionLDFlagsHint)
	}
	a.Config, a.Kube, a.Dynamic = cfg, kc, dc
	return WriteKubeconfig(a.Kubeconfig, cfg, "sandbox")
}

// WriteKubeconfig writes cfg as a kubeconfig whose current context is name.
func WriteKubeconfig(path string, cfg *rest.Config, name string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
		TLSServerName:            cfg.ServerName,
	}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{
		Token:                 cfg.BearerToken,
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
	}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	kc.CurrentContext = name
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*kc, path)
}

// WaitFor polls cond every 50ms until it returns true, an error, or timeout.
func WaitFor(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok && err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			msg := []string{fmt.Sprintf("timed out after %s waiting for %s", timeout, what)}
			if last != nil {
				msg = append(msg, last.Error())
			}
			return fmt.Errorf("%s", strings.Join(msg, ": "))
		case <-tick.C:
		}
	}
}
