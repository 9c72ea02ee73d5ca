/* llama-run: greedy text generation with libllama, on the native CPU or offloaded to a device
 * (VirtGPU0 through remoting). Prints the token ids, the text and the speeds in a stable,
 * script-friendly form:
 *   device: NAME
 *   prompt_ids: 1 42 ...
 *   ids: 7 99 ...          (generated)
 *   text: ...              (non-printable bytes as \xNN)
 *   pp_tok_s: 123.4        (prompt processing)
 *   tg_tok_s: 45.6         (generation)
 *   nodes_on_device: 900/1000   (with --count-nodes: graph nodes computed in the device's
 *                                buffers, proof that the work was offloaded)
 *
 * Usage: llama-run -m MODEL [-p PROMPT] [-n N] [--native | --device NAME] [-t THREADS]
 *                  [-c CTX] [--ignore-eos] [--no-warmup] [--count-nodes] [-v] */
#include "ggml_backends.h"

#include <llama.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct opts {
    const char *model, *prompt, *device;
    int n_gen, threads, n_ctx;
    bool native, ignore_eos, warmup, verbose, count_nodes;
};

/* --count-nodes: ggml's scheduler asks the eval callback about every node before computing it;
 * answering "not needed" keeps each split in one piece, and the node's buffer says where it ran */
struct node_count {
    ggml_backend_dev_t dev;
    long on_dev, total;
};

static bool count_cb(struct ggml_tensor *t, bool ask, void *ud)
{
    struct node_count *nc = ud;
    if (ask && t->buffer) {
        ggml_backend_dev_t d = ggml_backend_buft_get_device(ggml_backend_buffer_get_type(t->buffer));
        if (!d) /* ggml's CPU buffer type names no device */
            d = gb_cpu_device();
        nc->total++;
        nc->on_dev += d == nc->dev;
    }
    return !ask;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool g_verbose;

/* llama/ggml chatter stays quiet unless -v; warnings and errors always show */
static void log_cb(enum ggml_log_level level, const char *text, void *ud)
{
    static enum ggml_log_level last = GGML_LOG_LEVEL_INFO;
    (void)ud;
    if (level != GGML_LOG_LEVEL_CONT)
        last = level;
    if (g_verbose || last == GGML_LOG_LEVEL_WARN || last == GGML_LOG_LEVEL_ERROR)
        fputs(text, stderr);
}

static void usage(void)
{
    fprintf(stderr, "usage: llama-run -m MODEL [-p PROMPT] [-n N] [--native | --device NAME] "
                    "[-t THREADS] [-c CTX] [--ignore-eos] [--no-warmup] [--count-nodes] [-v]\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (struct opts){ NULL, "Once upon a time, there was a little girl who", NULL, 32,
                        ncpu > 0 ? (int)ncpu : 1, 512, false, false, true, false, false };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--native"))
            o->native = true;
        else if (!strcmp(a, "--ignore-eos"))
            o->ignore_eos = true;
        else if (!strcmp(a, "--no-warmup"))
            o->warmup = false;
        else if (!strcmp(a, "--count-nodes"))
            o->count_nodes = true;
        else if (!strcmp(a, "-v"))
            o->verbose = true;
        else if (has && !strcmp(a, "-m"))
            o->model = argv[++i];
        else if (has && !strcmp(a, "-p"))
            o->prompt = argv[++i];
        else if (has && !strcmp(a, "--device"))
            o->device = argv[++i];
        else if (has && !strcmp(a, "-n"))
            o->n_gen = atoi(argv[++i]);
        else if (has && !strcmp(a, "-t"))
            o->threads = atoi(argv[++i]);
        else if (has && !strcmp(a, "-c"))
            o->n_ctx = atoi(argv[++i]);
        else
            return -1;
    }
    if (!o->model || o->n_gen < 0 || o->threads <= 0 || o->n_ctx <= 0 || (o->native && o->device))
        return -1;
    return 0;
}

