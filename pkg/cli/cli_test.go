package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitFailed},
		{SilentFailure, ExitFailed},
		{Usagef("bad"), ExitBadUsage},
		{fmt.Errorf("wrapped: %w", Usagef("bad")), ExitBadUsage},
		{ErrNotConfirmed, ExitFailed},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestConfirm(t *testing.T) {
	ctx := context.Background()
	streams := func(in string) (genericiooptions.IOStreams, *bytes.Buffer) {
		errOut := &bytes.Buffer{}
		return genericiooptions.IOStreams{In: strings.NewReader(in), Out: io.Discard, ErrOut: errOut}, errOut
	}

	s, _ := streams("")
	if err := (&MutationFlags{Yes: true}).Confirm(ctx, s, "kubectl dualstack x", "Apply?"); err != nil {
		t.Fatalf("--yes must go ahead: %v", err)
	}

	// A strings.Reader is not a terminal: never prompt, say how to apply.
	s, errOut := streams("y\n")
	err := (&MutationFlags{}).Confirm(ctx, s, "kubectl dualstack x", "Apply?")
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("without a terminal: %v, want ErrNotConfirmed", err)
	}
	if msg := errOut.String(); !strings.Contains(msg, "kubectl dualstack x --yes") || strings.Contains(msg, "[y/N]") {
		t.Fatalf("must not prompt and must name the --yes command: %q", msg)
	}
}

func TestAskYesNo(t *testing.T) {
	for in, want := range map[string]bool{"y\n": true, "YES\n": true, "\n": false, "n\n": false, "": false, "yep\n": false} {
		got, err := AskYesNo(context.Background(), strings.NewReader(in), io.Discard, "Apply?")
		if err != nil || got != want {
			t.Errorf("answer %q: got %v, %v; want %v", in, got, err, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, _ := io.Pipe() // never answers
	if _, err := AskYesNo(ctx, r, io.Discard, "Apply?"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ctrl-C while asking: %v", err)
	}
}

func TestDryRunStrategy(t *testing.T) {
	for in, want := range map[string]DryRun{"none": DryRunNone, "client": DryRunClient, "server": DryRunServer, "true": DryRunClient, "false": DryRunNone} {
		got, err := (&MutationFlags{DryRun: in}).Strategy()
		if err != nil || got != want {
			t.Errorf("--dry-run=%s: %v %v", in, got, err)
		}
	}
	if _, err := (&MutationFlags{DryRun: "maybe"}).Strategy(); ExitCode(err) != ExitBadUsage {
		t.Fatalf("bad --dry-run must be a usage error: %v", err)
	}
}

func TestOutputFlags(t *testing.T) {
	o := NewOutputFlags(FormatTable, FormatJSON, FormatYAML)
	o.Format = "xml"
	if err := o.Validate(); ExitCode(err) != ExitBadUsage {
		t.Fatalf("xml: %v", err)
	}
	data := struct {
		Name string `json:"name"`
	}{"x"}
	for format, want := range map[string]string{FormatJSON: "{\n  \"name\": \"x\"\n}\n", FormatYAML: "name: x\n", FormatTable: "table false\n"} {
		o.Format = format
		var buf bytes.Buffer
		err := o.Print(&buf, data, func(w io.Writer, wide bool) error {
			_, err := fmt.Fprintf(w, "table %v\n", wide)
			return err
		})
		if err != nil || buf.String() != want {
			t.Errorf("%s: %q %v, want %q", format, buf.String(), err, want)
		}
	}
}
