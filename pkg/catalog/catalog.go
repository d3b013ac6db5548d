// Package catalog reads plugins.yaml, the suite's catalogue of the plugin
// executables it ships and of the krew metadata the release uses.
//
// plugins.yaml is the one place these names are decided; the Makefile,
// .goreleaser.yaml and .krew.yaml repeat them, and this package's tests check
// that they still agree.
package catalog

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// FileName is the catalogue's name at the repository root.
const FileName = "plugins.yaml"

// Catalog is plugins.yaml.
type Catalog struct {
	Krew    Krew    `json:"krew"`
	License License `json:"license"`
	// MainPackage is the Go main package every plugin executable is built from.
	MainPackage string `json:"mainPackage"`
	// Platforms are the release's GOOS/GOARCH pairs.
	Platforms   []Platform   `json:"platforms"`
	Executables []Executable `json:"executables"`
}

// Krew is the metadata of the krew-index manifest.
type Krew struct {
	// Name is the krew plugin name: `kubectl krew install <Name>`.
	Name             string `json:"name"`
	Homepage         string `json:"homepage"`
	ShortDescription string `json:"shortDescription"`
	Description      string `json:"description"`
	Caveats          string `json:"caveats,omitempty"`
}

// License names the license and the file every release archive carries.
type License struct {
	SPDX string `json:"spdx"`
	File string `json:"file"`
}

// Platform is one release target.
type Platform struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
}

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Kind says how kubectl or oc finds an executable.
type Kind string

const (
	// KindPlugin is an executable named <cli>-<krew name>, run as `<cli> <krew name>`.
	KindPlugin Kind = "plugin"
	// KindCompletion is a kubectl_complete-<krew name> shim for shell completion.
	KindCompletion Kind = "completion"
)

// Executable is one file the suite puts on a user's PATH.
type Executable struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Command is what a user types: "kubectl dualstack", "oc dualstack".
	Command string `json:"command"`
	// CopyOf, for a plugin, names the executable it is a copy or link of;
	// empty for the one binary built from MainPackage.
	CopyOf string `json:"copyOf,omitempty"`
	// Completes, for a completion shim, names the executable whose hidden
	// __complete command it runs.
	Completes string `json:"completes,omitempty"`
	// Script, for a completion shim, is its path in the repository.
	Script string `json:"script,omitempty"`
}

// Load reads and validates the catalogue at path.
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plugin catalogue: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a catalogue. Unknown fields are errors, so a
// misspelt key cannot silently drop a setting.
func Parse(data []byte) (*Catalog, error) {
	var c Catalog
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("parse plugin catalogue: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid plugin catalogue: %w", err)
	}
	return &c, nil
}

// KrewName is the krew plugin name.
func (c *Catalog) KrewName() string { return c.Krew.Name }

// Primary is the plugin executable built from MainPackage: the binary in the
// release archives and krew's `bin`. It is the zero Executable only in a
// catalogue that has not passed Validate.
func (c *Catalog) Primary() Executable {
	for _, e := range c.Executables {
		if e.Kind == KindPlugin && e.CopyOf == "" {
			return e
		}
	}
	return Executable{}
}

// Executable finds an executable by name.
func (c *Catalog) Executable(name string) (Executable, bool) {
	for _, e := range c.Executables {
		if e.Name == name {
			return e, true
		}
	}
	return Executable{}, false
}

// ExecutableNames lists every executable, in catalogue order.
func (c *Catalog) ExecutableNames() []string { return c.names(func(Executable) bool { return true }) }

// PluginNames lists the plugin executables (the binary and its copies), in
// catalogue order: the Makefile's PLUGINS.
func (c *Catalog) PluginNames() []string {
	return c.names(func(e Executable) bool { return e.Kind == KindPlugin })
}

// CompletionShimNames lists the completion shims: the Makefile's COMPLETION_SHIM.
func (c *Catalog) CompletionShimNames() []string {
	return c.names(func(e Executable) bool { return e.Kind == KindCompletion })
}

func (c *Catalog) names(keep func(Executable) bool) []string {
	var names []string
	for _, e := range c.Executables {
		if keep(e) {
			names = append(names, e.Name)
		}
	}
	return names
}

// BinaryName is the primary binary's file name on goos (".exe" on Windows).
func (c *Catalog) BinaryName(goos string) string {
	name := c.Primary().Name
	if goos == "windows" {
		name += ".exe"
	}
	return name
}

// ArchiveName is the release asset for a platform:
// <binary>_<tag>_<os>_<arch>.tar.gz, or .zip on Windows, whose users have no
// tar by default. The tag keeps its "v" because krew-release-bot builds the
// download URLs from the tag name.
func (c *Catalog) ArchiveName(tag string, p Platform) string {
	return fmt.Sprintf("%s_%s_%s_%s.%s", c.Primary().Name, tag, p.OS, p.Arch, ArchiveFormat(p.OS))
}

// ArchiveFormat is the release archive format for goos.
func ArchiveFormat(goos string) string {
	if goos == "windows" {
		return "zip"
	}
	return "tar.gz"
}

// ReleaseURL is where a release's archive for p is downloaded from: the
// GitHub release of tag in the homepage repository.
func (c *Catalog) ReleaseURL(tag string, p Platform) string {
	return strings.TrimSuffix(c.Krew.Homepage, "/") + "/releases/download/" + tag + "/" + c.ArchiveName(tag, p)
}
