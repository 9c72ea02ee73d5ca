/* A small SentencePiece-style ("llama" tokenizer model) vocabulary, generated in code:
 * <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, printable ASCII, letter pairs and
 * "▁"-prefixed prefixes of common English words. Every multi-character piece can be reached
 * by merging two shorter pieces, so llama.cpp's SPM tokenizer segments English text into it. */
#ifndef TINY_VOCAB_H
#define TINY_VOCAB_H

#include <stddef.h>
#include <stdint.h>

/* llama.cpp's token types (llama_token_type) */
enum { TV_NORMAL = 1, TV_UNKNOWN = 2, TV_CONTROL = 3, TV_BYTE = 6 };

enum { TV_UNK_ID = 0, TV_BOS_ID = 1, TV_EOS_ID = 2 };

struct tiny_vocab {
    char **tokens;  /* n strings, unique */
    float *scores;  /* SPM merge priority: higher merges first */
    int32_t *types;
    size_t n, cap;
};

/* 0 on success, -1 on allocation failure */
int tiny_vocab_build(struct tiny_vocab *v);
/* grows the vocabulary to n entries (if it is smaller) with never-matching "<unusedN>"
 * pieces, for models whose output layer should have a realistic size; 0 or -1 (no memory) */
int tiny_vocab_pad(struct tiny_vocab *v, size_t n);
void tiny_vocab_free(struct tiny_vocab *v);

#endif
