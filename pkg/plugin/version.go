package plugin

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/cli"
)

// Set at build time with -ldflags "-X .../pkg/plugin.version=v1.2.3 ...";
// without them (go install, go build) they come from the build info the
// go command records: the module version and the VCS revision and time.
var (
	version   = "v0.0.0-dev"
	commit    = "unknown"
	buildDate = "unknown"
)

// What they hold when -ldflags did not set them.
const (
	devVersion = "v0.0.0-dev"
	unknown    = "unknown"
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
	v := VersionInfo{
		Version:   version,
		GitCommit: commit,
		BuildDate: buildDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		fromBuildInfo(&v, bi)
	}
	return v
}

// fromBuildInfo fills what -ldflags did not set from the build info: the
// main module's version (`go install ...@v1.2.3` records v1.2.3; a build
// in a git checkout a pseudo-version, "+dirty" when it has changes) and
// the VCS revision and commit time.
func fromBuildInfo(v *VersionInfo, bi *debug.BuildInfo) {
	if v.Version == devVersion && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && v.GitCommit == unknown:
			v.GitCommit = s.Value[:min(len(s.Value), 12)]
		case s.Key == "vcs.time" && v.BuildDate == unknown:
			v.BuildDate = s.Value
		}
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
		tw := printers.GetNewTabWriter(w)
		fmt.Fprintln(tw, "PLUGIN\tVERSION\tCOMMIT\tBUILT\tGO\tPLATFORM")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.inv.DisplayName, v.Version, v.GitCommit, v.BuildDate, v.GoVersion, v.Platform)
		return tw.Flush()
	})
}
