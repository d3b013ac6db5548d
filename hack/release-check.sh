#!/usr/bin/env bash
# Installs a release the way krew users install it, from the local archive,
# and runs it: the release build is the one people get.
#
#   1. Build goreleaser (pinned in tools/release/go.mod), krew and
#      render-krew-manifest (pinned in tools/go.mod) into $BIN_DIR.
#   2. Unless RELEASE_DIST names goreleaser's output of `make
#      release-snapshot`, run goreleaser in snapshot mode with .goreleaser.yaml
#      narrowed to this machine's platform (the other five are cross builds
#      that only cost time here; `make release-snapshot` builds all six).
#   3. Render .krew.yaml into the krew-index manifest against that release:
#      its tag, and the real archive and sha256 of every platform built.
#   4. `kubectl krew install --manifest=... --archive=...` into an empty
#      KREW_ROOT, in a network namespace with no network (krew must not need
#      one), then `kubectl dualstack version` through kubectl and krew's bin.
#   5. Check the installed binary is the release build: the snapshot's
#      version, built -trimpath with -s -w; print its size next to kubectl's.
#
# Usage: hack/release-check.sh
# Environment: BIN_DIR (default <repo>/bin), RELEASE_DIST (default: build a
# one-platform snapshot in a temp dir).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=${BIN_DIR:-$root/bin}
dist=${RELEASE_DIST:-}

fail() {
	echo "release-check: FAIL: $*" >&2
	exit 1
}

