package catalog

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// krewNamePattern is krew-index's naming convention: lowercase words joined
// by dashes (krew itself only insists on [\w-]+).
var krewNamePattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// supportedPlatforms are the pairs that both krew (validate-krew-manifest's
// list) and the Go toolchain support.
var supportedPlatforms = map[Platform]bool{
	{"linux", "386"}: true, {"linux", "amd64"}: true, {"linux", "arm"}: true, {"linux", "arm64"}: true,
	{"darwin", "amd64"}: true, {"darwin", "arm64"}: true,
	{"windows", "386"}: true, {"windows", "amd64"}: true, {"windows", "arm64"}: true,
}

// pluginCLIs are the CLIs whose plugin mechanism finds <cli>-<name> on PATH.
var pluginCLIs = []string{"kubectl", "oc"}

// Validate reports every problem in the catalogue at once, each prefixed with
// the field it is about, so one edit-and-test round fixes them all.
func (c *Catalog) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	c.validateKrew(bad)
	if c.License.SPDX == "" {
		bad("license.spdx", "must name the license (an SPDX identifier such as Apache-2.0)")
	}
	// krew and goreleaser both take the license from the archive root.
	if f := c.License.File; f == "" || strings.ContainsAny(f, `/\`) {
		bad("license.file", "must be a file name at the repository root, got %q", f)
	}
	if p := c.MainPackage; !strings.HasPrefix(p, "./") || path.Clean(p) != strings.TrimPrefix(p, "./") {
		bad("mainPackage", "must be a clean relative package path like ./cmd/x, got %q", p)
	}
	c.validatePlatforms(bad)
	c.validateExecutables(bad)
	return errors.Join(errs...)
}

func (c *Catalog) validateKrew(bad func(field, format string, args ...any)) {
	k := c.Krew
	if !krewNamePattern.MatchString(k.Name) {
		bad("krew.name", "must be lowercase words joined by dashes, got %q", k.Name)
	}
	if u, err := url.Parse(k.Homepage); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("krew.homepage", "must be an https URL, got %q", k.Homepage)
	}
	switch {
	case strings.TrimSpace(k.ShortDescription) == "":
		bad("krew.shortDescription", "must not be empty")
	case strings.ContainsAny(k.ShortDescription, "\r\n"):
		bad("krew.shortDescription", "must be one line (krew rejects line breaks)")
	}
	if strings.TrimSpace(k.Description) == "" {
		bad("krew.description", "must not be empty")
	}
}

func (c *Catalog) validatePlatforms(bad func(field, format string, args ...any)) {
	if len(c.Platforms) == 0 {
		bad("platforms", "must list at least one os/arch")
	}
	seen := map[Platform]bool{}
	for i, p := range c.Platforms {
		field := fmt.Sprintf("platforms[%d]", i)
		switch {
		case !supportedPlatforms[p]:
			bad(field, "%s is not a platform both krew and Go support", p)
		case seen[p]:
			bad(field, "%s is listed twice", p)
		}
		seen[p] = true
	}
}

func (c *Catalog) validateExecutables(bad func(field, format string, args ...any)) {
	name := c.Krew.Name
	primaryName := "kubectl-" + name
	// kubectl looks for kubectl_complete-<plugin name with "-" as "_">.
	shimName := "kubectl_complete-" + strings.ReplaceAll(name, "-", "_")

	kinds := map[string]Kind{}
	var primaries []string
	for i, e := range c.Executables {
		field := fmt.Sprintf("executables[%d]", i)
		if _, dup := kinds[e.Name]; dup {
			bad(field+".name", "%q is listed twice", e.Name)
		}
		kinds[e.Name] = e.Kind
		if e.Kind == KindPlugin && e.CopyOf == "" {
			primaries = append(primaries, e.Name)
		}
	}
	if len(primaries) != 1 {
		bad("executables", "need exactly one plugin without copyOf (the binary built from mainPackage), found %d: %v",
			len(primaries), primaries)
	} else if primaries[0] != primaryName {
		// krew links `bin` as kubectl-<krew name>; the release binary keeps that name too.
		bad("executables", "the binary built from mainPackage must be named %q, got %q", primaryName, primaries[0])
	}
	isPrimary := func(n string) bool { return len(primaries) == 1 && n == primaries[0] }

	for i, e := range c.Executables {
		field := fmt.Sprintf("executables[%d]", i)
		switch e.Kind {
		case KindPlugin:
			cli, ok := pluginCLI(e.Name, name)
			if !ok {
				bad(field+".name", "a plugin must be named <cli>-%s with cli one of %v, got %q", name, pluginCLIs, e.Name)
			} else if want := cli + " " + name; e.Command != want {
				bad(field+".command", "must be %q for %s, got %q", want, e.Name, e.Command)
			}
			if e.CopyOf != "" && !isPrimary(e.CopyOf) {
				bad(field+".copyOf", "must name the binary built from mainPackage, got %q", e.CopyOf)
			}
			if e.Completes != "" || e.Script != "" {
				bad(field, "completes and script are for kind %q only", KindCompletion)
			}
		case KindCompletion:
			if e.Name != shimName {
				bad(field+".name", "kubectl only runs a completion shim named %q, got %q", shimName, e.Name)
			}
			if want := "kubectl " + name; e.Command != want {
				bad(field+".command", "must be %q, got %q", want, e.Command)
			}
			if !isPrimary(e.Completes) {
				bad(field+".completes", "must name the binary built from mainPackage, got %q", e.Completes)
			}
			if e.Script == "" || path.IsAbs(e.Script) || strings.HasPrefix(path.Clean(e.Script), "..") {
				bad(field+".script", "must be a path inside the repository, got %q", e.Script)
			}
			if e.CopyOf != "" {
				bad(field+".copyOf", "is for kind %q only", KindPlugin)
			}
		default:
			bad(field+".kind", "must be %q or %q, got %q", KindPlugin, KindCompletion, e.Kind)
		}
	}
}

// pluginCLI returns the CLI that finds an executable named exe as the plugin
// krewName.
func pluginCLI(exe, krewName string) (string, bool) {
	for _, cli := range pluginCLIs {
		if exe == cli+"-"+krewName {
			return cli, true
		}
	}
	return "", false
}
