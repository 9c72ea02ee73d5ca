/* Deterministic input data for the op-consistency test: the same (tensor name, shape, seed)
 * gives the same bytes, so both backends get identical inputs. */
#ifndef E2E_OP_FILL_H
#define E2E_OP_FILL_H

#include <ggml.h>
#include <stdint.h>

/* Writes t's input data (see op_cases.h for the name conventions) through
 * ggml_backend_tensor_set. 0 on success, -1 on allocation failure. */
int op_fill_tensor(struct ggml_tensor *t, uint64_t seed);

#endif
