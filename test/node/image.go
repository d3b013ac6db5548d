package node

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// An image built from local files, written as an OCI image layout archive
// (what `ctr images import` reads), with one uncompressed layer.
type Image struct {
	Name       string // full reference, e.g. kds.local/busybox:1.35.0
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string // numeric, as Kubernetes' runAsNonRoot checks it
	files      []layerFile
}

type layerFile struct {
	name     string // without a leading slash
	mode     int64
	data     []byte
	linkname string // symlink target when non-empty
	dir      bool
}

// AddFile puts a regular file in the image.
func (img *Image) AddFile(name string, mode int64, data []byte) {
	img.files = append(img.files, layerFile{name: strings.TrimPrefix(name, "/"), mode: mode, data: data})
}

// AddSymlink puts a symbolic link in the image.
func (img *Image) AddSymlink(name, target string) {
	img.files = append(img.files, layerFile{name: strings.TrimPrefix(name, "/"), mode: 0o777, linkname: target})
}

// AddDir puts a directory in the image.
func (img *Image) AddDir(name string, mode int64) {
	img.files = append(img.files, layerFile{name: strings.TrimPrefix(name, "/"), mode: mode, dir: true})
}

// layerTime is every entry's modification time: the same files give the same
// layer digest on every run.
var layerTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// layer returns the uncompressed layer tar, parent directories included, in a
// stable order.
func (img *Image) layer() ([]byte, error) {
	entries := map[string]layerFile{}
	for _, f := range img.files {
		for dir := path.Dir(f.name); dir != "." && dir != "/"; dir = path.Dir(dir) {
			if _, ok := entries[dir]; !ok {
				entries[dir] = layerFile{name: dir, mode: 0o755, dir: true}
			}
		}
		entries[f.name] = f
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := entries[n]
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: layerTime, Format: tar.FormatPAX, Uname: "root", Gname: "root"}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		case f.linkname != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.linkname
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func describe(mediaType string, b []byte) descriptor {
	sum := sha256.Sum256(b)
	return descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(b))}
}

// WriteArchive writes the image as an OCI image layout tar to w. The index
// names the image with containerd's io.containerd.image.name annotation (and
// the OCI ref name with its tag), so the import needs no --base-name.
func (img *Image) WriteArchive(w io.Writer) error {
	layer, err := img.layer()
	if err != nil {
		return err
	}
	layerDesc := describe("application/vnd.oci.image.layer.v1.tar", layer)
	config, err := json.Marshal(map[string]any{
		"created":      layerTime,
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": img.Entrypoint,
			"Cmd":        img.Cmd,
			"Env":        img.Env,
			"User":       img.User,
			"WorkingDir": "/",
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
		"history": []map[string]any{{"created": layerTime, "created_by": "kubectl-dualstack test/node"}},
	})
	if err != nil {
		return err
	}
	configDesc := describe("application/vnd.oci.image.config.v1+json", config)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        configDesc,
		"layers":        []descriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	manifestDesc := describe("application/vnd.oci.image.manifest.v1+json", manifest)
	tag := img.Name[strings.LastIndex(img.Name, ":")+1:]
	manifestDesc.Annotations = map[string]string{
		"io.containerd.image.name":          img.Name,
		"org.opencontainers.image.ref.name": tag,
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []descriptor{manifestDesc},
	})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: layerTime, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	blob := func(d descriptor) string { return "blobs/sha256/" + strings.TrimPrefix(d.Digest, "sha256:") }
	for _, d := range []struct {
		name string
		b    []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blob(manifestDesc), manifest},
		{blob(configDesc), config},
		{blob(layerDesc), layer},
	} {
		if err := put(d.name, d.b); err != nil {
			return err
		}
	}
	return tw.Close()
}

// BusyboxImage is a static busybox with a symlink per applet in /bin
// (sh, ping, ping6, ip, nc, sleep, ...), as in the busybox image.
func BusyboxImage(name, busyboxPath string, applets []string) (*Image, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, err
	}
	img := &Image{Name: name, Cmd: []string{"sh"}, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}}
	img.AddFile("bin/busybox", 0o755, bin)
	for _, a := range applets {
		if a != "" && a != "busybox" && !strings.Contains(a, "/") {
			img.AddSymlink("bin/"+a, "busybox")
		}
	}
	for _, d := range []string{"tmp", "root", "proc", "sys", "dev", "etc", "var"} {
		img.AddDir(d, 0o755)
	}
	img.AddDir("tmp", 0o1777)
	img.AddFile("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"))
	img.AddFile("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\n"))
	return img, nil
}

// PauseImage holds one static binary as its entrypoint, like
// registry.k8s.io/pause.
func PauseImage(name, pausePath string) (*Image, error) {
	bin, err := os.ReadFile(pausePath)
	if err != nil {
		return nil, err
	}
	img := &Image{Name: name, Entrypoint: []string{"/pause"}}
	img.AddFile("pause", 0o755, bin)
	return img, nil
}

// NonRootUser is the user the validate images run as (nobody).
const NonRootUser = "65534"

