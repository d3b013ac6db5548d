package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// ExecResult is what came back from a command run in a container.
type ExecResult struct {
	Stdout, Stderr string
	// ExitCode is the command's exit status, as the kubelet reported it.
	ExitCode int
}

// Execer runs a command in a container and returns its output and exit
// code. An error means the result was lost (the stream broke, the API
// refused): the command may or may not have run.
type Execer interface {
	Exec(ctx context.Context, namespace, pod, container string, cmd []string) (ExecResult, error)
}

// PodExecer runs commands through the apiserver's pods/exec, as kubectl exec
// does: WebSocket first, SPDY only when the WebSocket upgrade itself failed.
type PodExecer struct {
	Config *rest.Config
	Client kubernetes.Interface
}

// Exec implements Execer.
func (e *PodExecer) Exec(ctx context.Context, namespace, pod, container string, cmd []string) (ExecResult, error) {
	req := e.Client.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   cmd,
			Stdout:    true,
			Stderr:    true,
		}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(e.Config, "GET", req.URL().String())
	if err != nil {
		return ExecResult{}, fmt.Errorf("setting up exec over WebSocket: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(e.Config, http.MethodPost, req.URL())
	if err != nil {
		return ExecResult{}, fmt.Errorf("setting up exec over SPDY: %w", err)
	}
	// Fall back only when the WebSocket upgrade was refused (an older
	// apiserver, a proxy): falling back on any error would run the command
	// a second time every time it exits non-zero.
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return ExecResult{}, err
	}
	var stdout, stderr bytes.Buffer
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	res := ExecResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr utilexec.CodeExitError
	if errors.As(err, &exitErr) {
		res.ExitCode = exitErr.Code
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("exec in %s/%s: %w", namespace, pod, err)
	}
	return res, nil
}