/* The device list handed to llama: empty for --native (CPU only), the named device, or NULL
 * (llama's default: every GPU-type device, which includes VirtGPU0). */
static int pick_devices(const struct opts *o, ggml_backend_dev_t devs[2], const char **label)
{
    devs[0] = devs[1] = NULL;
    if (o->native) {
        *label = ggml_backend_dev_name(gb_cpu_device());
        return 0;
    }
    if (o->device) {
        devs[0] = gb_device(o->device);
        if (!devs[0]) {
            fprintf(stderr, "llama-run: no device named %s; devices:\n", o->device);
            gb_print_devices(stderr);
            return -1;
        }
        *label = o->device;
        return 0;
    }
    ggml_backend_dev_t gpu = gb_first_gpu();
    *label = gpu ? ggml_backend_dev_name(gpu) : "CPU (no GPU device found)";
    return 1; /* use llama's default list */
}

static int tokenize(const struct llama_vocab *vocab, const char *text, llama_token **out)
{
    int len = (int)strlen(text);
    int n = -llama_tokenize(vocab, text, len, NULL, 0, true, false);
    if (n <= 0)
        return -1;
    *out = malloc(sizeof(llama_token) * (size_t)n);
    if (!*out || llama_tokenize(vocab, text, len, *out, n, true, false) != n)
        return -1;
    return n;
}

static void print_ids(const char *key, const llama_token *t, int n)
{
    printf("%s:", key);
    for (int i = 0; i < n; i++)
        printf(" %d", t[i]);
    printf("\n");
}

static void print_text(const struct llama_vocab *vocab, const llama_token *t, int n)
{
    printf("text: ");
    for (int i = 0; i < n; i++) {
        char buf[256];
        int k = llama_token_to_piece(vocab, t[i], buf, sizeof buf, 0, false);
        /* one line, plain ASCII: random weights produce byte tokens and newlines */
        for (int j = 0; j < k; j++) {
            unsigned char ch = (unsigned char)buf[j];
            if (ch >= 0x20 && ch < 0x7f && ch != '\\')
                putchar(ch);
            else
                printf("\\x%02x", ch);
        }
    }
    printf("\n");
}

static int decode_timed(struct llama_context *ctx, llama_token *t, int n, double *secs)
{
    double t0 = now_s();
    int rc = llama_decode(ctx, llama_batch_get_one(t, n));
    llama_synchronize(ctx);
    *secs += now_s() - t0;
    return rc;
}

static int run(const struct opts *o, struct llama_model *model, struct llama_context *ctx,
               const struct node_count *nc)
{
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    llama_token *prompt = NULL;
    int n_prompt = tokenize(vocab, o->prompt, &prompt);
    if (n_prompt <= 0 || n_prompt + o->n_gen > o->n_ctx) {
        fprintf(stderr, "llama-run: cannot tokenize the prompt, or it does not fit the context\n");
        free(prompt);
        return 1;
    }
    print_ids("prompt_ids", prompt, n_prompt);
    double t_warm = 0, t_pp = 0, t_tg = 0;
    /* warm-up: the first decode allocates graphs and buffers, which is not throughput */
    if (o->warmup) {
        if (decode_timed(ctx, prompt, n_prompt, &t_warm)) {
            fprintf(stderr, "llama-run: warm-up decode failed\n");
            free(prompt);
            return 1;
        }
        llama_memory_clear(llama_get_memory(ctx), true);
    }
    struct llama_sampler *smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
    llama_token *gen = malloc(sizeof(llama_token) * (size_t)(o->n_gen + 1));
    int n = 0, rc = 0;
    if (!gen || decode_timed(ctx, prompt, n_prompt, &t_pp)) {
        fprintf(stderr, "llama-run: prompt decode failed\n");
        rc = 1;
    }
    while (!rc && n < o->n_gen) {
        double t0 = now_s();
        llama_token tok = llama_sampler_sample(smpl, ctx, -1);
        t_tg += now_s() - t0;
        gen[n++] = tok;
        if (!o->ignore_eos && llama_vocab_is_eog(vocab, tok))
            break;
        if (decode_timed(ctx, &tok, 1, &t_tg)) {
            fprintf(stderr, "llama-run: decode failed at token %d\n", n);
            rc = 1;
        }
    }
    if (!rc) {
        print_ids("ids", gen, n);
        print_text(vocab, gen, n);
        printf("pp_tokens: %d\npp_s: %.6f\npp_tok_s: %.2f\n", n_prompt, t_pp,
               t_pp > 0 ? n_prompt / t_pp : 0.0);
        printf("tg_tokens: %d\ntg_s: %.6f\ntg_tok_s: %.2f\n", n, t_tg, t_tg > 0 ? n / t_tg : 0.0);
        if (o->count_nodes)
            printf("nodes_on_device: %ld/%ld\n", nc->on_dev, nc->total);
    }
    llama_sampler_free(smpl);
    free(gen);
    free(prompt);
    return rc;
}

