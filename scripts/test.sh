#!/usr/bin/env bash
# The README's test command: installs what is needed, builds twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), runs the whole CTest suite in both, then
# builds the libFuzzer targets with clang and runs each for a short while, and last runs the
# conformance stage: llama.cpp's own test-backend-ops and test-llama-archs through VirtGPU0
# (tests/conformance/README.md; the first run builds them from the release bundle into
# ~/.cache/ggml-virtgpu), again with a host that queues writes as a GPU does (--async-host),
# and llama.cpp's llama-server and llama-completion on VirtGPU0 while the host is killed,
# terminated or stopped. APIR_SKIP_CONFORMANCE=1 leaves both out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc 2>/dev/null || echo 2)

build_and_test() { # $1 build dir, rest: cmake options
    local dir=$1; shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
    (cd "$dir" && ctest --output-on-failure --timeout 300 -j"$jobs")
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}

echo "== plain build =="
build_and_test build
echo "== sanitizer build (ASan + UBSan) =="
build_and_test build-asan -DAPIR_SANITIZE=ON
echo "== fuzzers (clang, libFuzzer + ASan + UBSan, 10 s each) =="
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPIR_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_graph_decode fuzz_dispatch fuzz_seeds fuzz_component fuzz_vtest_ring \
    ggml-virtgpu-backend ggml-pick-cpu
(cd build-fuzz && ctest --output-on-failure --timeout 120 -R '^fuzz_')
echo "== VM: Debian 13 QEMU guest, kernel virtio-gpu driver, APIR component inside QEMU (tests/vm, docs/vm.md) =="
# needs root; the first run builds the Debian 13 chroot (cached outside the clone)
vm_rc=0
bash tests/vm/run-vm-tests.sh build || vm_rc=$?
if [ $vm_rc -eq 77 ]; then echo "VM stage skipped (reason above)"; elif [ $vm_rc -ne 0 ]; then exit $vm_rc; fi
if [ "${APIR_SKIP_CONFORMANCE:-0}" != 1 ]; then
    echo "== conformance (llama.cpp's test-backend-ops and test-llama-archs through VirtGPU0) =="
    bash tests/conformance/run.sh build
    echo "== conformance on a host that queues writes as a GPU does (--async-host: tests/backend/async_cpu_lib.c) =="
    # the CPU backend never queues a guest's write; CUDA does (src/backend/queued_writes.c)
    CONFORMANCE_OUT="$PWD/build/conformance-async" bash tests/conformance/run.sh --async-host --skip support \
        --ops GET_ROWS,SET_ROWS,MUL_MAT_ID --params '^type=|^type_src=|m=64,n=16,k=' build
    echo "== device lost under llama.cpp's own llama-server and llama-completion (tests/frontend, docs/frontend.md) =="
    tools=$(bash scripts/build-llama-tools.sh llama-server llama-completion | tail -n1)
    bash tests/frontend/llama-server-host-fails.sh build "$tools"
    GGML_VIRTGPU_TIMEOUT=5 bash tests/frontend/llama-host-fails.sh build "$tools" 1
fi
