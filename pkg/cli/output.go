package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats a reporting command accepts with -o.
const (
	FormatTable = "table"
	FormatWide  = "wide"
	FormatJSON  = "json"
	FormatYAML  = "yaml"
)

// OutputFlags binds -o/--output. The zero Format means the table.
type OutputFlags struct {
	Format  string
	allowed []string
}

// NewOutputFlags accepts the given formats; the first one is the default.
func NewOutputFlags(allowed ...string) *OutputFlags {
	return &OutputFlags{Format: allowed[0], allowed: allowed}
}

// AddFlags registers -o/--output with shell completion of the formats.
func (o *OutputFlags) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.Format, "output", "o", o.Format,
		"Output format. One of: "+strings.Join(o.allowed, "|")+".")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(o.allowed, cobra.ShellCompDirectiveNoFileComp))
}

// Validate rejects a format the command does not offer.
func (o *OutputFlags) Validate() error {
	if !slices.Contains(o.allowed, o.Format) {
		return Usagef("unsupported output format %q: use -o %s", o.Format, strings.Join(o.allowed, "|"))
	}
	return nil
}

// Structured reports whether the format is machine-readable (json or yaml).
func (o *OutputFlags) Structured() bool {
	return o.Format == FormatJSON || o.Format == FormatYAML
}

// Print writes data as JSON or YAML, or calls table for the human formats
// (table reports whether the wide variant was asked for).
func (o *OutputFlags) Print(w io.Writer, data any, table func(w io.Writer, wide bool) error) error {
	switch o.Format {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(data)
	case FormatYAML:
		b, err := yaml.Marshal(data)
		if err != nil {
			return fmt.Errorf("encoding YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	default:
		return table(w, o.Format == FormatWide)
	}
}
