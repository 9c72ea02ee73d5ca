#include "tiny_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACE_MARK "\xe2\x96\x81" /* U+2581, SentencePiece's word-start marker */

static const char *const words[] = {
    "the", "of", "and", "to", "in", "is", "was", "that", "for", "on", "with", "as", "by", "at",
    "from", "his", "her", "it", "an", "are", "were", "which", "this", "be", "or", "had", "not",
    "but", "first", "one", "their", "also", "after", "new", "they", "has", "have", "two", "who",
    "its", "been", "other", "she", "when", "there", "time", "during", "into", "school", "more",
    "all", "may", "years", "over", "only", "would", "some", "most", "world", "city", "about",
    "between", "later", "three", "state", "such", "then", "made", "used", "known", "under",
    "many", "while", "where", "would", "each", "people", "small", "model", "machine", "virtual",
    "once", "upon", "a", "little", "girl", "boy", "dog", "cat", "house", "tree", "sun", "day",
    "night", "story", "hello", "remote", "graph", "tensor", "backend", "guest", "host",
    "quick", "brown", "fox", "jumps", "lazy", "what", "how", "why", "you", "we", "can", "will",
};

/* makes room for at least cap entries */
static int reserve(struct tiny_vocab *v, size_t cap)
{
    if (cap <= v->cap)
        return 0;
    char **t = realloc(v->tokens, cap * sizeof *t);
    if (!t)
        return -1;
    v->tokens = t;
    float *sc = realloc(v->scores, cap * sizeof *sc);
    if (!sc)
        return -1;
    v->scores = sc;
    int32_t *ty = realloc(v->types, cap * sizeof *ty);
    if (!ty)
        return -1;
    v->types = ty;
    v->cap = cap;
    return 0;
}

static int append(struct tiny_vocab *v, const char *s, float score, int32_t type)
{
    if (v->n == v->cap && reserve(v, v->cap ? v->cap * 2 : 1024))
        return -1;
    char *copy = strdup(s);
    if (!copy)
        return -1;
    v->tokens[v->n] = copy;
    v->scores[v->n] = score;
    v->types[v->n] = type;
    v->n++;
    return 0;
}

/* Takes ownership of nothing: copies s. Duplicates are skipped (llama.cpp requires unique
 * token texts). The vocabulary is ~1.5k entries, so a linear duplicate check is cheap. */
static int add(struct tiny_vocab *v, const char *s, float score, int32_t type)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->tokens[i], s) == 0)
            return 0;
    return append(v, s, score, type);
}

int tiny_vocab_build(struct tiny_vocab *v)
{
    memset(v, 0, sizeof *v);
    char buf[64];
    int rc = 0;
    rc |= add(v, "<unk>", 0.0f, TV_UNKNOWN);
    rc |= add(v, "<s>", 0.0f, TV_CONTROL);
    rc |= add(v, "</s>", 0.0f, TV_CONTROL);
    for (int b = 0; b < 256; b++) {
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        rc |= add(v, buf, 0.0f, TV_BYTE);
    }
    /* Longer pieces get higher scores so that SPM prefers whole words. */
    rc |= add(v, SPACE_MARK, -1000.0f, TV_NORMAL);
    for (int c = 33; c < 127; c++) {
        buf[0] = (char)c;
        buf[1] = 0;
        rc |= add(v, buf, -1000.0f, TV_NORMAL);
    }
    for (int a = 'a'; a <= 'z'; a++) {
        for (int b = 'a'; b <= 'z'; b++) {
            snprintf(buf, sizeof buf, "%c%c", a, b);
            rc |= add(v, buf, -900.0f, TV_NORMAL);
        }
    }
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t len = strlen(words[w]);
        for (size_t k = 1; k <= len; k++) {
            snprintf(buf, sizeof buf, SPACE_MARK "%.*s", (int)k, words[w]);
            rc |= add(v, buf, -800.0f + (float)k * 10.0f, TV_NORMAL);
        }
    }
    if (rc) {
        tiny_vocab_free(v);
        return -1;
    }
    return 0;
}

int tiny_vocab_pad(struct tiny_vocab *v, size_t n)
{
    char buf[32];
    if (reserve(v, n))
        return -1;
    /* "<unused%zu>" cannot collide with a generated piece: no (quadratic) duplicate check */
    for (size_t i = 0; v->n < n; i++) {
        snprintf(buf, sizeof buf, "<unused%zu>", i);
        if (append(v, buf, -10000.0f, TV_NORMAL))
            return -1;
    }
    return 0;
}

void tiny_vocab_free(struct tiny_vocab *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->tokens[i]);
    free(v->tokens);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}
