// Command render-krew-manifest renders the krew-release-bot template
// (.krew.yaml) into the manifest a release would publish, against stand-in
// release archives it builds itself, so that krew's own validator can check
// the manifest and install it offline.
//
//	render-krew-manifest -catalog plugins.yaml -template .krew.yaml -tag v0.1.0 -out DIR
//
// It writes DIR/<krew name>.yaml and, for each platform the manifest lists,
// DIR/archives/<os>-<arch>/<asset>, where <asset> is the last element of the
// platform's uri. Each archive is laid out as .goreleaser.yaml lays out the
// real one: the plugin binary (.exe on Windows; here a small stand-in file)
// and the license, at the archive root. It prints the manifest's path.
//
// The archive layout comes from plugins.yaml, not from the manifest, so that
// installing the manifest also tests its files and bin against what the
// release really contains.
//
// With -dist, the directory where goreleaser wrote a (snapshot) release, the
// tag is the release's (from its metadata.json) and each platform whose
// archive goreleaser built gets that archive and its checksum instead of a
// stand-in: the manifest is then the one the release would publish, and
// installing it installs the release build.
//
//	render-krew-manifest -catalog plugins.yaml -template .krew.yaml -dist dist -out DIR
package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"
)

func main() {
	var o options
	flag.StringVar(&o.catalogPath, "catalog", "plugins.yaml", "the suite's plugin catalogue")
	flag.StringVar(&o.templatePath, "template", ".krew.yaml", "krew-release-bot template to render")
	flag.StringVar(&o.tag, "tag", "v0.1.0", "release tag to render for")
	flag.StringVar(&o.outDir, "out", "", "directory for the manifest and the stand-in archives (required)")
	flag.StringVar(&o.distDir, "dist", "", "goreleaser's output directory: take the tag and the archives it built from there")
	flag.Parse()
	if o.outDir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	manifest, err := o.run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "render-krew-manifest: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(manifest)
}

type options struct {
	catalogPath, templatePath, tag, outDir, distDir string
}

// releaseTag is the tag goreleaser built the release in dir for, from the
// metadata.json it writes there.
func releaseTag(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		return "", fmt.Errorf("-dist: %w (run goreleaser first)", err)
	}
	var meta struct {
		Tag string `json:"tag"`
	}
	if err := yaml.Unmarshal(data, &meta); err != nil || meta.Tag == "" {
		return "", fmt.Errorf("-dist: %s/metadata.json names no tag (%v)", dir, err)
	}
	return meta.Tag, nil
}

// catalogue is the part of plugins.yaml this tool needs. It cannot use
// pkg/catalog: requiring the main module here would pull its dependency graph
// (current k8s.io libraries) into the one krew v0.4.3's validator is built from.
type catalogue struct {
	Krew struct {
		Name string `json:"name"`
	} `json:"krew"`
	License struct {
		File string `json:"file"`
	} `json:"license"`
	Executables []struct {
		Name   string `json:"name"`
		Kind   string `json:"kind"`
		CopyOf string `json:"copyOf"`
	} `json:"executables"`
}

// binary is the executable built from the main package: the plugin without copyOf.
func (c catalogue) binary() (string, error) {
	for _, e := range c.Executables {
		if e.Kind == "plugin" && e.CopyOf == "" {
			return e.Name, nil
		}
	}
	return "", errors.New("no plugin executable without copyOf (the built binary)")
}

// manifestPlatforms is the part of the rendered manifest that says which
// archive each platform downloads.
type manifestPlatforms struct {
	Spec struct {
		Platforms []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI string `json:"uri"`
		} `json:"platforms"`
	} `json:"spec"`
}

