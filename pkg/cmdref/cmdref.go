// Package cmdref writes the command reference from the command tree itself,
// with cobra's generator: a Markdown page per command (checked in under
// docs/commands/, where the README links to it) and a man page per command.
// The plugin binary does not link this package: the reference is built by
// `make docs` (hack/gendocs), and a test keeps the checked-in pages current.
package cmdref

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/plugin"
)

// root is the command tree as kubectl users call it ("kubectl dualstack").
func root() *cobra.Command {
	streams := genericiooptions.IOStreams{In: nil, Out: io.Discard, ErrOut: io.Discard}
	cmd := plugin.NewRootCmd(plugin.InvocationFrom("kubectl-dualstack"), streams)
	// No "Auto generated ... on <date>" line: the same tree gives the same pages.
	cmd.DisableAutoGenTag = true
	return cmd
}

// Markdown writes one page per command into dir (kubectl_dualstack.md,
// kubectl_dualstack_status.md, ...), linked to each other.
func Markdown(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := doc.GenMarkdownTree(root(), dir); err != nil {
		return fmt.Errorf("writing the Markdown reference to %s: %w", dir, err)
	}
	return nil
}

// Man writes one man page per command into dir (section 1).
func Man(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	header := &doc.GenManHeader{Title: "KUBECTL-DUALSTACK", Section: "1", Source: "kubectl-dualstack", Manual: "kubectl dualstack manual"}
	if err := doc.GenManTree(root(), header, dir); err != nil {
		return fmt.Errorf("writing man pages to %s: %w", dir, err)
	}
	return nil
}

// Pages lists the files of a reference directory, for comparisons.
func Pages(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out[e.Name()] = b
	}
	return out, nil
}
