#!/usr/bin/env bash
# Builds the reference tools from the Go module proxy with `go install`, only when a binary is
# missing or reports another module version: the containerd 2.x ctr and containerd, and
# Prometheus' prom2json (the Prometheus text-format parser, expfmt, that the metrics tests read
# berthd's /v1/metrics with).
#
#   bash tools/reference-tools.sh      prints one line per tool: installed / already present
#
# They live outside the repository, in $BERTH_REFERENCE_DIR (default below), so every clone on
# the machine shares one build. Tests find them there (packages/testing: CTR2_PATH,
# CONTAINERD2_PATH). A cold build takes a few minutes; a run with nothing to do takes well under
# a second.
set -euo pipefail

# The one place the versions are pinned.
containerd_version=v2.4.2
prom2json_version=v1.4.2

module=github.com/containerd/containerd/v2
prefix="${BERTH_REFERENCE_DIR:-/usr/local/lib/berth-reference}/containerd-${containerd_version#v}"
bin="$prefix/bin"

go_cmd="$(command -v go || true)"
[[ -n "$go_cmd" || ! -x /usr/local/go/bin/go ]] || go_cmd=/usr/local/go/bin/go
if [[ -z "$go_cmd" ]]; then
  echo "reference-tools: go not found (install Go, or put it at /usr/local/go/bin/go)" >&2
  exit 1
fi

# `go version -m` reads the module version embedded in the binary; nothing is executed.
# has_version BINARY [MODULE VERSION]
has_version() {
  [[ -x "$1" ]] && "$go_cmd" version -m "$1" 2>/dev/null |
    awk -v m="${2:-$module}" -v v="${3:-$containerd_version}" '$1 == "mod" && $2 == m && $3 == v { found = 1 } END { exit !found }'
}

# install NAME CGO_ENABLED TAGS
install() {
  local name="$1" cgo="$2" tags="$3" target="$bin/$1"
  if has_version "$target"; then
    echo "reference-tools: $name $containerd_version already present ($target)"
    return
  fi
  mkdir -p "$bin"
  local start=$SECONDS
  # go install pkg@version ignores any go.mod around it, so the repository cannot influence it.
  (cd / && CGO_ENABLED="$cgo" GOBIN="$bin" "$go_cmd" install -trimpath ${tags:+-tags "$tags"} \
    "$module/cmd/$name@$containerd_version")
  if ! has_version "$target"; then
    echo "reference-tools: $target does not report $module $containerd_version after go install" >&2
    exit 1
  fi
  echo "reference-tools: $name $containerd_version installed ($target, $((SECONDS - start)) s)"
}

# ctr is pure Go. containerd needs no C code either: with cgo off, the btrfs snapshotter (the
# only cgo user among its plugins) is left out by its build constraint; the tag says so too.
install ctr 0 ""
install containerd 0 "no_btrfs"

# prom2json: pure Go, in its own prefix so that its version is pinned apart from containerd's.
prom2json_module=github.com/prometheus/prom2json
prom2json_bin="${BERTH_REFERENCE_DIR:-/usr/local/lib/berth-reference}/prom2json-${prom2json_version#v}/bin"
if has_version "$prom2json_bin/prom2json" "$prom2json_module" "$prom2json_version"; then
  echo "reference-tools: prom2json $prom2json_version already present ($prom2json_bin/prom2json)"
else
  mkdir -p "$prom2json_bin"
  start=$SECONDS
  (cd / && CGO_ENABLED=0 GOBIN="$prom2json_bin" "$go_cmd" install -trimpath "$prom2json_module/cmd/prom2json@$prom2json_version")
  if ! has_version "$prom2json_bin/prom2json" "$prom2json_module" "$prom2json_version"; then
    echo "reference-tools: $prom2json_bin/prom2json does not report $prom2json_module $prom2json_version after go install" >&2
    exit 1
  fi
  echo "reference-tools: prom2json $prom2json_version installed ($prom2json_bin/prom2json, $((SECONDS - start)) s)"
fi
