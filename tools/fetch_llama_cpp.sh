#!/usr/bin/env bash
# Materialises the pinned llama.cpp source for the inference backend and prints its path.
#
# The source comes from the npm package node-llama-cpp, which ships llama.cpp as a git bundle
# (llama/gitRelease.bundle): the npm registry is the only source host CI can reach. Only the tarball
# is downloaded (`npm pack`: no dependencies, no install scripts, no prebuilt binaries), checked
# against the integrity pinned below, and the bundle is cloned at the pinned commit.
#
#   bash tools/fetch_llama_cpp.sh            # -> third_party/llama.cpp (or $HERDSIM_LLAMA_DIR)
#
# Idempotent: when the directory is already at the pinned commit it only runs one `git rev-parse`.
# Progress goes to stderr; stdout is the path alone, so `dir=$(bash tools/fetch_llama_cpp.sh)` works.
set -euo pipefail

# The pin. To move it: pick a node-llama-cpp version, take `npm view node-llama-cpp@V dist.integrity`,
# and the commit from `git bundle list-heads` on its llama/gitRelease.bundle (the tag is in
# llama/llama.cpp.info.json). The build (cmake/HerdsimLlama.cmake) and the API use must follow.
NLC_VERSION=3.22.1
NLC_INTEGRITY=sha512-bltIipuWmc123H7tMIgDGKSsSrhmhlQYeVUC48XTjVW7XGJJiJJyCdlTMzQ/LiWoPkGDpcL4FviDpgw7qfTiDw==
LLAMA_TAG=v0.5.0
LLAMA_COMMIT=de3ff815ea7d559ee917f063901b8986f038abc6

repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${HERDSIM_LLAMA_DIR:-$repo/third_party/llama.cpp}
stamp_name=herdsim-fetched   # written into .git/ of a clone this script made: only those are replaced

say() { echo "fetch_llama_cpp: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Never let git walk up from $dest into an enclosing repository (the herdsim checkout itself).
export GIT_CEILING_DIRECTORIES
GIT_CEILING_DIRECTORIES=$(dirname "$dest")

head_of() { git -C "$1" rev-parse --verify -q HEAD 2>/dev/null || true; }

if [ -e "$dest/.git" ] && [ "$(head_of "$dest")" = "$LLAMA_COMMIT" ]; then
  echo "$dest"
  exit 0
fi

if [ -e "$dest" ]; then
  # A directory we did not make may be someone's own llama.cpp checkout: never delete it.
  [ -f "$dest/.git/$stamp_name" ] ||
    die "$dest exists but is not a clone made by this script; move it away or set HERDSIM_LLAMA_DIR"
  say "$dest is not at the pinned commit $LLAMA_COMMIT ($LLAMA_TAG); replacing it"
fi

command -v git >/dev/null || die "git not found; run tools/setup.sh first"
command -v npm >/dev/null || die "npm not found; run tools/setup.sh first (it installs Debian's npm)"
command -v node >/dev/null || die "node not found; run tools/setup.sh first (it installs Debian's npm)"

mkdir -p "$(dirname "$dest")"
work=$(mktemp -d "$(dirname "$dest")/.fetch-llama.XXXXXX")  # same filesystem as $dest: the final mv is atomic
trap 'rm -rf "$work"' EXIT

say "downloading node-llama-cpp@$NLC_VERSION from the npm registry (about 36 MB)"
# --ignore-scripts: belt and braces, `npm pack` of a registry spec runs no scripts anyway.
(cd "$work" && npm pack --ignore-scripts --silent "node-llama-cpp@$NLC_VERSION" >/dev/null) ||
  die "npm pack node-llama-cpp@$NLC_VERSION failed (is the npm registry reachable?)"
tarball=$work/node-llama-cpp-$NLC_VERSION.tgz
[ -f "$tarball" ] || die "npm pack did not write $tarball"

# Our own pin, not only npm's check against the registry's metadata: a republished or tampered
# tarball is refused.
actual=$(node -e 'const c = require("crypto"), fs = require("fs");
  process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"));' "$tarball")
if [ "$actual" != "$NLC_INTEGRITY" ]; then
  die "integrity mismatch for node-llama-cpp@$NLC_VERSION: expected $NLC_INTEGRITY, got $actual; refusing to use it"
fi

tar -xzf "$tarball" -C "$work" package/llama/gitRelease.bundle ||
  die "node-llama-cpp@$NLC_VERSION has no llama/gitRelease.bundle"
bundle=$work/package/llama/gitRelease.bundle

say "cloning llama.cpp $LLAMA_TAG ($LLAMA_COMMIT) from the bundle"
clone=$work/llama.cpp
git clone -q --no-checkout "$bundle" "$clone"
git -C "$clone" -c advice.detachedHead=false checkout -q --detach "$LLAMA_COMMIT" ||
  die "the bundle does not contain the pinned commit $LLAMA_COMMIT"
git -C "$clone" tag "$LLAMA_TAG" "$LLAMA_COMMIT"  # the bundle has no tags; `git describe` then names the release
git -C "$clone" remote remove origin               # origin would point at the deleted temporary bundle
echo "node-llama-cpp@$NLC_VERSION $LLAMA_TAG $LLAMA_COMMIT" >"$clone/.git/$stamp_name"
[ "$(head_of "$clone")" = "$LLAMA_COMMIT" ] || die "checkout is not at $LLAMA_COMMIT"

rm -rf "$dest"
mv "$clone" "$dest"
say "llama.cpp $LLAMA_TAG is in $dest"
echo "$dest"
