// Command sandbox starts, on loopback only, an OpenShift-on-AWS-like cluster
// that begins IPv4-only (harness.BuildConversionSandbox: a real kube-apiserver
// in process, moto for the AWS API, and simulators for what the cluster does
// on its own), writes a kubeconfig and the environment for them, and takes
// it to dual-stack with the plugin as a user would: status, aws plan,
// upgrade, status, validate. With -hold it stays up for your own commands.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/harness"
	"github.com/kubectl-dualstack/kubectl-dualstack/test/moto"
)

func main() {
	binDir := flag.String("bin-dir", "../bin", "directory with the built kubectl-dualstack (make build)")
	stateDir := flag.String("state-dir", "../.sandbox", "where to write the kubeconfig and env file")
	hold := flag.Bool("hold", false, "keep the sandbox running until Ctrl-C")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *binDir, *stateDir, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, binDir, stateDir string, hold bool) (err error) {
	binDir, _ = filepath.Abs(binDir)
	stateDir, _ = filepath.Abs(stateDir)
	if _, err := os.Stat(filepath.Join(binDir, "kubectl-dualstack")); err != nil {
		return fmt.Errorf("no plugin binary in %s: run make build first", binDir)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}

	logFile, err := os.Create(filepath.Join(stateDir, "apiserver.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	quietKlog(logFile)

	tb := harness.NewProcessTB("sandbox", nil)
	defer tb.Close()
	defer harness.RecoverFatal(&err)

	step("starting moto (AWS API, TLS) on 127.0.0.1")
	aws, err := moto.Start(ctx, moto.Options{TLS: true})
	if err != nil {
		return err
	}
	defer aws.Stop()

	step("building an OpenShift 4.10 IPI cluster on AWS, IPv4-only: a kube-apiserver (embedded etcd), the VPC, 6 subnets, 6 instances and their nodes (kubelets on 127.0.0.2-7), Istio, an ingress gateway behind a Classic ELB; the network operator, load balancer controller and DNS simulators")
	sb, err := harness.BuildConversionSandbox(ctx, tb, aws, harness.ConversionSandboxOptions{})
	if err != nil {
		return err
	}
	api, world := sb.API, sb.World

	kubeconfig := filepath.Join(stateDir, "kubeconfig")
	if err := harness.WriteKubeconfig(kubeconfig, api.Config, "sandbox"); err != nil {
		return err
	}
	envFile := filepath.Join(stateDir, "env")
	dnsServer := sb.DNSAddr()
	env := append(aws.Env(), "KUBECONFIG="+kubeconfig, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "DUALSTACK_DNS="+dnsServer)
	if err := writeEnv(envFile, env); err != nil {
		return err
	}
	step(fmt.Sprintf("cluster %s in %s (VPC %s) is up; kubeconfig %s", world.AWS.InfraID, world.AWS.Region, world.AWS.VPC.ID, kubeconfig))

	for _, args := range [][]string{
		{"kubectl", "dualstack", "status"},
		{"kubectl", "dualstack", "aws", "plan"},
		{"kubectl", "dualstack", "upgrade", "--yes", "--recreate-gateway", "--dns-server", dnsServer},
		{"kubectl", "dualstack", "status"},
		{"kubectl", "dualstack", "validate", "--dns-server", dnsServer},
	} {
		if err := show(ctx, env, args); err != nil {
			return err
		}
	}

	if !hold {
		return nil
	}
	fmt.Printf("\nThe sandbox stays up until Ctrl-C. In another shell:\n\n  source %s\n  kubectl dualstack status -o yaml\n  kubectl dualstack validate --dns-server $DUALSTACK_DNS\n\n", envFile)
	<-ctx.Done()
	step("stopping")
	return nil
}

// quietKlog sends the in-process apiserver's logs to a file: the terminal is
// for the demo.
func quietKlog(w io.Writer) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(w)
}

func step(msg string) {
	fmt.Printf("==> %s %s\n", time.Now().Format("15:04:05"), msg)
}

// show runs one command as a user would type it and prints its output; a
// non-zero exit (status reporting FAILs, say) is part of the demo, not an error.
func show(ctx context.Context, env, args []string) error {
	fmt.Printf("\n$ %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if path, err := exec.LookPath(args[0]); err == nil {
		cmd.Path = path
	}
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		fmt.Printf("(exit status %d)\n", exit.ExitCode())
		return nil
	}
	return err
}

func writeEnv(path string, env []string) error {
	var b strings.Builder
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%q\n", k, v)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
