#!/usr/bin/env bash
# Builds a ggml GPU backend module (libggml-vulkan.so or libggml-cuda.so) from
# the sources of the pinned module github.com/ollama/ollama, the same sources
# the binary compiles ggml's core from, and puts it with libggml-base.so.0
# (its dependency) into a backends folder that nerstream loads at start.
#
#   backends/build.sh vulkan|cuda [OUT_DIR]
#
# OUT_DIR defaults to $NERSTREAM_MODEL_BACKENDS_DIR (model.backends_dir), else
# $NERSTREAM_HOME/backends, else ~/.local/share/nerstream/backends: where
# nerstream looks for them by default. The module is read-only, so the
# build works on a copy, with the patches in backends/patches/BACKEND applied.
# Builds are cached in $NERSTREAM_BUILD_CACHE (default
# ~/.cache/nerstream/build), keyed by the backend, the module's version, the
# patches, this script and the toolchain's versions: a second run with the same
# inputs copies the cached module and builds nothing.
#
# Environment: CUDA_ARCHS (cuda: CMAKE_CUDA_ARCHITECTURES, default "native"),
# JOBS (parallel jobs, default the CPU count), NERSTREAM_GGML_SOURCES (a copy
# of the module's CMakeLists.txt and ml/backend/ggml/ggml, with its version in
# a file VERSION, for a machine without Go: scripts/gpu-check's kit).
set -euo pipefail

backend=${1:-}
case "$backend" in
vulkan | cuda) ;;
*)
	echo "usage: backends/build.sh vulkan|cuda [OUT_DIR]" >&2
	exit 2
	;;
esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${2:-${NERSTREAM_MODEL_BACKENDS_DIR:-${NERSTREAM_HOME:+$NERSTREAM_HOME/backends}}}
out=${out:-$HOME/.local/share/nerstream/backends}
cache=${NERSTREAM_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nerstream/build}
jobs=${JOBS:-$(nproc)}

need() {
	command -v "$1" >/dev/null 2>&1 || {
		echo "backends/build.sh: $1 is missing; $2" >&2
		exit 1
	}
}
need cmake "install cmake (Debian: apt-get install cmake ninja-build)"
need ninja "install ninja (Debian: apt-get install ninja-build)"
if [ -z "${NERSTREAM_GGML_SOURCES:-}" ]; then
	need go "the module's sources come through the Go toolchain (or set NERSTREAM_GGML_SOURCES)"
fi
extra=()
case "$backend" in
vulkan)
	need glslc "install glslc and the Vulkan headers (Debian: apt-get install glslc libvulkan-dev spirv-headers)"
	header=/usr/include/vulkan/vulkan_core.h
	[ -f "$header" ] || {
		echo "backends/build.sh: $header is missing; install libvulkan-dev" >&2
		exit 1
	}
	toolchain="$(glslc --version | head -n 1); $(grep -m1 '#define VK_HEADER_VERSION ' "$header")"
	;;
cuda)
	need nvcc "install the CUDA toolkit"
	archs=${CUDA_ARCHS:-native}
	toolchain="$(nvcc --version | tail -n 1); archs $archs"
	extra+=("-DCMAKE_CUDA_ARCHITECTURES=$archs")
	;;
esac

if [ -n "${NERSTREAM_GGML_SOURCES:-}" ]; then
	mod=$NERSTREAM_GGML_SOURCES
	version=$(cat "$mod/VERSION")
else
	mod=$(cd "$root" && go list -m -f '{{.Dir}}' github.com/ollama/ollama)
	version=$(cd "$root" && go list -m -f '{{.Version}}' github.com/ollama/ollama)
fi
key=$({
	echo "$backend $version"
	echo "$toolchain"
	cmake --version | head -n 1
	${CXX:-c++} --version | head -n 1
	cat "$here/build.sh"
	cat "$here/patches/$backend"/*.patch 2>/dev/null || true
} | sha256sum | cut -c1-16)
dir="$cache/$backend-$key"

if [ ! -f "$dir/ok" ]; then
	echo "backends/build.sh: building libggml-$backend.so ($version, $toolchain) in $dir" >&2
	start=$(date +%s)
	rm -rf "$dir"
	mkdir -p "$dir/src/ml/backend/ggml"
	cp "$mod/CMakeLists.txt" "$dir/src/"
	cp -R "$mod/ml/backend/ggml/ggml" "$dir/src/ml/backend/ggml/"
	chmod -R u+w "$dir/src"
	for p in "$here/patches/$backend"/*.patch; do
		[ -f "$p" ] || continue
		patch --quiet --forward -p1 -d "$dir/src" <"$p"
	done
	# RUNPATH $ORIGIN: the module finds libggml-base.so.0 beside it.
	# A failed step prints the end of its log: the full log stays in $dir.
	run() {
		local log=$1
		shift
		"$@" >"$log" 2>&1 || {
			tail -n 30 "$log" >&2
			echo "backends/build.sh: $1 failed; the whole log is $log" >&2
			exit 1
		}
	}
	run "$dir/configure.log" cmake -S "$dir/src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_BUILD_RPATH_USE_ORIGIN=ON -DGGML_CCACHE=OFF "${extra[@]}"
	run "$dir/build.log" cmake --build "$dir/build" --target "ggml-$backend" -j "$jobs"
	mkdir -p "$dir/out"
	cp -P "$dir/build/lib/ollama/libggml-$backend.so" "$dir/build/lib/ollama"/libggml-base.so* "$dir/out/"
	rm -rf "$dir/build" "$dir/src" # the module is all that is kept
	touch "$dir/ok"
	echo "backends/build.sh: built in $(($(date +%s) - start)) s" >&2
fi
mkdir -p "$out"
cp -P "$dir/out"/* "$out/"
echo "$out/libggml-$backend.so"