mkdir -p "$bin_dir"
bin_dir=$(cd "$bin_dir" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
goos=$(go env GOOS)
goarch=$(go env GOARCH)

echo ">> building goreleaser, krew and render-krew-manifest into $bin_dir"
# GOWORK=off: each tools module must resolve on its own, whatever go.work exists.
(cd "$root/tools/release" && GOWORK=off go build -o "$bin_dir/" github.com/goreleaser/goreleaser/v2) ||
	fail "could not build goreleaser from tools/release"
(cd "$root/tools" && GOWORK=off go build -o "$bin_dir/" sigs.k8s.io/krew/cmd/krew ./cmd/render-krew-manifest) ||
	fail "could not build krew from tools/"

if [[ -z $dist ]]; then
	dist=$work/dist
	config=$work/goreleaser.yaml
	sed -e "s/^    goos: \[.*\]\$/    goos: [$goos]/" -e "s/^    goarch: \[.*\]\$/    goarch: [$goarch]/" \
		"$root/.goreleaser.yaml" >"$config"
	grep -q "^    goos: \[$goos\]\$" "$config" && grep -q "^    goarch: \[$goarch\]\$" "$config" ||
		fail "could not narrow .goreleaser.yaml's goos/goarch lists to $goos/$goarch"
	echo "dist: $dist" >>"$config"
	echo ">> goreleaser release --snapshot for $goos/$goarch"
	(cd "$root" && "$bin_dir/goreleaser" release --snapshot --clean --config "$config" >"$work/goreleaser.log" 2>&1) ||
		{ cat "$work/goreleaser.log" >&2; fail "goreleaser snapshot failed (its log is above)"; }
fi
[[ -f $dist/metadata.json ]] || fail "$dist/metadata.json missing: is $dist goreleaser's output?"
# field NAME: the string value of NAME in the JSON object on stdin (flat
# enough here for sed; jq is not on every machine).
field() { tr -d '\n' | sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p"; }
version=$(field version <"$dist/metadata.json")
commit=$(field commit <"$dist/metadata.json")
[[ -n $version && -n $commit ]] || fail "$dist/metadata.json names no version or commit"

echo ">> rendering .krew.yaml against the release in $dist"
manifest=$("$bin_dir/render-krew-manifest" -catalog "$root/plugins.yaml" -template "$root/.krew.yaml" \
	-dist "$dist" -out "$work/manifest") || fail "could not render .krew.yaml"
archive=$(printf '%s\n' "$work/manifest/archives/$goos-$goarch"/*)
[[ -f $archive && -f $dist/$(basename "$archive") ]] || fail "goreleaser built no archive for $goos/$goarch that the manifest names"
cmp -s "$archive" "$dist/$(basename "$archive")" || fail "the manifest's $goos/$goarch archive is a stand-in, not the release's"

# krew runs as a kubectl plugin, as users run it.
mkdir "$work/path"
ln -s "$bin_dir/krew" "$work/path/kubectl-krew"
export KREW_ROOT=$work/krew KREW_NO_UPGRADE_CHECK=1
export PATH="$KREW_ROOT/bin:$work/path:$PATH"
# No network: a network namespace of its own where this machine allows one,
# else proxies that lead nowhere.
offline=(env HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9)
if unshare --net true 2>/dev/null; then
	offline=(unshare --net)
fi

echo ">> kubectl krew install --manifest=$(basename "$manifest") --archive=$(basename "$archive") (offline: ${offline[0]})"
"${offline[@]}" kubectl krew install --manifest="$manifest" --archive="$archive" >"$work/install.log" 2>&1 ||
	{ cat "$work/install.log" >&2; fail "krew could not install the manifest from the local archive (its output is above)"; }

# Self-check: krew really checks the archive against the manifest. A copy
# whose sha256 for this platform is wrong must be refused.
mkdir "$work/bad-sha"
sum=$(sha256sum "$archive" | cut -d' ' -f1)
sed "s/$sum/$(printf '0%.0s' {1..64})/" "$manifest" >"$work/bad-sha/$(basename "$manifest")"
cmp -s "$manifest" "$work/bad-sha/$(basename "$manifest")" && fail "self-check: no sha256 $sum in the manifest to break"
if KREW_ROOT=$work/krew-bad "${offline[@]}" kubectl krew install --manifest="$work/bad-sha/$(basename "$manifest")" \
	--archive="$archive" >"$work/bad.log" 2>&1; then
	fail "self-check: krew installed an archive whose sha256 the manifest does not name; it is not checking"
fi
grep -qi 'sha256' "$work/bad.log" || { cat "$work/bad.log" >&2; fail "self-check: krew refused the wrong sha256, but not for the checksum (output above)"; }
echo ">> self-check ok: krew refuses the archive against a wrong sha256"

installed=$KREW_ROOT/bin/kubectl-dualstack
[[ -L $installed || -f $installed ]] || fail "krew installed no kubectl-dualstack into $KREW_ROOT/bin"
found=$(kubectl plugin list 2>/dev/null | grep -m1 'kubectl-dualstack$' || true)
[[ $found == "$installed" ]] || fail "kubectl finds $found first, not krew's $installed"

echo ">> kubectl dualstack version (offline)"
out=$("${offline[@]}" kubectl dualstack version -o json) || fail "kubectl dualstack version failed: $out"
got_version=$(field version <<<"$out")
got_commit=$(field gitCommit <<<"$out")
[[ $got_version == "$version" && $got_commit == "$commit" ]] ||
	fail "kubectl dualstack version says $got_version ($got_commit), the release is $version ($commit)"
"${offline[@]}" kubectl dualstack version

# The release build's flags. Go records -trimpath in the binary; with it, it
# leaves -ldflags out, so -s (no symbol table; since Go 1.22 it implies -w,
# no DWARF) shows as a binary without symbols.
target=$(readlink -f "$installed")
buildinfo=$(go version -m "$target")
grep -q $'\tbuild\t-trimpath=true$' <<<"$buildinfo" || fail "the release binary was not built with -trimpath"
symbols=$(go tool nm "$target" 2>&1 || true)
grep -q 'no symbols' <<<"$symbols" || fail "the release binary has a symbol table: not built with -ldflags '-s -w'"

mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "release OK: krew installs $(basename "$manifest") $version for $goos/$goarch from $(basename "$archive") offline;" \
	"kubectl dualstack version runs it; binary $(mib "$target") (-trimpath -s -w), kubectl $(mib "$(readlink -f "$(command -v kubectl)")")"
