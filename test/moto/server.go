// Package moto runs a real moto_server (the Python AWS mock) on loopback for tests and builds
// AWS fixtures in it through the AWS API, such as what an OpenShift IPI install on AWS creates.
//
// It deliberately depends only on the standard library and aws-sdk-go-v2, so it compiles fast
// on its own (no k8s.io/kubernetes).
package moto

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Static test credentials. moto accepts any; its account is always AccountID.
const (
	AccessKeyID     = "testing"
	SecretAccessKey = "testing"
	AccountID       = "123456789012"
	DefaultRegion   = "us-east-1"
	// DefaultExecutable is looked up on PATH unless Options.Executable or $MOTO_SERVER is set.
	DefaultExecutable = "moto_server"
	// InstallHint says how to get moto_server.
	InstallHint = "install it with `python3 -m pip install 'moto[server]==5.2.1'` (or `make moto`)"
)

// ErrNotInstalled is returned (wrapped) by Start when the moto_server executable is missing.
var ErrNotInstalled = errors.New("moto_server not found")

// Options configures Start. The zero value is usable: plain HTTP, us-east-1.
type Options struct {
	// TLS serves https with a certificate for 127.0.0.1/::1/localhost signed by a test CA
	// generated for this server (see Server.CAFile).
	TLS bool
	// Region is what Env puts in AWS_REGION. Default us-east-1.
	Region string
	// Executable is the moto_server to run. Default: $MOTO_SERVER, else "moto_server" on PATH.
	Executable string
	// StartTimeout bounds the wait until moto answers. Default 60s.
	StartTimeout time.Duration
	// LogOutput, if set, also receives moto's stdout/stderr (e.g. a file or os.Stderr).
	LogOutput io.Writer
	// Dir holds the generated certificates. Default: a temporary directory removed by Stop.
	Dir string
}

// Server is a running moto_server process.
type Server struct {
	opts     Options
	endpoint string
	dir      string
	ownDir   bool
	caFile   string
	caPEM    []byte
	client   *http.Client
	log      *tailBuffer

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done

	stopOnce sync.Once
}

// Start finds a free port on 127.0.0.1, starts moto_server bound to it and waits until it
// answers. ctx bounds the start-up only; the process runs until Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	exe := opts.Executable
	if exe == "" {
		exe = os.Getenv("MOTO_SERVER")
	}
	if exe == "" {
		exe = DefaultExecutable
	}
	path, err := exec.LookPath(exe)
	if err != nil {
		return nil, fmt.Errorf("moto: %w: %q is not on PATH (%v); %s", ErrNotInstalled, exe, err, InstallHint)
	}

	s := &Server{opts: opts, dir: opts.Dir, log: newTailBuffer(256 << 10)}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "moto-")
		if err != nil {
			return nil, fmt.Errorf("moto: %w", err)
		}
		s.dir, s.ownDir = d, true
	}
	scheme := "http"
	tlsConf := &tls.Config{}
	var certFile, keyFile string
	if opts.TLS {
		scheme = "https"
		ca, err := writeTestPKI(s.dir)
		if err != nil {
			s.cleanupDir()
			return nil, fmt.Errorf("moto: generating test certificates: %w", err)
		}
		s.caFile, s.caPEM, certFile, keyFile = ca.caFile, ca.caPEM, ca.certFile, ca.keyFile
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(s.caPEM)
		tlsConf.RootCAs = pool
	}
	s.client = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConf, DisableKeepAlives: true},
	}

	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			s.cleanupDir()
			return nil, fmt.Errorf("moto: finding a free port: %w", err)
		}
		s.endpoint = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
		args := []string{"-H", "127.0.0.1", "-p", strconv.Itoa(port)}
		if opts.TLS {
			args = append(args, "-c", certFile, "-k", keyFile)
		}
		lastErr = s.launch(ctx, path, args)
		if lastErr == nil {
			return s, nil
		}
		s.kill()
		// Another process may have taken the port between our probe and moto's bind: retry.
		if !strings.Contains(s.log.String(), "Address already in use") {
			break
		}
		s.log.Reset()
	}
	s.cleanupDir()
	return nil, lastErr
}

