#!/usr/bin/env bash
# Builds the reference tools from the Go module proxy with `go install`, only when a binary is
# missing or reports another module version: the containerd 2.x ctr and containerd,
# Prometheus' prom2json (the Prometheus text-format parser, expfmt, that the metrics tests read
# berthd's /v1/metrics with), and cri-tools' crictl and critest (the CRI client and conformance
# suite).
#
#   bash tools/reference-tools.sh      prints one line per tool: installed / already present
#
# They live outside the repository, in $BERTH_REFERENCE_DIR (default below), so every clone on
# the machine shares one build. Tests find them there (packages/testing: CTR2_PATH,
# CONTAINERD2_PATH, PROM2JSON_PATH, CRICTL_PATH, CRITEST_PATH). A cold build takes a few
# minutes; a run with nothing to do takes well under a second.
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
# The runc shim of the same version: containerd 2.x cannot start Debian's 1.6 shim for its CRI
# pods ("start failed: io.containerd.runc.v2: type with url <id>: not found"). Tests name it by
# path (the runtime's runtime_path), so /usr/bin's stays the one on PATH.
install containerd-shim-runc-v2 0 ""

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

# cri-tools: crictl (the CRI command-line client) and critest (the CRI conformance suite), both
# pure Go, in their own prefix so that their version is pinned apart from containerd's. The
# version is stamped in with -X as cri-tools' Makefile does (else both report "unknown").
critools_version=v1.37.0
critools_module=sigs.k8s.io/cri-tools
critools_bin="${BERTH_REFERENCE_DIR:-/usr/local/lib/berth-reference}/cri-tools-${critools_version#v}/bin"
critools_ldflags="-X $critools_module/pkg/version.Version=$critools_version"
if has_version "$critools_bin/crictl" "$critools_module" "$critools_version"; then
  echo "reference-tools: crictl $critools_version already present ($critools_bin/crictl)"
else
  mkdir -p "$critools_bin"
  start=$SECONDS
  (cd / && CGO_ENABLED=0 GOBIN="$critools_bin" "$go_cmd" install -trimpath -ldflags "$critools_ldflags" \
    "$critools_module/cmd/crictl@$critools_version")
  if ! has_version "$critools_bin/crictl" "$critools_module" "$critools_version"; then
    echo "reference-tools: $critools_bin/crictl does not report $critools_module $critools_version after go install" >&2
    exit 1
  fi
  echo "reference-tools: crictl $critools_version installed ($critools_bin/crictl, $((SECONDS - start)) s)"
fi
# critest is a Go test binary (`go test -c`), which `go install` cannot build. It is built inside
# the module's own directory in the module cache, where cri-tools' go.mod and go.sum are the main
# module's (so its replace directives and sums apply); -mod=mod fetches the dependencies through
# the module proxy. A test binary's build info says "(devel)", so its version is read from
# `critest -version`, which runs no test.
critest_has_version() {
  # Read the whole output first: with pipefail, `critest -version | grep -q` fails whenever grep
  # exits at its match before critest has written its last line (SIGPIPE).
  local out
  [[ -x "$1" ]] && out="$("$1" -version 2>/dev/null)" && grep -qx "critest version: $critools_version" <<<"$out"
}
if critest_has_version "$critools_bin/critest"; then
  echo "reference-tools: critest $critools_version already present ($critools_bin/critest)"
else
  mkdir -p "$critools_bin"
  start=$SECONDS
  critools_dir="$(cd / && "$go_cmd" mod download -json "$critools_module@$critools_version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  if [[ -z "$critools_dir" || ! -f "$critools_dir/go.mod" ]]; then
    echo "reference-tools: go mod download found no directory for $critools_module@$critools_version" >&2
    exit 1
  fi
  (cd "$critools_dir" && CGO_ENABLED=0 "$go_cmd" test -c -trimpath -mod=mod -ldflags "$critools_ldflags" \
    -o "$critools_bin/critest" ./cmd/critest)
  if ! critest_has_version "$critools_bin/critest"; then
    echo "reference-tools: $critools_bin/critest does not report $critools_version after go test -c" >&2
    exit 1
  fi
  echo "reference-tools: critest $critools_version installed ($critools_bin/critest, $((SECONDS - start)) s)"
fi
# Debian's dynamically linked busybox, for critest's e2e busybox look-alike (tools/cri-conformance):
# busybox-static runs its applets without looking at PATH (standalone shell), so critest's
# MaskedPaths spec, which masks /bin/ls and expects `sh -c ls` to fail, cannot pass with it. The
# `busybox` package conflicts with busybox-static, so it is downloaded and unpacked, not
# installed, at busybox-static's own version. Optional: without it the look-alike uses
# busybox-static and that one spec fails (explained in tools/cri-conformance/README.md).
busybox_dir="${BERTH_REFERENCE_DIR:-/usr/local/lib/berth-reference}/busybox-deb"
busybox_version="$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true)"
if [[ -z "$busybox_version" ]]; then
  echo "reference-tools: busybox-static is not installed; Debian's dynamic busybox skipped" >&2
elif [[ -x "$busybox_dir/bin/busybox" && "$(cat "$busybox_dir/VERSION" 2>/dev/null)" == "$busybox_version" ]]; then
  echo "reference-tools: busybox (dynamic) $busybox_version already present ($busybox_dir/bin/busybox)"
else
  tmp="$(mktemp -d)"
  chmod 755 "$tmp" # apt's download user writes there
  if (cd "$tmp" && apt-get download -q "busybox=$busybox_version" >/dev/null 2>&1) && dpkg-deb -x "$tmp"/busybox_*.deb "$tmp/root"; then
    rm -rf "$busybox_dir"
    mkdir -p "$busybox_dir/bin"
    cp "$tmp/root/bin/busybox" "$busybox_dir/bin/busybox"
    echo "$busybox_version" >"$busybox_dir/VERSION"
    echo "reference-tools: busybox (dynamic) $busybox_version installed ($busybox_dir/bin/busybox)"
  else
    echo "reference-tools: could not download Debian's busybox $busybox_version (apt-get update first?); critest's look-alike keeps busybox-static" >&2
  fi
  rm -rf "$tmp"
fi