// CurlImage is what validate's sleep pod needs: busybox (sleep, sh) with
// the machine's curl and getent and every shared library they load (ldd's
// list, and the loader), run as nobody.
func CurlImage(ctx context.Context, name, busyboxPath string, applets []string) (*Image, error) {
	img, err := BusyboxImage(name, busyboxPath, applets)
	if err != nil {
		return nil, err
	}
	img.User = NonRootUser
	libs := map[string]bool{}
	for _, bin := range []string{"curl", "getent"} {
		p, err := exec.LookPath(bin)
		if err != nil {
			return nil, err
		}
		if err := img.addWithLibs(ctx, "usr/bin/"+bin, p, libs); err != nil {
			return nil, err
		}
	}
	img.AddFile("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\npasswd: files\ngroup: files\n"))
	img.AddFile("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n::1 localhost\n"))
	return img, nil
}

// addWithLibs puts the file at src in the image as dst, and every shared
// library it loads (ldd's list, and the loader) under the path it asks for,
// once per image (libs holds those added already).
func (img *Image) addWithLibs(ctx context.Context, dst, src string, libs map[string]bool) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	img.AddFile(dst, 0o755, b)
	out, err := run(ctx, "ldd", src)
	if err != nil {
		if strings.Contains(err.Error(), "not a dynamic executable") {
			return nil // static: nothing to load
		}
		return err
	}
	for _, line := range strings.Split(string(out), "\n") {
		// "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
		// "/lib64/ld-linux-x86-64.so.2 (0x...)"
		f := strings.Fields(line)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>":
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		}
		if lib == "" || libs[lib] {
			continue
		}
		libs[lib] = true
		real, err := filepath.EvalSymlinks(lib)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		// The file under the path the binaries ask for (a link in the
		// image would need its target's path too).
		img.AddFile(lib, 0o755, b)
	}
	return nil
}

// KubeProxyImageName is the image the node's kube-proxy DaemonSet runs.
const KubeProxyImageName = "kds.local/kube-proxy:kds"

// iptablesCommands are the names kube-proxy runs iptables by.
var iptablesCommands = []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}

// KubeProxyImage is what registry.k8s.io/kube-proxy holds, from this
// machine: kube-proxy at /usr/local/bin/kube-proxy and the host's iptables
// (the variant its alternatives choose, nft or legacy: the one whose rules
// the host shows) with its extensions, each with the libraries it loads.
func KubeProxyImage(ctx context.Context, name, kubeProxyBin string) (*Image, error) {
	img := &Image{Name: name, Entrypoint: []string{"/usr/local/bin/kube-proxy"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
	libs := map[string]bool{}
	if err := img.addWithLibs(ctx, "usr/local/bin/kube-proxy", kubeProxyBin, libs); err != nil {
		return nil, err
	}
	p, err := exec.LookPath("iptables")
	if err != nil {
		return nil, err
	}
	multi, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, err
	}
	if err := img.addWithLibs(ctx, "usr/sbin/"+filepath.Base(multi), multi, libs); err != nil {
		return nil, err
	}
	for _, c := range iptablesCommands {
		img.AddSymlink("usr/sbin/"+c, filepath.Base(multi))
	}
	// The match and target extensions it loads at run time, from the
	// directory it was built with.
	exts, err := filepath.Glob("/usr/lib/*/xtables/*.so")
	if err != nil || len(exts) == 0 {
		return nil, fmt.Errorf("no iptables extensions under /usr/lib/*/xtables (%v)", err)
	}
	for _, e := range exts {
		if err := img.addWithLibs(ctx, e, e, libs); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"tmp", "run", "proc", "sys", "dev", "etc", "var/lib/kube-proxy"} {
		img.AddDir(d, 0o755)
	}
	img.AddDir("tmp", 0o1777)
	img.AddFile("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n"))
	img.AddFile("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n::1 localhost\n"))
	return img, nil
}

// ImportKubeProxyImage builds KubeProxyImage from the kube-proxy at bin and
// imports it as KubeProxyImageName.
func (n *Node) ImportKubeProxyImage(ctx context.Context, bin string) error {
	img, err := KubeProxyImage(ctx, KubeProxyImageName, bin)
	if err != nil {
		return err
	}
	return n.Import(ctx, img)
}

// BinaryImage holds one static binary as its entrypoint, run as nobody
// (validate's httpbin).
func BinaryImage(name, binPath string) (*Image, error) {
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return nil, err
	}
	base := path.Base(binPath)
	img := &Image{Name: name, Entrypoint: []string{"/" + base}, User: NonRootUser}
	img.AddFile(base, 0o755, bin)
	img.AddDir("tmp", 0o1777)
	return img, nil
}

// The images validate's scenario runs as on the node (--curl-image and
// --httpbin-image), imported by ImportValidateImages.
const (
	CurlImageName    = "kds.local/curl:kds"
	HTTPBinImageName = "kds.local/httpbin:kds"
)

// ImportValidateImages builds validate's images (the curl image from this
// machine's curl and getent, the httpbin image from the go-httpbin binary
// at httpbinBin) and imports them.
func (n *Node) ImportValidateImages(ctx context.Context, httpbinBin string) error {
	applets, err := run(ctx, BusyboxPath, "--list")
	if err != nil {
		return err
	}
	curl, err := CurlImage(ctx, CurlImageName, BusyboxPath, strings.Fields(string(applets)))
	if err != nil {
		return err
	}
	httpbin, err := BinaryImage(HTTPBinImageName, httpbinBin)
	if err != nil {
		return err
	}
	for _, img := range []*Image{curl, httpbin} {
		if err := n.Import(ctx, img); err != nil {
			return err
		}
	}
	return nil
}
