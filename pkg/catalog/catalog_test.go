package catalog

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// validYAML is a complete catalogue, independent of the repository's
// plugins.yaml so these tests pin the rules rather than today's content.
const validYAML = `
krew:
  name: dual-stack
  homepage: https://github.com/example/kubectl-dual-stack
  shortDescription: One line
  description: |
    More lines.
license:
  spdx: Apache-2.0
  file: LICENSE
mainPackage: ./cmd/kubectl-dual-stack
platforms:
  - {os: linux, arch: amd64}
  - {os: windows, arch: arm64}
executables:
  - name: kubectl-dual-stack
    kind: plugin
    command: kubectl dual-stack
  - name: oc-dual-stack
    kind: plugin
    command: oc dual-stack
    copyOf: kubectl-dual-stack
  - name: kubectl_complete-dual_stack
    kind: completion
    command: kubectl dual-stack
    completes: kubectl-dual-stack
    script: hack/kubectl_complete-dual_stack
`

func mustParse(t *testing.T, data string) *Catalog {
	t.Helper()
	c, err := Parse([]byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestHelpers(t *testing.T) {
	c := mustParse(t, validYAML)
	linux := Platform{OS: "linux", Arch: "amd64"}
	windows := Platform{OS: "windows", Arch: "arm64"}

	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"KrewName", c.KrewName(), "dual-stack"},
		{"Primary", c.Primary().Name, "kubectl-dual-stack"},
		{"ExecutableNames", c.ExecutableNames(), []string{"kubectl-dual-stack", "oc-dual-stack", "kubectl_complete-dual_stack"}},
		{"PluginNames", c.PluginNames(), []string{"kubectl-dual-stack", "oc-dual-stack"}},
		{"CompletionShimNames", c.CompletionShimNames(), []string{"kubectl_complete-dual_stack"}},
		{"BinaryName linux", c.BinaryName("linux"), "kubectl-dual-stack"},
		{"BinaryName windows", c.BinaryName("windows"), "kubectl-dual-stack.exe"},
		{"ArchiveName linux", c.ArchiveName("v1.2.3", linux), "kubectl-dual-stack_v1.2.3_linux_amd64.tar.gz"},
		{"ArchiveName windows", c.ArchiveName("v1.2.3", windows), "kubectl-dual-stack_v1.2.3_windows_arm64.zip"},
		{"ReleaseURL", c.ReleaseURL("v1.2.3", linux),
			"https://github.com/example/kubectl-dual-stack/releases/download/v1.2.3/kubectl-dual-stack_v1.2.3_linux_amd64.tar.gz"},
		{"Platform.String", windows.String(), "windows/arm64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, ok := tc.want.([]string); ok {
				if !slices.Equal(tc.got.([]string), s) {
					t.Errorf("got %q, want %q", tc.got, s)
				}
				return
			}
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}

	if e, ok := c.Executable("oc-dual-stack"); !ok || e.CopyOf != "kubectl-dual-stack" {
		t.Errorf(`Executable("oc-dual-stack") = %+v, %v`, e, ok)
	}
	if _, ok := c.Executable("kubectl-nope"); ok {
		t.Error(`Executable("kubectl-nope") found something`)
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*Catalog)
		errHas []string // every fragment must be in the error
	}{
		{"bad krew name", func(c *Catalog) { c.Krew.Name = "Dual_Stack" }, []string{"krew.name"}},
		{"http homepage", func(c *Catalog) { c.Krew.Homepage = "http://example.com" }, []string{"krew.homepage"}},
		{"two-line short description", func(c *Catalog) { c.Krew.ShortDescription = "a\nb" }, []string{"krew.shortDescription", "one line"}},
		{"no description", func(c *Catalog) { c.Krew.Description = " \n" }, []string{"krew.description"}},
		{"no license", func(c *Catalog) { c.License = License{} }, []string{"license.spdx", "license.file"}},
		{"license in a folder", func(c *Catalog) { c.License.File = "docs/LICENSE" }, []string{"license.file"}},
		{"main package not relative", func(c *Catalog) { c.MainPackage = "cmd/x" }, []string{"mainPackage"}},
		{"main package unclean", func(c *Catalog) { c.MainPackage = "./cmd/../x" }, []string{"mainPackage"}},
		{"no platforms", func(c *Catalog) { c.Platforms = nil }, []string{"platforms: must list"}},
		{"unsupported platform", func(c *Catalog) { c.Platforms[0] = Platform{"darwin", "386"} }, []string{"platforms[0]", "darwin/386"}},
		{"duplicate platform", func(c *Catalog) { c.Platforms[1] = c.Platforms[0] }, []string{"platforms[1]", "twice"}},
		{"duplicate executable", func(c *Catalog) { c.Executables[2] = c.Executables[1] }, []string{"executables[2].name", "twice"}},
		{"no primary", func(c *Catalog) { c.Executables[0].CopyOf = "oc-dual-stack" },
			[]string{"exactly one plugin without copyOf", "found 0"}},
		{"two primaries", func(c *Catalog) { c.Executables[1].CopyOf = "" }, []string{"found 2"}},
		{"primary not kubectl-<name>", func(c *Catalog) {
			c.Executables[0], c.Executables[1] = c.Executables[1], c.Executables[0]
			c.Executables[0].CopyOf, c.Executables[1].CopyOf = "", "oc-dual-stack"
		}, []string{`must be named "kubectl-dual-stack"`}},
		{"plugin of unknown cli", func(c *Catalog) { c.Executables[1].Name = "helm-dual-stack" }, []string{"executables[1].name", "<cli>-dual-stack"}},
		{"wrong command", func(c *Catalog) { c.Executables[1].Command = "kubectl dual-stack" }, []string{"executables[1].command", `"oc dual-stack"`}},
		{"copy of a copy", func(c *Catalog) { c.Executables[1].CopyOf = "oc-dual-stack" }, []string{"executables[1].copyOf"}},
		{"plugin with a script", func(c *Catalog) { c.Executables[0].Script = "x" }, []string{"executables[0]: completes and script"}},
		{"shim misnamed", func(c *Catalog) { c.Executables[2].Name = "kubectl_complete-dual-stack" },
			[]string{"executables[2].name", `"kubectl_complete-dual_stack"`}},
		{"shim completes a copy", func(c *Catalog) { c.Executables[2].Completes = "oc-dual-stack" }, []string{"executables[2].completes"}},
		{"shim outside the repo", func(c *Catalog) { c.Executables[2].Script = "../x" }, []string{"executables[2].script"}},
		{"shim without script", func(c *Catalog) { c.Executables[2].Script = "" }, []string{"executables[2].script"}},
		{"unknown kind", func(c *Catalog) { c.Executables[2].Kind = "alias" }, []string{"executables[2].kind"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, validYAML)
			tc.edit(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, frag := range tc.errHas {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error does not mention %q:\n%v", frag, err)
				}
			}
		})
	}
}

func TestParseReportsAllProblems(t *testing.T) {
	c := mustParse(t, validYAML)
	c.Krew.Homepage = ""
	c.MainPackage = ""
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "krew.homepage") || !strings.Contains(err.Error(), "mainPackage") {
		t.Fatalf("want both problems reported, got %v", err)
	}
}

func TestParseRejectsUnknownField(t *testing.T) {
	_, err := Parse([]byte(strings.Replace(validYAML, "shortDescription:", "shortDescripton:", 1)))
	if err == nil || !strings.Contains(err.Error(), "shortDescripton") {
		t.Fatalf("a misspelt key must be an error naming it, got %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(validYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(validYAML, "spdx: Apache-2.0", `spdx: ""`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	if _, err := Load(good); err != nil {
		t.Errorf("Load(good): %v", err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "license.spdx") {
		t.Errorf("Load(bad) should name the file and the field, got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}
