#!/usr/bin/env bash
# Writes the representative filter of test-backend-ops cases that the test command runs
# (tests/conformance/ops-representative.txt) from the case list of the pinned release:
#
#   tests/conformance/make-representative.sh TOOLS_DIR > tests/conformance/ops-representative.txt
#
# TOOLS_DIR holds test-backend-ops (scripts/build-llama-tools.sh prints it). The selection:
#   - every case of every op with at most PER_OP (40) cases, and of the ops whose wrong results
#     had been seen through VirtGPU0 (GET_ROWS, SET_ROWS, CPY: views, offsets, strides);
#   - of each larger op family (FLASH_ATTN_EXT, CONV_2D, MUL_MAT, ...), PER_OP cases spread
#     evenly over its list (every k-th case), which keeps every kind of its variants in;
#   - the fused cases that only `test` mode has (TOPK_MOE, ROPE_SET_ROWS, ...), by name.
# The file is a list of `-o` entries (op names and full case strings), one a line.
set -euo pipefail
tools=$1
per_op=${PER_OP:-40}
always=" GET_ROWS SET_ROWS CPY "
csv=$(mktemp); trap 'rm -f "$csv"' EXIT
"$tools/test-backend-ops" support -b CPU --output csv >"$csv" 2>/dev/null
echo "# test-backend-ops cases run by tests/conformance/run.sh (written by make-representative.sh;"
echo "# PER_OP=$per_op): op names select all their cases, full case strings one case each."
awk -F'","' -v per="$per_op" -v always="$always" '
    NR == 1 { next }
    { op = $2; cases[op, n[op]++] = op "(" $3 ")"; if (!(op in seen)) { seen[op] = 1; order[no++] = op } }
    END {
        for (i = 0; i < no; i++) {
            op = order[i]
            if (n[op] <= per || index(always, " " op " ")) { print op; continue }
            step = n[op] / per
            for (j = 0; j < per; j++) print cases[op, int(j * step)]
        }
    }' "$csv"
# fused and whole-graph cases are not listed by `support`; test mode names them so (all their
# cases; the unary-times-tensor fusions are "<UNARY>_MUL")
for op in ADD_ADD ADD_RMS_NORM FALCON GATED_DELTA_NET_CACHE_FUSION GROUP_NORM_MUL_ADD \
    L2_NORM_BATCH LLAMA MOE_REDUCE MUL_MAT_ID_FUSION MUL_MAT_VEC_FUSION NORM_MUL_ADD NORM_SCALE \
    RMS_NORM_MUL_ADD RMS_NORM_MUL_ROPE RMS_NORM_SCALE ROPE_SET_ROWS SOFTCAP SSM_CONV_BIAS_SILU \
    SSM_SCAN_ROLLBACK TOPK_MOE TOPK_QSA '^[A-Z_]+_MUL$'; do
    echo "$op"
done
