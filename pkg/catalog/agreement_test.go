package catalog_test

// These tests hold the files that repeat plugins.yaml to it: the Makefile,
// .krew.yaml, .goreleaser.yaml, LICENSE and the completion shim. None of those
// can read plugins.yaml, so without these checks a rename or a new platform
// would ship half-done.

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-dualstack/kubectl-dualstack/pkg/catalog"
)

const (
	repoRoot = "../.."
	// testTag stands in for a release tag; any semver tag would do.
	testTag = "v0.1.0"
)

func repoFile(name string) string { return filepath.Join(repoRoot, filepath.FromSlash(name)) }

func loadRepoCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load(repoFile(catalog.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readRepoFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(repoFile(name))
	if err != nil {
		t.Fatalf("%s must exist and agree with %s: %v", name, catalog.FileName, err)
	}
	return data
}

// TestMakefileAgrees reads the two variables the Makefile builds and installs
// from; each must be one line, `NAME := words`, so this test can read it.
func TestMakefileAgrees(t *testing.T) {
	c := loadRepoCatalog(t)
	makefile := string(readRepoFile(t, "Makefile"))
	for _, tc := range []struct {
		variable string
		want     []string
	}{
		{"PLUGINS", c.PluginNames()},
		{"COMPLETION_SHIM", c.CompletionShimNames()},
	} {
		got, err := makeVariable(makefile, tc.variable)
		if err != nil {
			t.Errorf("Makefile: %v", err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Makefile: %s is %q, %s says %q", tc.variable, got, catalog.FileName, tc.want)
		}
	}
}

func makeVariable(makefile, name string) ([]string, error) {
	def := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\s*(?::=|::=|=)(.*)$`)
	var values []string
	sc := bufio.NewScanner(strings.NewReader(makefile))
	for sc.Scan() {
		m := def.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		value, _, _ := strings.Cut(m[1], "#")
		if strings.HasSuffix(strings.TrimSpace(value), `\`) {
			return nil, fmt.Errorf("keep %s on one line so it can be checked", name)
		}
		values = append(values, value)
	}
	switch len(values) {
	case 0:
		return nil, fmt.Errorf("no line `%s := ...`", name)
	case 1:
		return strings.Fields(values[0]), nil
	default:
		return nil, fmt.Errorf("%s is defined %d times; define it once", name, len(values))
	}
}

// krewManifest is the part of krew's index.Plugin the template fills in.
// Decoding strictly catches a misspelt key, which krew would reject.
type krewManifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string         `json:"version"`
		Homepage         string         `json:"homepage"`
		ShortDescription string         `json:"shortDescription"`
		Description      string         `json:"description"`
		Caveats          string         `json:"caveats"`
		Platforms        []krewPlatform `json:"platforms"`
	} `json:"spec"`
}

type krewPlatform struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	URI    string `json:"uri"`
	Sha256 string `json:"sha256"`
	Files  []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"files"`
	Bin string `json:"bin"`
}

// renderKrewTemplate renders .krew.yaml as krew-release-bot does, with a fake
// checksum: the bot's addURIAndSha renders its URL argument as a template of
// its own and prints the uri and sha256 lines (the second indented 4 spaces).
func renderKrewTemplate(t *testing.T, tag string) []byte {
	t.Helper()
	fakeSHA := strings.Repeat("5a", 32)
	funcs := template.FuncMap{
		"addURIAndSha": func(urlTemplate, tag string) (string, error) {
			u, err := template.New("url").Parse(urlTemplate)
			if err != nil {
				return "", err
			}
			var uri strings.Builder
			if err := u.Execute(&uri, struct{ TagName, Version string }{tag, strings.TrimPrefix(tag, "v")}); err != nil {
				return "", err
			}
			return "uri: " + uri.String() + "\n    sha256: " + fakeSHA, nil
		},
	}
	tmpl, err := template.New(".krew.yaml").Funcs(funcs).Parse(string(readRepoFile(t, ".krew.yaml")))
	if err != nil {
		t.Fatalf(".krew.yaml is not a valid krew-release-bot template: %v", err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, struct{ TagName string }{tag}); err != nil {
		t.Fatalf("render .krew.yaml: %v", err)
	}
	return out.Bytes()
}

func TestKrewTemplateAgrees(t *testing.T) {
	c := loadRepoCatalog(t)
	rendered := renderKrewTemplate(t, testTag)
	var m krewManifest
	if err := yaml.UnmarshalStrict(rendered, &m); err != nil {
		t.Fatalf(".krew.yaml renders to a manifest that does not decode: %v\n%s", err, rendered)
	}

	for _, f := range []struct{ field, got, want string }{
		{"apiVersion", m.APIVersion, "krew.googlecontainertools.github.com/v1alpha2"},
		{"kind", m.Kind, "Plugin"},
		{"metadata.name", m.Metadata.Name, c.Krew.Name},
		{"spec.version", m.Spec.Version, testTag},
		{"spec.homepage", m.Spec.Homepage, c.Krew.Homepage},
		{"spec.shortDescription", m.Spec.ShortDescription, c.Krew.ShortDescription},
		{"spec.description", m.Spec.Description, c.Krew.Description},
		{"spec.caveats", m.Spec.Caveats, c.Krew.Caveats},
	} {
		if f.got != f.want {
			t.Errorf(".krew.yaml %s:\n%s\n%s says:\n%s", f.field, f.got, catalog.FileName, f.want)
		}
	}

	var platforms []catalog.Platform
	for i, p := range m.Spec.Platforms {
		labels := p.Selector.MatchLabels
		platform := catalog.Platform{OS: labels["os"], Arch: labels["arch"]}
		platforms = append(platforms, platform)
		field := fmt.Sprintf(".krew.yaml spec.platforms[%d] (%s)", i, platform)
		if len(labels) != 2 {
			t.Errorf("%s: selector.matchLabels must be exactly os and arch, got %v", field, labels)
		}
		if want := c.ReleaseURL(testTag, platform); p.URI != want {
			t.Errorf("%s: uri %s, want the goreleaser archive %s", field, p.URI, want)
		}
		bin := c.BinaryName(platform.OS)
		if p.Bin != bin {
			t.Errorf("%s: bin %q, want %q", field, p.Bin, bin)
		}
		var from []string
		for _, f := range p.Files {
			from = append(from, f.From)
			if f.To != "." {
				t.Errorf("%s: files entry %q goes to %q; the plugin expects its files together in the install root", field, f.From, f.To)
			}
		}
		// Exactly the binary and the license: krew-index wants the license
		// installed, and nothing else is in the archive.
		if want := []string{bin, c.License.File}; !slices.Equal(from, want) {
			t.Errorf("%s: files from %q, want %q", field, from, want)
		}
	}
	if !slices.Equal(platforms, c.Platforms) {
		t.Errorf(".krew.yaml platforms %v, %s says %v (same order)", platforms, catalog.FileName, c.Platforms)
	}
}

// goreleaserConfig is the part of .goreleaser.yaml the release layout depends
// on. It is decoded leniently: goreleaser has many settings this test does
// not care about.
type goreleaserConfig struct {
	Version     int    `json:"version"`
	ProjectName string `json:"project_name"`
	Builds      []struct {
		ID      string   `json:"id"`
		Main    string   `json:"main"`
		Binary  string   `json:"binary"`
		Env     []string `json:"env"`
		Goos    []string `json:"goos"`
		Goarch  []string `json:"goarch"`
		Goarm   []string `json:"goarm"`
		Ignore  []any    `json:"ignore"`
		Targets []string `json:"targets"`
		Ldflags []string `json:"ldflags"`
	} `json:"builds"`
	Archives []struct {
		ID              string   `json:"id"`
		IDs             []string `json:"ids"`
		NameTemplate    string   `json:"name_template"`
		Format          string   `json:"format"`
		Formats         []string `json:"formats"`
		FormatOverrides []struct {
			Goos    string   `json:"goos"`
			Format  string   `json:"format"`
			Formats []string `json:"formats"`
		} `json:"format_overrides"`
		Files           []any `json:"files"`
		WrapInDirectory any   `json:"wrap_in_directory"`
		Meta            bool  `json:"meta"`
	} `json:"archives"`
}

func TestGoreleaserAgrees(t *testing.T) {
	c := loadRepoCatalog(t)
	var g goreleaserConfig
	if err := yaml.Unmarshal(readRepoFile(t, ".goreleaser.yaml"), &g); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	if g.Version != 2 {
		t.Errorf(".goreleaser.yaml: version %d; this check knows goreleaser v2's schema", g.Version)
	}
	primary := c.Primary().Name
	if g.ProjectName != primary {
		t.Errorf(".goreleaser.yaml: project_name %q, want %q", g.ProjectName, primary)
	}

	if len(g.Builds) != 1 {
		t.Fatalf(".goreleaser.yaml: want one build (the plugin binary), got %d", len(g.Builds))
	}
	b := g.Builds[0]
	if b.Main != c.MainPackage || b.Binary != primary {
		t.Errorf(".goreleaser.yaml builds[0]: main %q binary %q, want %q %q", b.Main, b.Binary, c.MainPackage, primary)
	}
	if !slices.Contains(b.Env, "CGO_ENABLED=0") {
		t.Errorf(".goreleaser.yaml builds[0]: env %q lacks CGO_ENABLED=0 (krew users need a static binary)", b.Env)
	}
	if len(b.Ignore) > 0 || len(b.Targets) > 0 || len(b.Goarm) > 0 {
		t.Errorf(".goreleaser.yaml builds[0]: ignore/targets/goarm change the platforms; list them in %s as goos x goarch", catalog.FileName)
	}
	var built []catalog.Platform
	for _, goos := range b.Goos {
		for _, arch := range b.Goarch {
			built = append(built, catalog.Platform{OS: goos, Arch: arch})
		}
	}
	if !samePlatforms(built, c.Platforms) {
		t.Errorf(".goreleaser.yaml builds[0] goos x goarch = %v, %s says %v", built, catalog.FileName, c.Platforms)
	}
	ldflags := strings.Join(b.Ldflags, " ")
	for _, v := range versionVars {
		want := fmt.Sprintf("-X %s/pkg/plugin.%s={{.%s}}", modulePath(t), v.name, v.goreleaserField)
		if !strings.Contains(ldflags, want) {
			t.Errorf(".goreleaser.yaml builds[0]: ldflags lack %q", want)
		}
	}

	if len(g.Archives) != 1 {
		t.Fatalf(".goreleaser.yaml: want one archive set, got %d", len(g.Archives))
	}
	a := g.Archives[0]
	if len(a.IDs) != 0 && !slices.Equal(a.IDs, []string{b.ID}) {
		t.Errorf(".goreleaser.yaml archives[0]: ids %q, want [%q]", a.IDs, b.ID)
	}
	if a.Meta {
		t.Error(".goreleaser.yaml archives[0]: meta archives carry no binary")
	}
	// krew's `files: from: <binary>` expects it at the archive root.
	if a.WrapInDirectory != nil && a.WrapInDirectory != false {
		t.Errorf(".goreleaser.yaml archives[0]: wrap_in_directory %v moves the binary out of the archive root", a.WrapInDirectory)
	}
	if !hasFile(a.Files, c.License.File) {
		t.Errorf(".goreleaser.yaml archives[0]: files %v lack %s at the archive root; krew-index requires the license in every archive",
			a.Files, c.License.File)
	}
	nameTemplate, err := template.New("name_template").Option("missingkey=error").Parse(a.NameTemplate)
	if err != nil {
		t.Fatalf(".goreleaser.yaml archives[0].name_template: %v", err)
	}
	for _, p := range c.Platforms {
		var name strings.Builder
		err := nameTemplate.Execute(&name, map[string]string{
			"ProjectName": g.ProjectName, "Binary": b.Binary, "Tag": testTag,
			"Version": strings.TrimPrefix(testTag, "v"), "Os": p.OS, "Arch": p.Arch,
		})
		if err != nil {
			t.Fatalf(".goreleaser.yaml archives[0].name_template uses more than this check fills in: %v", err)
		}
		formats := a.Formats
		for _, o := range a.FormatOverrides {
			if o.Goos == p.OS {
				formats = o.Formats
			}
		}
		if len(formats) != 1 {
			t.Errorf(".goreleaser.yaml archives[0]: %s gets formats %q; use formats (not the deprecated format) with exactly one", p, formats)
			continue
		}
		if got, want := name.String()+"."+formats[0], c.ArchiveName(testTag, p); got != want {
			t.Errorf(".goreleaser.yaml archives[0]: %s archive %s, want %s (the name .krew.yaml downloads)", p, got, want)
		}
	}
}

func samePlatforms(a, b []catalog.Platform) bool {
	key := func(p catalog.Platform) string { return p.String() }
	as, bs := sortedKeys(a, key), sortedKeys(b, key)
	return slices.Equal(as, bs)
}

func sortedKeys[T any](items []T, key func(T) string) []string {
	keys := make([]string, 0, len(items))
	for _, it := range items {
		keys = append(keys, key(it))
	}
	slices.Sort(keys)
	return keys
}

// hasFile reports whether goreleaser's archive files list puts name at the
// archive root: either the plain entry or {src: name} without a dst.
func hasFile(files []any, name string) bool {
	for _, f := range files {
		switch f := f.(type) {
		case string:
			if f == name {
				return true
			}
		case map[string]any:
			if f["src"] == name && (f["dst"] == nil || f["dst"] == "" || f["dst"] == ".") {
				return true
			}
		}
	}
	return false
}

// versionVars are the pkg/plugin variables the release stamps with -X, and
// the goreleaser template field each gets.
var versionVars = []struct{ name, goreleaserField string }{
	{"version", "Version"},
	{"commit", "Commit"},
	{"buildDate", "Date"},
}

// TestLdflagsTargetsExist guards against a silent no-op: the linker ignores
// -X for a variable that does not exist or is not a plain string.
func TestLdflagsTargetsExist(t *testing.T) {
	fset := token.NewFileSet()
	stringVars := map[string]bool{}
	files, err := filepath.Glob(repoFile("pkg/plugin/*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in pkg/plugin: %v", err)
	}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.VAR {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					stringVars[name.Name] = isPlainString(vs, i)
				}
			}
		}
	}
	for _, v := range versionVars {
		if !stringVars[v.name] {
			t.Errorf("pkg/plugin must declare `var %s string` (or = \"literal\") at package level for .goreleaser.yaml's -X", v.name)
		}
	}
}

