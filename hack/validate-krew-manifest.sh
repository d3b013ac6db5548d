#!/usr/bin/env bash
# Checks that .krew.yaml renders into a krew-index manifest that krew accepts
# and can install, using krew's own validator (sigs.k8s.io/krew v0.4.3,
# pinned in tools/go.mod, kept out of the main module).
#
#   1. Build validate-krew-manifest, krew and tools/cmd/render-krew-manifest
#      into $BIN_DIR.
#   2. Render .krew.yaml as krew-release-bot would for $TAG, against stand-in
#      release archives (binary + LICENSE, laid out as .goreleaser.yaml does).
#   3. Validate it structurally (-skip-install), then with installation of
#      every platform. The validator installs through `kubectl krew install`,
#      which would download the release; a stand-in kubectl on PATH hands krew
#      the local archive instead (--archive), so krew still checks the sha256,
#      the files list, bin (.exe on Windows) and that LICENSE is installed.
#   4. Break the manifest on purpose, twice, and require the validator to
#      reject each copy for the expected reason: a pass means it really ran.
#
# Usage: hack/validate-krew-manifest.sh
# Environment: BIN_DIR (default <repo>/bin), TAG (default v0.1.0).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=${BIN_DIR:-$root/bin}
tag=${TAG:-v0.1.0}

fail() {
	echo "validate-krew-manifest: FAIL: $*" >&2
	exit 1
}

mkdir -p "$bin_dir"
bin_dir=$(cd "$bin_dir" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo ">> building krew v0.4.3's validate-krew-manifest and krew into $bin_dir"
# GOWORK=off: the tools module must resolve on its own, whatever go.work exists.
(cd "$root/tools" && GOWORK=off go build -o "$bin_dir/" \
	sigs.k8s.io/krew/cmd/validate-krew-manifest \
	sigs.k8s.io/krew/cmd/krew \
	./cmd/render-krew-manifest) || fail "could not build the validator from tools/"

echo ">> rendering .krew.yaml for $tag against stand-in release archives"
manifest=$("$bin_dir/render-krew-manifest" -catalog "$root/plugins.yaml" -template "$root/.krew.yaml" \
	-tag "$tag" -out "$work/release") || fail "could not render .krew.yaml"
name=$(basename "$manifest" .yaml)

# The stand-in kubectl. validate-krew-manifest runs it with only KREW_ROOT,
# KREW_OS, KREW_ARCH and PATH set, so the paths it needs are written into it.
mkdir "$work/path"
{
	echo '#!/usr/bin/env bash'
	echo 'set -euo pipefail'
	echo '[[ ${1:-} == krew ]] || { echo "stand-in kubectl: unexpected call: kubectl $*" >&2; exit 2; }'
	echo 'shift'
	printf 'archives=(%q/"$KREW_OS-$KREW_ARCH"/*)\n' "$work/release/archives"
	printf 'KREW_NO_UPGRADE_CHECK=1 exec %q "$@" --archive "${archives[0]}"\n' "$bin_dir/krew"
} >"$work/path/kubectl"
chmod +x "$work/path/kubectl"

# validate MODE MANIFEST LOG: runs the validator, MODE "structure" or "install".
validate() {
	local args=(-manifest "$2")
	[[ $1 == structure ]] && args+=(-skip-install)
	PATH="$work/path:$PATH" "$bin_dir/validate-krew-manifest" "${args[@]}" >"$3" 2>&1
}

log=$work/validate.log
for mode in structure install; do
	echo ">> validate-krew-manifest ($mode): $name.yaml"
	if ! validate "$mode" "$manifest" "$log"; then
		{ cat "$log"; echo "--- rendered $name.yaml:"; cat "$manifest"; } >&2
		fail "krew rejects the manifest .krew.yaml renders to ($mode check; its output and the manifest are above)"
	fi
done

# expect_rejected DESCRIPTION MODE MANIFEST REASON: the validator must fail on
# MANIFEST in MODE, saying REASON.
expect_rejected() {
	if validate "$2" "$3" "$log"; then
		fail "self-check: the validator accepted a manifest with $1; it is not really checking"
	fi
	if ! grep -qF -- "$4" "$log"; then
		cat "$log" >&2
		fail "self-check: the validator rejected a manifest with $1, but not with \"$4\" (output above)"
	fi
	echo ">> self-check ok: rejected a manifest with $1"
}

# A metadata.name that differs from the file name (krew-index's rule).
mkdir "$work/bad-name"
sed "s/^  name: $name\$/  name: $name-broken/" "$manifest" >"$work/bad-name/$name.yaml"
cmp -s "$manifest" "$work/bad-name/$name.yaml" && fail "self-check: could not find metadata.name in $name.yaml to break"
expect_rejected "the wrong name" structure "$work/bad-name/$name.yaml" "plugin should be named \"$name\""

# A bin that is not in the archive: structurally fine, so only installing finds it.
mkdir "$work/bad-bin"
sed 's/^\(    bin: .*\)$/\1-missing/' "$manifest" >"$work/bad-bin/$name.yaml"
cmp -s "$manifest" "$work/bad-bin/$name.yaml" && fail "self-check: could not find a bin in $name.yaml to break"
validate structure "$work/bad-bin/$name.yaml" "$log" || { cat "$log" >&2; fail "self-check: a missing bin should pass the structural check"; }
expect_rejected "a bin missing from the archive" install "$work/bad-bin/$name.yaml" "cannot be found in extracted archive"

platforms=$(grep -c '^    uri: ' "$manifest")
echo "krew manifest OK: $name.yaml ($tag) passes validate-krew-manifest and installs on all $platforms platforms; broken copies are rejected"
