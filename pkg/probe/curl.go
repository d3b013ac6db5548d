package probe

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// curlMarker starts the line curl's -w writes after the headers: without it
// in the output, the result was lost on the way back.
const curlMarker = "dualstack-probe:"

// CurlOptions bound one in-pod curl.
type CurlOptions struct {
	ConnectTimeout time.Duration
	MaxTime        time.Duration
}

// DefaultCurlOptions are short: loopback to a Service answers in
// milliseconds, and a hung connection must not eat the run's --timeout.
var DefaultCurlOptions = CurlOptions{ConnectTimeout: 3 * time.Second, MaxTime: 10 * time.Second}

// CurlCommand is the command run in the pod: headers to stdout, the body
// discarded, then one line with the remote address, HTTP code and time.
func CurlCommand(f Family, url string, o CurlOptions) []string {
	return []string{"curl", "-sS", f.CurlFlag(),
		"--connect-timeout", seconds(o.ConnectTimeout),
		"--max-time", seconds(o.MaxTime),
		"-o", "/dev/null", "-D", "-",
		"-w", "\n" + curlMarker + " %{remote_ip} %{http_code} %{time_total}\n",
		url}
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// CurlResult is one curl's outcome, as curl itself reported it.
type CurlResult struct {
	ExitCode int     `json:"exitCode"`
	RemoteIP string  `json:"remoteIP,omitempty"`
	HTTPCode int     `json:"httpCode"`
	Seconds  float64 `json:"seconds"`
	Server   string  `json:"server,omitempty"` // the Server response header
	Stderr   string  `json:"stderr,omitempty"`
}

// ErrLost says the output did not carry curl's result line.
var errLost = fmt.Errorf("the command's output was lost (no result line)")

// ParseCurl reads curl's output. It fails only when the result line is
// missing, which means the output was lost, not that curl failed.
func ParseCurl(res ExecResult) (CurlResult, error) {
	out := CurlResult{ExitCode: res.ExitCode, Stderr: strings.TrimSpace(res.Stderr)}
	found := false
	sc := bufio.NewScanner(strings.NewReader(res.Stdout))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, curlMarker); ok {
			fields := strings.Fields(rest)
			// An unanswered curl prints an empty remote IP: "000 0.001".
			if len(fields) == 2 {
				fields = append([]string{""}, fields...)
			}
			if len(fields) != 3 {
				return out, fmt.Errorf("malformed result line %q", line)
			}
			out.RemoteIP = fields[0]
			out.HTTPCode, _ = strconv.Atoi(fields[1])
			out.Seconds, _ = strconv.ParseFloat(fields[2], 64)
			found = true
			continue
		}
		if name, value, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "server") {
			out.Server = strings.TrimSpace(value) // the last response's, after redirects
		}
	}
	if !found {
		return out, errLost
	}
	return out, nil
}

// curlExitReasons are the curl exit codes a broken dual-stack path gives.
var curlExitReasons = map[int]string{
	6:  "could not resolve the host (no address of this family?)",
	7:  "could not connect (nothing listening on this family, or refused)",
	28: "timed out (packets dropped: routes, security groups, network policy?)",
	35: "TLS handshake failed",
	52: "empty reply from server",
	56: "connection reset while receiving",
}

// Describe says what a failed curl means, for the report.
func (r CurlResult) Describe() string {
	reason := curlExitReasons[r.ExitCode]
	if reason == "" {
		reason = "failed"
	}
	msg := fmt.Sprintf("curl exit %d: %s", r.ExitCode, reason)
	if r.Stderr != "" {
		msg += ": " + r.Stderr
	}
	return msg
}

// Curl execs curl in a pod and parses its result; an error means the result
// was lost.
func Curl(ctx context.Context, e Execer, target PodRef, f Family, url string, o CurlOptions) (CurlResult, error) {
	res, err := e.Exec(ctx, target.Namespace, target.Name, target.Container, CurlCommand(f, url, o))
	if err != nil {
		return CurlResult{}, err
	}
	return ParseCurl(res)
}

// PodRef names a container to exec in.
type PodRef struct {
	Namespace, Name, Container string
}

func (p PodRef) String() string { return p.Namespace + "/" + p.Name }