func (o options) run() (string, error) {
	if o.distDir != "" {
		tag, err := releaseTag(o.distDir)
		if err != nil {
			return "", err
		}
		o.tag = tag
	}
	data, err := os.ReadFile(o.catalogPath)
	if err != nil {
		return "", err
	}
	var cat catalogue
	if err := yaml.Unmarshal(data, &cat); err != nil {
		return "", fmt.Errorf("%s: %w", o.catalogPath, err)
	}
	binary, err := cat.binary()
	if err != nil {
		return "", fmt.Errorf("%s: %w", o.catalogPath, err)
	}
	license, err := os.ReadFile(filepath.Join(filepath.Dir(o.catalogPath), cat.License.File))
	if err != nil {
		return "", fmt.Errorf("license named in %s: %w", o.catalogPath, err)
	}
	tmpl, err := os.ReadFile(o.templatePath)
	if err != nil {
		return "", err
	}

	// The checksums depend on the archives, whose names come from the
	// manifest, so render once with placeholders to learn the URIs.
	placeholder := func(string) (string, error) { return strings.Repeat("0a", 32), nil }
	draft, err := render(o.templatePath, tmpl, o.tag, placeholder)
	if err != nil {
		return "", err
	}
	var m manifestPlatforms
	if err := yaml.Unmarshal(draft, &m); err != nil {
		return "", fmt.Errorf("%s renders to invalid YAML: %w", o.templatePath, err)
	}
	if len(m.Spec.Platforms) == 0 {
		return "", fmt.Errorf("%s renders to a manifest without spec.platforms", o.templatePath)
	}

	sums := map[string]string{}
	for i, p := range m.Spec.Platforms {
		goos, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		if goos == "" || arch == "" {
			return "", fmt.Errorf("spec.platforms[%d]: need selector.matchLabels os and arch to build its archive", i)
		}
		u, err := url.Parse(p.URI)
		if err != nil || path.Base(u.Path) == "/" || path.Base(u.Path) == "." {
			return "", fmt.Errorf("spec.platforms[%d]: uri %q names no file", i, p.URI)
		}
		bin := binary
		if goos == "windows" {
			bin += ".exe"
		}
		archive, err := o.releaseArchive(path.Base(u.Path))
		if err == nil && archive == nil {
			archive, err = standInArchive(path.Base(u.Path), bin, cat.License.File, license)
		}
		if err != nil {
			return "", fmt.Errorf("spec.platforms[%d]: %w", i, err)
		}
		dir := filepath.Join(o.outDir, "archives", goos+"-"+arch)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, path.Base(u.Path)), archive, 0o644); err != nil {
			return "", err
		}
		sum := sha256.Sum256(archive)
		sums[p.URI] = hex.EncodeToString(sum[:])
	}

	lookup := func(uri string) (string, error) {
		if s, ok := sums[uri]; ok {
			return s, nil
		}
		return "", fmt.Errorf("no archive for %s", uri)
	}
	final, err := render(o.templatePath, tmpl, o.tag, lookup)
	if err != nil {
		return "", err
	}
	// validate-krew-manifest requires the file to be named after the plugin.
	out := filepath.Join(o.outDir, cat.Krew.Name+".yaml")
	return out, os.WriteFile(out, final, 0o644)
}

// releaseArchive is the archive goreleaser built under name in -dist, or
// nil when there is none (no -dist, or a platform this build skipped).
func (o options) releaseArchive(name string) ([]byte, error) {
	if o.distDir == "" {
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(o.distDir, name))
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "render-krew-manifest: %s: not in %s, using a stand-in\n", name, o.distDir)
		return nil, nil
	}
	if err == nil {
		fmt.Fprintf(os.Stderr, "render-krew-manifest: %s: the release archive from %s\n", name, o.distDir)
	}
	return data, err
}

// render executes a krew-release-bot template. The bot hands the template a
// value with .TagName, and addURIAndSha renders its URL argument as a
// template of its own (with .TagName and .Version), then prints
// "uri: <url>" and, indented 4 spaces, "sha256: <sum of the asset>".
func render(name string, text []byte, tag string, sha256Of func(uri string) (string, error)) ([]byte, error) {
	funcs := template.FuncMap{
		"addURIAndSha": func(urlTemplate, tag string) (string, error) {
			u, err := template.New("url").Parse(urlTemplate)
			if err != nil {
				return "", err
			}
			var uri strings.Builder
			if err := u.Execute(&uri, struct{ TagName, Version string }{tag, versionOf(tag)}); err != nil {
				return "", err
			}
			sum, err := sha256Of(uri.String())
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("uri: %s\n    sha256: %s", uri.String(), sum), nil
		},
	}
	t, err := template.New(filepath.Base(name)).Funcs(funcs).Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, struct{ TagName string }{tag}); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return out.Bytes(), nil
}

var dottedNumber = regexp.MustCompile(`\d+(\.\d+)+`)

// versionOf is the bot's .Version: the dotted number in the tag ("v1.2.3" ->
// "1.2.3"), or the tag itself if it has none.
func versionOf(tag string) string {
	if v := dottedNumber.FindString(tag); v != "" {
		return v
	}
	return tag
}

// archiveTime fixes the entries' timestamps so that the same inputs give the
// same bytes, and so the same checksums, on every run.
var archiveTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// standInArchive builds a release archive named name holding a stand-in
// binary bin and the license, in the format name's extension says.
func standInArchive(name, bin, licenseName string, license []byte) ([]byte, error) {
	files := []struct {
		name string
		mode int64
		body []byte
	}{
		{bin, 0o755, []byte("#!/bin/sh\necho 'stand-in for " + bin + ", not a release build' >&2\nexit 1\n")},
		{licenseName, 0o644, license},
	}
	var buf bytes.Buffer
	switch {
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		gz := gzip.NewWriter(&buf)
		gz.ModTime = archiveTime
		tw := tar.NewWriter(gz)
		for _, f := range files {
			hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), ModTime: archiveTime, Typeflag: tar.TypeReg}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			if _, err := tw.Write(f.body); err != nil {
				return nil, err
			}
		}
		if err := tw.Close(); err != nil {
			return nil, err
		}
		if err := gz.Close(); err != nil {
			return nil, err
		}
	case strings.HasSuffix(name, ".zip"):
		zw := zip.NewWriter(&buf)
		for _, f := range files {
			hdr := &zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: archiveTime}
			hdr.SetMode(os.FileMode(f.mode))
			w, err := zw.CreateHeader(hdr)
			if err != nil {
				return nil, err
			}
			if _, err := w.Write(f.body); err != nil {
				return nil, err
			}
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: unknown archive format (want .tar.gz, .tgz or .zip)", name)
	}
	return buf.Bytes(), nil
}