// isPlainString reports whether the i-th name of a var spec is a string the
// linker can set: typed string with no value, or a string literal.
func isPlainString(vs *ast.ValueSpec, i int) bool {
	if len(vs.Values) == 0 {
		id, ok := vs.Type.(*ast.Ident)
		return ok && id.Name == "string"
	}
	lit, ok := vs.Values[i].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return false
	}
	id, typed := vs.Type.(*ast.Ident)
	return vs.Type == nil || typed && id.Name == "string"
}

func modulePath(t *testing.T) string {
	t.Helper()
	for line := range strings.Lines(string(readRepoFile(t, "go.mod"))) {
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			p := strings.TrimSpace(rest)
			if unquoted, err := strconv.Unquote(p); err == nil {
				p = unquoted
			}
			return p
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}

func TestLicenseFile(t *testing.T) {
	c := loadRepoCatalog(t)
	if c.License.SPDX != "Apache-2.0" {
		t.Skipf("this check knows the Apache-2.0 text only, the catalogue says %s", c.License.SPDX)
	}
	text := string(readRepoFile(t, c.License.File))
	for _, want := range []string{
		"Apache License\n                           Version 2.0, January 2004",
		"TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
		"END OF TERMS AND CONDITIONS",
		"Copyright 2026 The kubectl-dualstack Authors",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q", c.License.File, want)
		}
	}
}

