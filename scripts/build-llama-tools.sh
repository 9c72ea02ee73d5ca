#!/usr/bin/env bash
# Builds llama.cpp's own programs from the pinned release (v0.5.0, the git bundle shipped in
# npm node-llama-cpp@3.22.1, the same release as the prebuilt libraries the project links) into
# a cache outside the clone, and prints the folder that holds the programs and the backend
# libraries (the last line on stdout; everything else goes to stderr).
#
# Usage: scripts/build-llama-tools.sh [--cuda|--no-cuda] [-j N] [TARGET...]
#   TARGET  CMake targets of llama.cpp (default: test-backend-ops test-llama-archs llama-bench
#           ggml-rpc-server; llama-server and llama-cli may be asked for, without the web UI);
#           the backend libraries (ggml-cpu, ggml-rpc, and ggml-cuda with
#           --cuda) are always built.
#   --print-source  print the folder of the extracted release source and stop
#   --cuda  build the CUDA backend for this machine's GPU (the default when nvcc is found and
#           nvidia-smi lists a GPU); CUDA_ARCH sets the architecture (default: nvidia-smi's
#           compute capability, e.g. 90 on an H200).
#
# Environment: GGML_VIRTGPU_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/ggml-virtgpu),
#              GGML_DEPS_CACHE (where the npm tarballs are kept; default .deps in the clone),
#              LLAMA_SOURCE_DIR (an extracted copy of the same release's source to build instead
#              of the bundle, for a host without npm or git; the build is then keyed by its path),
#              LLAMA_TOOLS_DIR (a folder this script printed earlier, carried to another machine:
#              used as it is when it holds every asked-for program, nothing is built).
#
# The build is keyed by the release tarball's hash and the options (backend, compiler, CPU
# features), so that a second run with the same options only checks that the build is up to
# date. It uses GGML_BACKEND_DL=ON, like the npm release: every backend is a module
# (libggml-cpu.so, libggml-rpc.so, libggml-cuda.so) that the programs load from their own folder
# with ggml_backend_load_all(), which also loads GGML_BACKEND_PATH=/path/to/libggml-virtgpu.so.
# (With GGML_BACKEND_DL=OFF the CPU backend is linked in, libllama then never calls
# ggml_backend_load_all(), and test-llama-archs or llama-bench would not see VirtGPU0.)
# ggml refuses GGML_NATIVE with GGML_BACKEND_DL, so the CPU backend is built for the features
# this machine's /proc/cpuinfo lists (GGML_AVX2, GGML_AVX512, ...). apir-server runs a module
# as it is: APIR_LLAMA_CPP_GGML_LIBRARY_PATH=<folder>/libggml-cpu.so (or libggml-cuda.so).
#
# Running our libraries with these programs: put the printed folder first in LD_LIBRARY_PATH.
# libggml-virtgpu.so and libggml-virtgpu-backend.so ask for "libggml-base.so" (the npm soname);
# this build's folder holds libggml-base.so as a link to the programs' own libggml-base.so.0, so
# the loader maps the same file once instead of a second ggml-base from npm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

