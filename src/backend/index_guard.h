/* GET_ROWS and SET_ROWS read row indices from tensor data, and ggml's kernels abort the
 * process on an index out of range. The host checks those indices before every compute:
 * at decode time it makes sure no node of the graph writes the index tensors (so the values
 * read before the compute are the values the kernel will see), and before each compute it
 * reads them and checks their range. */
#ifndef APIR_INDEX_GUARD_H
#define APIR_INDEX_GUARD_H

#include "ggml.h"

#include <stdint.h>

struct index_guard {
    struct ggml_tensor **nodes; /* the GET_ROWS / SET_ROWS nodes of the graph */
    uint32_t n;
};

/* Collects the index nodes of graph; refuses (apir status) index tensors that are not
 * contiguous or that a node of the graph writes. */
uint32_t index_guard_build(struct ggml_cgraph *graph, struct index_guard *out);
/* APIR_BACKEND_OK when every index is in range right now */
uint32_t index_guard_check(const struct index_guard *g);
void index_guard_free(struct index_guard *g);

#endif
