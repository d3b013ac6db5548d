package plugin

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// Set at build time with -ldflags "-X .../pkg/plugin.version=v1.2.3 ...".
var (
	version   = "v0.0.0-dev"
	commit    = "unknown"
	buildDate = "unknown"
)

// VersionInfo is what `version -o json` prints; the field names are stable.
type VersionInfo struct {
	Version   string `json:"version"`
	GitCommit string `json:"gitCommit"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// CurrentVersion describes this binary.
func CurrentVersion() VersionInfo {
	return VersionInfo{
		Version:   version,
		GitCommit: commit,
		BuildDate: buildDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// VersionOptions prints the build's version; it never contacts a cluster.
type VersionOptions struct {
	Output *cli.OutputFlags
	inv    Invocation
	genericiooptions.IOStreams
}

// NewCmdVersion builds `version`.
func NewCmdVersion(inv Invocation, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VersionOptions{Output: cli.NewOutputFlags(cli.FormatTable, cli.FormatJSON, cli.FormatYAML), inv: inv, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version and git commit",
		Example: fmt.Sprintf(`  %[1]s version
  %[1]s version -o json`, inv.Command("")),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := o.Output.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	o.Output.AddFlags(cmd)
	return cmd
}

// Run prints the version.
func (o *VersionOptions) Run() error {
	v := CurrentVersion()
	return o.Output.Print(o.Out, v, func(w io.Writer, _ bool) error {
		_, err := fmt.Fprintf(w, "%s %s (commit %s, built %s, %s, %s)\n",
			o.inv.DisplayName, v.Version, v.GitCommit, v.BuildDate, v.GoVersion, v.Platform)
		return err
	})
}