cuda=auto
print_source=0
jobs=$(nproc 2>/dev/null || echo 2)
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --cuda) cuda=on ;;
    --no-cuda) cuda=off ;;
    --print-source) print_source=1 ;;
    -j) jobs=$2; shift ;;
    -j*) jobs=${1#-j} ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    -*) echo "build-llama-tools: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1") ;;
    esac
    shift
done
[ ${#targets[@]} -gt 0 ] || targets=(test-backend-ops test-llama-archs llama-bench ggml-rpc-server)
if [ -n "${LLAMA_TOOLS_DIR:-}" ] && [ $print_source = 0 ]; then
    missing=
    for t in "${targets[@]}"; do [ -x "$LLAMA_TOOLS_DIR/$t" ] || missing="$missing $t"; done
    if [ -z "$missing" ]; then
        [ -e "$LLAMA_TOOLS_DIR/libggml-base.so" ] || ln -s libggml-base.so.0 "$LLAMA_TOOLS_DIR/libggml-base.so"
        echo "build-llama-tools: using the programs in LLAMA_TOOLS_DIR=$LLAMA_TOOLS_DIR" >&2
        cd "$LLAMA_TOOLS_DIR" && pwd
        exit 0
    fi
    echo "build-llama-tools: LLAMA_TOOLS_DIR=$LLAMA_TOOLS_DIR lacks$missing; building" >&2
fi

log() { echo "build-llama-tools: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in cmake g++ tar sha256sum flock; do
    command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-deps.sh"
done

gpu_arch() { # the first GPU's compute capability without the dot (90), or nothing
    command -v nvidia-smi >/dev/null || return 0
    nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .'
}
if [ "$cuda" = auto ]; then
    cuda=off
    if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
        if [ -n "${CUDA_ARCH:-}" ] || [ -n "$(gpu_arch)" ]; then cuda=on; fi
    fi
fi
cmake_args=(
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_NATIVE=OFF
    -DGGML_RPC=ON -DGGML_CCACHE=OFF
    -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
)
# the CPU features to compile for: each GGML_<X> option whose /proc/cpuinfo flags are all present
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
if [ "$(uname -m)" = x86_64 ]; then
    while read -r opt flags; do
        on=ON
        for f in $flags; do case "$cpu_flags" in *" $f "*) ;; *) on=OFF ;; esac; done
        cmake_args+=("-DGGML_$opt=$on")
    done <<'FEATURES'
SSE42 sse4_2
AVX avx
AVX2 avx2
BMI2 bmi2
FMA fma
F16C f16c
AVX_VNNI avx_vnni
AVX512 avx512f avx512cd avx512vl avx512dq avx512bw
AVX512_VBMI avx512vbmi
AVX512_VNNI avx512_vnni
AVX512_BF16 avx512_bf16
AMX_TILE amx_tile
AMX_INT8 amx_int8
AMX_BF16 amx_bf16
FEATURES
fi
backends=(ggml-cpu ggml-rpc)
variant=cpu
if [ "$cuda" = on ]; then
    if ! command -v nvcc >/dev/null; then export PATH="/usr/local/cuda/bin:$PATH"; fi
    command -v nvcc >/dev/null || die "--cuda: nvcc not found (install the CUDA toolkit or put it in PATH)"
    arch=${CUDA_ARCH:-$(gpu_arch)}
    [ -n "$arch" ] || die "--cuda: cannot tell this GPU's architecture (no nvidia-smi); set CUDA_ARCH, e.g. CUDA_ARCH=90"
    nvcc_version=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
    cmake_args+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch" -DGGML_CUDA_NCCL=OFF)
    backends+=(ggml-cuda)
    variant="cuda$nvcc_version-sm$arch"
fi

cache=${GGML_VIRTGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ggml-virtgpu}
if [ -n "${LLAMA_SOURCE_DIR:-}" ]; then
    src=$(cd "$LLAMA_SOURCE_DIR" && pwd) || die "LLAMA_SOURCE_DIR=$LLAMA_SOURCE_DIR is not a folder"
    [ -f "$src/ggml/include/ggml.h" ] || die "LLAMA_SOURCE_DIR=$src holds no llama.cpp source (no ggml/include/ggml.h)"
    top="$cache/llama-v0.5.0-dir-$(printf '%s' "$src" | sha256sum | cut -c1-12)"
    mkdir -p "$top"
else
    # --- the release source, from the npm tarball (fetched as scripts/fetch-ggml.sh does) ---
    deps=${GGML_DEPS_CACHE:-$root/.deps}
    tarball="$deps/node-llama-cpp-3.22.1.tgz"
    if [ ! -s "$tarball" ]; then
        command -v npm >/dev/null || die "npm not found; run scripts/install-deps.sh"
        mkdir -p "$deps"
        log "fetching node-llama-cpp@3.22.1 from npm into $deps"
        (cd "$deps" && npm pack --silent node-llama-cpp@3.22.1 >/dev/null) || die "npm pack node-llama-cpp@3.22.1 failed: check that npm can reach its registry"
    fi
    top="$cache/llama-v0.5.0-$(sha256sum "$tarball" | cut -c1-12)"
    mkdir -p "$top"
    exec 9>"$top/.lock"
    flock 9 # one extraction at a time (two shells may ask together)
    src="$top/src"
    if [ ! -f "$src/.done" ]; then
        command -v git >/dev/null || die "git not found; run scripts/install-deps.sh (or set LLAMA_SOURCE_DIR)"
        log "extracting the release source into $src"
        tmp=$(mktemp -d "$top/.extract.XXXXXX")
        trap 'rm -rf "$tmp"' EXIT
        tar xzf "$tarball" -C "$tmp" package/llama/gitRelease.bundle
        git init -q "$tmp/git"
        git -C "$tmp/git" fetch -q "$tmp/package/llama/gitRelease.bundle" HEAD
        mkdir "$tmp/src"
        git -C "$tmp/git" archive FETCH_HEAD | tar x -C "$tmp/src"
        touch "$tmp/src/.done"
        rm -rf "$src"
        mv "$tmp/src" "$src"
        rm -rf "$tmp"
        trap - EXIT
    fi
    exec 9>&-
fi
if [ $print_source = 1 ]; then
    echo "$src"
    exit 0
fi

# the key: the options (CPU features included) and the compiler
key=$(printf '%s\n' "${cmake_args[@]}" "$(uname -m)" "$(g++ -dumpfullversion)" | sha256sum | cut -c1-10)
build="$top/build-$variant-$key"
exec 8>"$build.lock"
flock 8 # one build at a time per build folder
if [ ! -f "$build/CMakeCache.txt" ]; then
    log "configuring $build"
    cmake -S "$src" -B "$build" "${cmake_args[@]}" >"$top/configure-$variant-$key.log" 2>&1 \
        || { cat "$top/configure-$variant-$key.log" >&2; rm -rf "$build"; die "configuring llama.cpp failed (log above)"; }
fi
# llama-server (and llama-cli) are built only when asked for: turning the option on adds targets
# without changing any other target's flags, so it is not part of the key; the web UI is left
# out (no npm build, no download: the server answers the API without it)
for t in "${targets[@]}"; do
    case "$t" in
    llama-server|llama-cli)
        if ! grep -q '^LLAMA_BUILD_SERVER:BOOL=ON' "$build/CMakeCache.txt"; then
            log "turning LLAMA_BUILD_SERVER on in $build (for $t)"
            cmake "$build" -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
                >>"$top/configure-$variant-$key.log" 2>&1 \
                || { tail -n 40 "$top/configure-$variant-$key.log" >&2; die "configuring llama.cpp with LLAMA_BUILD_SERVER=ON failed (log above)"; }
        fi
        break ;;
    esac
done
log "building ${backends[*]} ${targets[*]} in $build (-j$jobs; the first build takes a while)"
start=$(date +%s)
nice cmake --build "$build" -j"$jobs" --target "${backends[@]}" "${targets[@]}" >"$build/build.log" 2>&1 \
    || { tail -n 60 "$build/build.log" >&2; die "building llama.cpp failed (full log: $build/build.log)"; }
log "up to date after $(( $(date +%s) - start )) s"

bin="$build/bin"
# our libraries ask for the npm soname: give the loader the same file under that name
[ -e "$bin/libggml-base.so" ] || ln -s libggml-base.so.0 "$bin/libggml-base.so"
echo "$bin"
