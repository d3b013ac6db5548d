// Command sandbox starts, on loopback only, an OpenShift-on-AWS-like cluster
// that begins IPv4-only (harness.BuildConversionSandbox: a real kube-apiserver
// in process, moto for the AWS API, and simulators for what the cluster does
// on its own) and writes a kubeconfig and an env file for it.
//
// Without -hold (make demo) it takes the cluster to dual-stack with the
// plugin as a user would (status, aws plan, upgrade, status, validate) and
// ends with a summary. With -hold (make sandbox) it leaves the cluster
// IPv4-only, prints the commands to try, and stays up until Ctrl-C.
//
// With -real-node (make demo/sandbox REAL_NODE=1; root, and the node's
// packages from make node-deps) the cluster is instead a kubeadm-like one
// on a real node on this machine (harness.StartKubeadmNode: containerd, a
// kubelet, kube-proxy's DaemonSet, the real controllers, CoreDNS), with no
// AWS: the demo takes it through the network, services and workloads
// phases and validate --no-mesh, making the host-side changes the network
// phase asks for as an admin would; the held sandbox makes them when Enter
// is pressed.
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
	realNode := flag.Bool("real-node", false, "a kubeadm-like cluster on a real node on this machine (root; make node-deps) instead of the simulated OpenShift on AWS")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runner := run
	if *realNode {
		runner = runRealNode
	}
	if err := runner(ctx, *binDir, *stateDir, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

// prepare checks the plugin binary, empties stateDir of what an earlier
// demo or sandbox wrote (its processes ended with it) and sends the
// in-process API server's logs to stateDir/apiserver.log.
func prepare(binDir, stateDir *string) (*os.File, error) {
	*binDir, _ = filepath.Abs(*binDir)
	*stateDir, _ = filepath.Abs(*stateDir)
	if _, err := os.Stat(filepath.Join(*binDir, "kubectl-dualstack")); err != nil {
		return nil, fmt.Errorf("no plugin binary in %s: run make build first", *binDir)
	}
	if err := os.MkdirAll(*stateDir, 0o700); err != nil {
		return nil, err
	}
	for _, f := range []string{"kubeconfig", "env", "apiserver.log"} {
		if err := os.Remove(filepath.Join(*stateDir, f)); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	logFile, err := os.Create(filepath.Join(*stateDir, "apiserver.log"))
	if err != nil {
		return nil, err
	}
	quietKlog(logFile)
	return logFile, nil
}

func run(ctx context.Context, binDir, stateDir string, hold bool) (err error) {
	logFile, err := prepare(&binDir, &stateDir)
	if err != nil {
		return err
	}
	defer logFile.Close()

	tb := harness.NewProcessTB("sandbox", nil)
	defer tb.Close()
	defer harness.RecoverFatal(&err)

	step("starting moto (AWS API, TLS) on 127.0.0.1")
	aws, err := moto.Start(ctx, moto.Options{TLS: true})
	if err != nil {
		return err
	}
	defer aws.Stop()

	step("building an OpenShift 4.10 IPI cluster on AWS, IPv4-only: a kube-apiserver (embedded etcd), the VPC, 6 subnets, 6 instances and their nodes (kubelets on 127.0.0.2-7), Istio, an ingress gateway behind a Classic ELB, network ACLs, the installer's Route 53 zones; the network operator, load balancer controller (a new load balancer answers after " + harness.DefaultLBProvisionDelay.String() + ") and DNS simulators")
	sb, err := harness.BuildConversionSandbox(ctx, tb, aws, harness.ConversionSandboxOptions{LBProvisionDelay: harness.DefaultLBProvisionDelay,
		// As real accounts look: a custom IPv4-only network ACL on the private
		// subnets, a modified default ACL, the installer's Route 53 zones.
		IPI: moto.IPIOptions{NetworkACLs: true, HostedZones: &moto.HostedZoneOptions{}}})
	if err != nil {
		return err
	}
	world := sb.World

	envFile, env, err := harness.WriteSandboxEnv(stateDir, binDir, sb, aws.Env())
	if err != nil {
		return err
	}
	step(fmt.Sprintf("cluster %s in %s (VPC %s) is up, IPv4-only; env file %s", world.AWS.InfraID, world.AWS.Region, world.AWS.VPC.ID, envFile))
	fmt.Println("    (its pods are simulated: they run as processes on this machine and reach each other and the load balancers over loopback, 127.0.0.1 and ::1)")

	if hold {
		fmt.Printf(`
The sandbox is up, IPv4-only, until Ctrl-C. In another shell:

  source %s
  kubectl dualstack status                         # FAILs, each with its fix
  kubectl dualstack upgrade --dry-run=client       # the plan of every phase
  kubectl dualstack upgrade --yes --recreate-gateway
  kubectl dualstack policies apply --yes           # the NetworkPolicy's IPv6 twin (only when asked)
  kubectl dualstack validate                       # the proof over both families
  kubectl dualstack rollback --yes                 # back to IPv4-only

`, envFile)
		<-ctx.Done()
		quietStderr(logFile)
		step("stopping")
		return nil
	}

	summary, err := showAll(ctx, env, []command{
		{[]string{"kubectl", "dualstack", "status"}, "status before (IPv4-only: FAILs expected)"},
		{[]string{"kubectl", "dualstack", "aws", "plan"}, "aws plan"},
		{[]string{"kubectl", "dualstack", "upgrade", "--yes", "--recreate-gateway"}, "upgrade (every phase but the ones run only when asked)"},
		{[]string{"kubectl", "dualstack", "policies", "apply", "--yes"}, "policies apply (the NetworkPolicy's IPv6 twin)"},
		{[]string{"kubectl", "dualstack", "status"}, "status after"},
		{[]string{"kubectl", "dualstack", "validate"}, "validate (the proof over IPv4 and IPv6)"},
	})
	if err != nil {
		return err
	}
	quietStderr(logFile)
	fmt.Printf("\n==> summary (the commands' own output is above)\n%s\n", strings.Join(summary, "\n"))
	return nil
}

// A command of a demo, and what the summary calls it.
type command struct {
	args []string
	what string
}

// showAll runs the commands with show and returns the summary's lines.
func showAll(ctx context.Context, env []string, cmds []command) ([]string, error) {
	var summary []string
	for _, c := range cmds {
		code, err := show(ctx, env, c.args)
		if err != nil {
			return summary, err
		}
		verdict := "ok"
		if code != 0 {
			verdict = fmt.Sprintf("exit %d", code)
		}
		summary = append(summary, fmt.Sprintf("  %-45s %s", c.what, verdict))
	}
	return summary, nil
}

// quietStderr sends what the in-process etcd and apiserver still print
// while they shut down to the log file: the terminal ends with the summary.
func quietStderr(f *os.File) {
	_ = syscall.Dup2(int(f.Fd()), int(os.Stderr.Fd()))
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
// non-zero exit (status reporting FAILs, say) is part of the demo, not an
// error: it is returned as the exit code.
func show(ctx context.Context, env, args []string) (int, error) {
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
		return exit.ExitCode(), nil
	}
	return 0, err
}
