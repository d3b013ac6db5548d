package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// DryRun is the --dry-run strategy, as in kubectl.
type DryRun string

const (
	DryRunNone   DryRun = "none"
	DryRunClient DryRun = "client"
	DryRunServer DryRun = "server"
)

// ErrNotConfirmed is returned when a change was shown but not applied because
// nobody confirmed it. It exits 1: nothing the user asked for was done.
var ErrNotConfirmed = errors.New("nothing was changed")

// MutationFlags are the flags every command that changes something shares:
// --yes and --dry-run. Confirm implements the one confirmation rule of the
// suite: show the plan, then ask, unless --yes; never prompt without a
// terminal on stdin.
type MutationFlags struct {
	Yes    bool
	DryRun string
}

// NewMutationFlags defaults to asking, with no dry run.
func NewMutationFlags() *MutationFlags { return &MutationFlags{DryRun: string(DryRunNone)} }

// AddFlags registers --yes/-y and --dry-run.
func (m *MutationFlags) AddFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&m.Yes, "yes", "y", false, "Make the changes without asking for confirmation.")
	cmd.Flags().StringVar(&m.DryRun, "dry-run", m.DryRun,
		`Must be "none", "client", or "server". If client, only print the plan. If server, send the changes to be checked, not persisted.`)
	cmd.Flags().Lookup("dry-run").NoOptDefVal = string(DryRunClient)
	_ = cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions(
		[]string{string(DryRunNone), string(DryRunClient), string(DryRunServer)}, cobra.ShellCompDirectiveNoFileComp))
}

// Strategy validates --dry-run and returns it.
func (m *MutationFlags) Strategy() (DryRun, error) {
	switch d := DryRun(m.DryRun); d {
	case DryRunNone, DryRunClient, DryRunServer:
		return d, nil
	case "true": // kubectl's old boolean spelling
		return DryRunClient, nil
	case "false":
		return DryRunNone, nil
	default:
		return "", Usagef(`invalid --dry-run value %q: use --dry-run=none, --dry-run=client or --dry-run=server`, m.DryRun)
	}
}

// Confirm asks whether to apply what the caller has just printed. It returns
// nil to go ahead, ErrNotConfirmed when the user declined or could not be
// asked, or the context's error when interrupted while waiting.
//   - --yes: go ahead without asking.
//   - no terminal on stdin: never prompt; say how to apply and stop.
//   - a terminal: ask "<question> [y/N]" and go ahead only on yes.
func (m *MutationFlags) Confirm(ctx context.Context, streams genericiooptions.IOStreams, command, question string) error {
	if m.Yes {
		return nil
	}
	if !IsTerminal(streams.In) {
		fmt.Fprintf(streams.ErrOut, "Not applied: stdin is not a terminal, so there is nobody to confirm. Re-run with --yes to apply: %s --yes\n", command)
		return ErrNotConfirmed
	}
	ok, err := AskYesNo(ctx, streams.In, streams.ErrOut, question)
	if err != nil {
		return err
	}
	if !ok {
		fmt.Fprintln(streams.ErrOut, "Not applied: declined.")
		return ErrNotConfirmed
	}
	return nil
}

// AskYesNo prints question and reads one answer line from in. Only "y" or
// "yes" (any case) mean yes; an empty line or end of input mean no.
func AskYesNo(ctx context.Context, in io.Reader, out io.Writer, question string) (bool, error) {
	fmt.Fprintf(out, "%s [y/N]: ", question)
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(in).ReadString('\n')
		answer <- line
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(out)
		return false, ctx.Err()
	case line := <-answer:
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return true, nil
		default:
			return false, nil
		}
	}
}