/* The CPU backend's threads kept between graphs, as llama.cpp's own programs do (llama-cli,
 * llama-completion, llama-bench): without a threadpool every graph starts and joins them. */
static void *attach_cpu_threadpool(struct llama_context *ctx, int threads)
{
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = cpu ? ggml_backend_dev_backend_reg(cpu) : NULL;
    void *(*tp_new)(struct ggml_threadpool_params *) =
        reg ? (void *(*)(struct ggml_threadpool_params *))ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new")
            : NULL;
    if (!tp_new)
        return NULL;
    struct ggml_threadpool_params params = ggml_threadpool_params_default(threads);
    void *tp = tp_new(&params);
    if (tp)
        llama_attach_threadpool(ctx, tp, tp);
    return tp;
}

static void detach_cpu_threadpool(void *tp)
{
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = cpu ? ggml_backend_dev_backend_reg(cpu) : NULL;
    void (*tp_free)(void *) = reg ? (void (*)(void *))ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free") : NULL;
    if (tp && tp_free)
        tp_free(tp);
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o)) {
        usage();
        return 2;
    }
    g_verbose = o.verbose;
    llama_log_set(log_cb, NULL);
    gb_load_backends();
    llama_backend_init();

    ggml_backend_dev_t devs[2];
    const char *label = NULL;
    int sel = pick_devices(&o, devs, &label);
    if (sel < 0)
        return 1;
    printf("device: %s\n", label);
    fflush(stdout);

    struct llama_model_params mp = llama_model_default_params();
    mp.devices = sel == 1 ? NULL : devs;
    mp.n_gpu_layers = o.native ? 0 : 999;
    struct llama_model *model = llama_model_load_from_file(o.model, mp);
    if (!model) {
        fprintf(stderr, "llama-run: cannot load %s\n", o.model);
        return 1;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)o.n_ctx;
    cp.n_batch = (uint32_t)o.n_ctx;
    cp.n_threads = cp.n_threads_batch = o.threads;
    struct node_count nc = { NULL, 0, 0 };
    if (o.count_nodes) {
        nc.dev = o.native ? gb_cpu_device() : o.device ? devs[0] : gb_first_gpu();
        cp.cb_eval = count_cb;
        cp.cb_eval_user_data = &nc;
    }
    struct llama_context *ctx = llama_init_from_model(model, cp);
    int rc = 1;
    void *threadpool = NULL;
    if (!ctx) {
        fprintf(stderr, "llama-run: cannot create a context\n");
    } else {
        /* natively only: through VirtGPU0 the guest's CPU work is a token lookup, and pool
         * threads polling for work would take cores from the host's compute */
        if (o.native)
            threadpool = attach_cpu_threadpool(ctx, o.threads);
        rc = run(&o, model, ctx, &nc);
    }
    llama_free(ctx);
    detach_cpu_threadpool(threadpool);
    llama_model_free(model);
    llama_backend_free();
    return rc;
}