func (s *Server) launch(ctx context.Context, path string, args []string) error {
	cmd := exec.Command(path, args...)
	cmd.Dir = s.dir
	var out io.Writer = s.log
	if s.opts.LogOutput != nil {
		out = io.MultiWriter(s.log, s.opts.LogOutput)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Unbuffered so that the log is complete when we report a failure.
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	cmd.SysProcAttr = sysProcAttr()
	// Pdeathsig fires when the OS thread that started the child exits, not the process: start
	// and wait on a locked thread that lives as long as moto does.
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.err = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("moto: starting %s: %w", path, err)
	}
	s.cmd, s.done = cmd, done

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.ping(ctx) == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("moto: %s %s exited before answering (%v); log:\n%s",
				path, strings.Join(args, " "), s.err, s.log.String())
		case <-ctx.Done():
			return fmt.Errorf("moto: %s did not answer on %s within %s (%v); log:\n%s",
				path, s.endpoint, s.opts.StartTimeout, ctx.Err(), s.log.String())
		case <-tick.C:
		}
	}
}

func (s *Server) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+"/moto-api/data.json", nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto: GET /moto-api/data.json: %s", resp.Status)
	}
	return nil
}

// Endpoint is the server's base URL, http://127.0.0.1:PORT (https://... with TLS).
func (s *Server) Endpoint() string { return s.endpoint }

// Region is Options.Region (default us-east-1), used by Env.
func (s *Server) Region() string { return s.opts.Region }

// TLS reports whether the server serves https.
func (s *Server) TLS() bool { return s.opts.TLS }

// CAFile is the path of the PEM test CA that signed the server certificate ("" without TLS).
func (s *Server) CAFile() string { return s.caFile }

// CAPEM is the PEM test CA (nil without TLS).
func (s *Server) CAPEM() []byte { return bytes.Clone(s.caPEM) }

// Log returns the tail (last 256 KiB) of moto's stdout and stderr, for failure messages.
func (s *Server) Log() string { return s.log.String() }

// Reset drops all moto state (POST /moto-api/reset). moto re-creates the default VPC of a
// region the next time that region is used.
func (s *Server) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("moto: reset: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto: reset: %s: %s", resp.Status, body)
	}
	return nil
}

// Stop kills moto's process group, waits for it and removes the temporary directory.
// It is idempotent and safe on a nil Server.
func (s *Server) Stop() error {
	if s == nil {
		return nil
	}
	s.stopOnce.Do(func() {
		s.kill()
		s.cleanupDir()
	})
	return nil
}

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
	default:
		// moto holds no state worth flushing, and it takes over a second to honour SIGTERM.
		killGroup(s.cmd.Process.Pid)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
		}
	}
	s.cmd = nil
}

func (s *Server) cleanupDir() {
	if s.ownDir && s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.ownDir = false
	}
}

// Env returns the environment (KEY=VALUE) a child process, such as the plugin binary, needs
// to reach this server through the standard AWS SDK chain: AWS_ENDPOINT_URL,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_CA_BUNDLE (TLS only) and
// AWS_EC2_METADATA_DISABLED=true. Append it after the inherited environment (later entries
// win in os/exec), or build a clean one.
func (s *Server) Env() []string {
	env := []string{
		"AWS_ENDPOINT_URL=" + s.endpoint,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_REGION=" + s.opts.Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	if s.caFile != "" {
		env = append(env, "AWS_CA_BUNDLE="+s.caFile)
	}
	return env
}

// AWSConfig returns an aws.Config for region (default: the server's) with the static test
// credentials, BaseEndpoint pointed at the server, and the test CA trusted when TLS. It is
// built directly, not through config.LoadDefaultConfig, so no environment variable or shared
// config file of the machine leaks in.
func (s *Server) AWSConfig(ctx context.Context, region string) (aws.Config, error) {
	_ = ctx
	if region == "" {
		region = s.opts.Region
	}
	hc := awshttp.NewBuildableClient()
	if s.caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(s.caPEM) {
			return aws.Config{}, errors.New("moto: test CA PEM has no certificate")
		}
		hc = hc.WithTransportOptions(func(tr *http.Transport) {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{}
			}
			tr.TLSClientConfig.RootCAs = pool
		})
	}
	return aws.Config{
		Region:       region,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
		BaseEndpoint: aws.String(s.endpoint),
		HTTPClient:   hc,
	}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func (b *tailBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = b.buf[:0]
}