func TestCompletionShim(t *testing.T) {
	c := loadRepoCatalog(t)
	for _, name := range c.CompletionShimNames() {
		shim, _ := c.Executable(name)
		t.Run(name, func(t *testing.T) {
			path := repoFile(shim.Script)
			if filepath.Base(path) != shim.Name {
				t.Errorf("script %s must carry the executable's name %s, so installing it is a plain copy", shim.Script, shim.Name)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if runtime.GOOS == "windows" {
				t.Skip("runs the shim with /bin/sh")
			}
			if info.Mode().Perm()&0o111 == 0 {
				t.Errorf("%s is not executable (mode %v)", shim.Script, info.Mode())
			}

			// A stand-in plugin that prints its arguments shows that every
			// word, spaces and empty ones included, reaches __complete.
			bin := t.TempDir()
			fake := "#!/bin/sh\nprintf '[%s]\\n' \"$@\"\n"
			if err := os.WriteFile(filepath.Join(bin, shim.Completes), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(path, "status", "--context", "a b", "")
			cmd.Env = append(os.Environ(), "PATH="+bin)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", shim.Script, err, out)
			}
			if got, want := string(out), "[__complete]\n[status]\n[--context]\n[a b]\n[]\n"; got != want {
				t.Errorf("%s passed %q to %s, want %q", shim.Script, got, shim.Completes, want)
			}
		})
	}
}
