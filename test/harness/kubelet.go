package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// KubeletCA is the test CA that signs the kubelets' serving certificates;
// the apiserver trusts it with --kubelet-certificate-authority.
type KubeletCA struct {
	File string // PEM, for the apiserver flag
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewKubeletCA writes a fresh CA into dir.
func NewKubeletCA(dir string) (*KubeletCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dualstack-test-kubelet-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &KubeletCA{File: filepath.Join(dir, "kubelet-ca.crt"), cert: cert, key: key}
	return ca, os.WriteFile(ca.File, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
}

// ExtraFlags are the apiserver flags that make it reach and trust the
// kubelets: the node's InternalIP, verified against this CA.
func (ca *KubeletCA) ExtraFlags() []string {
	return []string{"--kubelet-certificate-authority=" + ca.File, "--kubelet-preferred-address-types=InternalIP"}
}

func (ca *KubeletCA) serving(ips ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "kubelet"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Kubelet is one test node's kubelet endpoint. It serves only exec, with the
// kubelet's own streaming code (ServeExec), and runs the command as a local
// process in a mount namespace of its own where HostsFile is /etc/hosts, so
// Service names resolve to loopback addresses of the right family.
type Kubelet struct {
	IP        string
	Port      int32
	HostsFile string
	// Broken makes exec lose its stream: the connection is accepted and
	// dropped before any result, as a failing proxy or kubelet would.
	Broken atomic.Bool
	// Execs counts commands run.
	Execs  atomic.Int64
	server *http.Server
}

// StartKubelet listens on ip (a 127.0.0.x address) with a certificate from ca.
func StartKubelet(ca *KubeletCA, ip, hostsFile string) (*Kubelet, error) {
	cert, err := ca.serving(ip)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("kubelet listener on %s: %w", ip, err)
	}
	k := &Kubelet{IP: ip, Port: int32(ln.Addr().(*net.TCPAddr).Port), HostsFile: hostsFile}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/", k.exec)
	k.server = &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = k.server.ServeTLS(ln, "", "") }()
	return k, nil
}

// Close stops the endpoint.
func (k *Kubelet) Close() { _ = k.server.Close() }

// exec serves /exec/{namespace}/{pod}/{container}?command=...: the URL the
// apiserver's pods/exec proxies to.
func (k *Kubelet) exec(w http.ResponseWriter, req *http.Request) {
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/exec/"), "/")
	if len(parts) < 3 {
		http.Error(w, "want /exec/{namespace}/{pod}/{container}", http.StatusNotFound)
		return
	}
	if k.Broken.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		http.Error(w, "stream lost", http.StatusBadGateway)
		return
	}
	opts, err := remotecommandserver.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pod, container := parts[1], parts[2]
	if len(parts) > 3 { // /exec/{namespace}/{pod}/{uid}/{container}
		container = parts[3]
	}
	cmd := req.URL.Query()["command"]
	remotecommandserver.ServeExec(w, req, k, pod, "", container, cmd, opts, 5*time.Minute, remotecommandserver.DefaultStreamCreationTimeout, remotecommandserver.SupportedStreamingProtocols)
}

// ExecInContainer implements remotecommandserver.Executor: the command runs
// as a local process with the sandbox's hosts file bind-mounted on /etc/hosts.
func (k *Kubelet) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errOut io.WriteCloser, _ bool, _ <-chan remotecommandserver.TerminalSize, _ time.Duration) error {
	k.Execs.Add(1)
	if len(cmd) == 0 {
		return errors.New("no command")
	}
	args := append([]string{"-m", "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, k.HostsFile}, cmd...)
	c := exec.CommandContext(ctx, "unshare", args...)
	c.Stdin, c.Stdout, c.Stderr = in, out, errOut
	err := c.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return utilexec.CodeExitError{Err: err, Code: exitErr.ExitCode()}
	}
	return err
}
