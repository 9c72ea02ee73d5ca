/* llama-serve: what llama-server does with one slot, in a loop of "requests" on one model and
 * context, so that the host can be made to fail while requests are in flight and the ones after
 * it can be watched (tests/frontend/llama-host-fails.sh; docs/frontend.md, "Device lost").
 * Each request clears the context's memory, decodes a prompt that differs per request (so the
 * graphs differ: ggml's scheduler splits them anew and asks supports_op again), and samples
 * N tokens with a seeded sampler (top-k, top-p, temperature: llama-server's defaults shape),
 * printing each piece as it is sampled. A failed decode ends the request with an error line;
 * the loop goes on, as a server does.
 * Usage: llama-serve -m MODEL [-r REQUESTS] [-n TOKENS] [--device NAME]
 * Output: "request I: " + pieces, then " [ok S]" or " [error RC after S]" per line;
 * stderr says "ready" when the model is loaded. Exit 0 unless the setup failed. */
#include "ggml_backends.h"

#include <llama.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* llama's own log lines are kept (errors only): the test reads the device-lost line */
static void log_cb(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN)
        fputs(text, stderr);
}

static void put_piece(const struct llama_vocab *vocab, llama_token t)
{
    char buf[256];
    int k = llama_token_to_piece(vocab, t, buf, sizeof buf, 0, false);
    for (int j = 0; j < k; j++) { /* one line per request, plain ASCII */
        unsigned char ch = (unsigned char)buf[j];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\')
            putchar(ch);
        else
            printf("\\x%02x", ch);
    }
    fflush(stdout);
}

static int serve(struct llama_context *ctx, const struct llama_vocab *vocab, int req, int n_gen)
{
    /* a prompt length of its own per request: new shapes, so new op signatures */
    char prompt[256];
    int len = snprintf(prompt, sizeof prompt, "Request %d: once upon a time", req);
    for (int i = 0; i < req % 16 && len < 200; i++)
        len += snprintf(prompt + len, sizeof prompt - (size_t)len, " and");
    llama_token toks[128];
    int n = llama_tokenize(vocab, prompt, (int)strlen(prompt), toks, 128, true, false);
    if (n <= 0)
        return -100;
    llama_memory_clear(llama_get_memory(ctx), true);
    struct llama_sampler *smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_top_k(40));
    llama_sampler_chain_add(smpl, llama_sampler_init_top_p(0.95f, 1));
    llama_sampler_chain_add(smpl, llama_sampler_init_temp(0.8f));
    llama_sampler_chain_add(smpl, llama_sampler_init_dist(1234u + (uint32_t)req));
    int rc = llama_decode(ctx, llama_batch_get_one(toks, n));
    for (int i = 0; !rc && i < n_gen; i++) {
        llama_token t = llama_sampler_sample(smpl, ctx, -1);
        put_piece(vocab, t);
        rc = llama_decode(ctx, llama_batch_get_one(&t, 1));
    }
    llama_sampler_free(smpl);
    return rc;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *device = "VirtGPU0";
    int requests = 6, n_gen = 16;
    for (int i = 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (has && !strcmp(argv[i], "-m"))
            model_path = argv[++i];
        else if (has && !strcmp(argv[i], "-r"))
            requests = atoi(argv[++i]);
        else if (has && !strcmp(argv[i], "-n"))
            n_gen = atoi(argv[++i]);
        else if (has && !strcmp(argv[i], "--device"))
            device = argv[++i];
        else {
            fprintf(stderr, "usage: llama-serve -m MODEL [-r REQUESTS] [-n TOKENS] [--device NAME]\n");
            return 2;
        }
    }
    if (!model_path)
        return 2;
    llama_log_set(log_cb, NULL);
    gb_load_backends();
    llama_backend_init();
    ggml_backend_dev_t devs[2] = {gb_device(device), NULL};
    if (!devs[0]) {
        fprintf(stderr, "llama-serve: no device %s\n", device);
        return 1;
    }
    struct llama_model_params mp = llama_model_default_params();
    mp.devices = devs;
    mp.n_gpu_layers = 999;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model)
        return 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_threads = cp.n_threads_batch = 1;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx)
        return 1;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    fprintf(stderr, "ready\n");
    for (int r = 0; r < requests; r++) {
        printf("request %d: ", r);
        double t0 = now_s();
        int rc = serve(ctx, vocab, r, n_gen);
        if (rc)
            printf(" [error %d after %.3f s]\n", rc, now_s() - t0);
        else
            printf(" [ok %.3f s]\n", now_s() - t0);
        fflush(stdout);
    }
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
