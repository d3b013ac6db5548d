package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SandboxDNSEnv is the plugin's environment variable for the DNS server
// of load balancer names (every --dns-server defaults to it).
const SandboxDNSEnv = "KUBECTL_DUALSTACK_DNS_SERVER"

// WriteSandboxEnv writes what `make sandbox` hands the user: the
// kubeconfig and an env file (source it) that points kubectl at the
// sandbox's apiserver, the AWS SDK at moto (awsEnv), the plugin at the
// sandbox's DNS server for load balancer names, and PATH at binDir. It
// returns the env file's path and its variables.
func WriteSandboxEnv(stateDir, binDir string, s *ConversionSandbox, awsEnv []string) (string, []string, error) {
	kubeconfig := filepath.Join(stateDir, "kubeconfig")
	if err := WriteKubeconfig(kubeconfig, s.API.Config, "sandbox"); err != nil {
		return "", nil, err
	}
	env := append(append([]string(nil), awsEnv...),
		"KUBECONFIG="+kubeconfig,
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		SandboxDNSEnv+"="+s.DNSAddr())
	path, err := writeEnvFile(stateDir, env)
	return path, env, err
}

// WriteKubeadmNodeEnv is WriteSandboxEnv for the kubeadm-like cluster on
// the real node (`make sandbox REAL_NODE=1`): its kubeconfig (written again
// after ConvertHosts restarts the API server) and PATH.
func WriteKubeadmNodeEnv(stateDir, binDir string, k *KubeadmNode) (string, []string, error) {
	kubeconfig := filepath.Join(stateDir, "kubeconfig")
	if err := WriteKubeconfig(kubeconfig, k.API.Config, "sandbox"); err != nil {
		return "", nil, err
	}
	env := []string{"KUBECONFIG=" + kubeconfig, "PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH")}
	path, err := writeEnvFile(stateDir, env)
	return path, env, err
}

// writeEnvFile writes env as export lines to stateDir/env.
func writeEnvFile(stateDir string, env []string) (string, error) {
	var b strings.Builder
	b.WriteString("# The kubectl-dualstack sandbox: `source` this file in your shell.\n")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, strconv.Quote(v))
	}
	path := filepath.Join(stateDir, "env")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// ReadSandboxEnv reads an env file WriteSandboxEnv wrote, as a shell that
// sources it would see it.
func ReadSandboxEnv(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		k, q, _ := strings.Cut(line, "=")
		v, err := strconv.Unquote(q)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, line, err)
		}
		env = append(env, k+"="+v)
	}
	return env, sc.Err()
}
