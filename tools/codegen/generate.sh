#!/usr/bin/env bash
# Regenerates packages/api/src/gen from protos/ with buf and ts-proto (see buf.gen.yaml).
#
#   bash tools/codegen/generate.sh           wipe packages/api/src/gen and write it afresh
#   bash tools/codegen/generate.sh --check   generate into a temp dir; fail if the committed gen/ differs
#
# buf runs fully offline: buf.yaml has no remote deps, the well-known types are built into buf,
# and the only plugin is the local ts-proto from node_modules. Output is generated in a temp dir
# first, so a failed run never leaves a half-written gen/.
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
gen_rel="packages/api/src/gen"
gen="$root/$gen_rel"
buf="$root/node_modules/.bin/buf"
plugin="$root/node_modules/.bin/protoc-gen-ts_proto"

usage() { echo "usage: bash tools/codegen/generate.sh [--check]" >&2; }

mode=write
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  -h|--help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac

for tool in "$buf" "$plugin"; do
  if [[ ! -x "$tool" ]]; then
    echo "codegen: $tool not found; the workspace dependencies are not installed" >&2
    exit 1
  fi
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/berth-codegen.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# A private cache: nothing is fetched, and no state leaks between runs.
export BUF_CACHE_DIR="$tmp/buf-cache"

cd "$root"
"$buf" generate --template buf.gen.yaml --output "$tmp/out"
fresh="$tmp/out/$gen_rel"
if [[ ! -d "$fresh" ]]; then
  echo "codegen: buf produced no output under $gen_rel" >&2
  exit 1
fi

if [[ "$mode" == write ]]; then
  rm -rf "$gen"
  mkdir -p "$(dirname "$gen")"
  mv "$fresh" "$gen"
  echo "codegen: wrote $(find "$gen" -type f | wc -l) files to $gen_rel"
  exit 0
fi

# --check: compare file sets and contents.
list() { if [[ -d "$1" ]]; then (cd "$1" && find . -type f | sed 's|^\./||' | sort); fi; }
list "$gen" >"$tmp/committed.txt"
list "$fresh" >"$tmp/fresh.txt"

problems=()
while IFS= read -r f; do problems+=("missing (would be added):   $gen_rel/$f"); done \
  < <(comm -13 "$tmp/committed.txt" "$tmp/fresh.txt")
while IFS= read -r f; do problems+=("stale (would be removed):   $gen_rel/$f"); done \
  < <(comm -23 "$tmp/committed.txt" "$tmp/fresh.txt")
while IFS= read -r f; do
  cmp -s "$gen/$f" "$fresh/$f" || problems+=("out of date (would change): $gen_rel/$f")
done < <(comm -12 "$tmp/committed.txt" "$tmp/fresh.txt")

if ((${#problems[@]} > 0)); then
  {
    echo "codegen --check: $gen_rel does not match protos/ (${#problems[@]} files):"
    printf '  %s\n' "${problems[@]}"
    echo "Run 'npm run codegen' and commit the result."
  } >&2
  exit 1
fi
echo "codegen --check: $gen_rel is up to date ($(wc -l <"$tmp/fresh.txt") files)"
