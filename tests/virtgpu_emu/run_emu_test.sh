#!/bin/sh
# Runs a guest program over the emulated virtio-gpu render node.
# usage: run_emu_test.sh SHIM PRELOAD_FIRST PICK_CPU BACKEND_LIB PROGRAM [ARGS...]
#   PRELOAD_FIRST: a library that must precede the shim in LD_PRELOAD (libasan.so in the
#   sanitizer build: ASan insists on coming first), or "-" for none.
# The emulated host is configured like apir-server: VIRGL_APIR_BACKEND_LIBRARY and
# APIR_LLAMA_CPP_GGML_LIBRARY_PATH (the best CPU variant, from ggml-pick-cpu).
set -e
shim=$1 first=$2 pick=$3 backend=$4
shift 4
: "${APIR_LLAMA_CPP_GGML_LIBRARY_PATH:=$("$pick")}"
export APIR_LLAMA_CPP_GGML_LIBRARY_PATH
export VIRGL_APIR_BACKEND_LIBRARY="${VIRGL_APIR_BACKEND_LIBRARY:-$backend}"
# the device cache off unless a test names one: the counts of contexts the tests check assume
# that every process lists from the host
export GGML_VIRTGPU_DEVICE_CACHE="${GGML_VIRTGPU_DEVICE_CACHE-0}"
if [ "$first" = "-" ]; then
    export LD_PRELOAD="$shim"
else
    export LD_PRELOAD="$first:$shim"
fi
exec "$@"
