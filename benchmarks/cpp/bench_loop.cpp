// The C++ ceiling for benchmarks/bench_generate.py: a minimal llama.cpp prefill and greedy
// decode loop, the way a C++ application would write it, built as a shared library so the
// benchmark can interleave it with the Python engines sample by sample in one process.
#include <chrono>
#include <cstdint>

#include "llama.h"

namespace {

double now_s() {
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

struct Loop {
    llama_model *model = nullptr;
    llama_context *ctx = nullptr;
    llama_sampler *sampler = nullptr;
    int n_batch = 512;
};

}  // namespace

extern "C" {

void *bench_open(const char *model_path, int threads, int n_ctx, int n_batch) {
    llama_backend_init();
    auto *loop = new Loop();
    loop->model = llama_model_load_from_file(model_path, llama_model_default_params());
    if (loop->model == nullptr) return nullptr;
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_ubatch = n_batch < 512 ? n_batch : 512;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    loop->ctx = llama_init_from_model(loop->model, cp);
    if (loop->ctx == nullptr) return nullptr;
    loop->sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(loop->sampler, llama_sampler_init_greedy());
    loop->n_batch = n_batch;
    return loop;
}

// Seconds to decode `tokens` into an empty context; negative on error.
double bench_prefill(void *handle, int32_t *tokens, int n) {
    auto *loop = static_cast<Loop *>(handle);
    llama_memory_clear(llama_get_memory(loop->ctx), true);
    const double t0 = now_s();
    for (int i = 0; i < n; i += loop->n_batch) {
        const int chunk = n - i < loop->n_batch ? n - i : loop->n_batch;
        if (llama_decode(loop->ctx, llama_batch_get_one(tokens + i, chunk)) != 0) return -1;
    }
    llama_synchronize(loop->ctx);
    return now_s() - t0;
}

// Greedy decode after `prompt`: returns tokens generated (<= n_predict) and, in *seconds,
// the time from the first generated token to the last.
int bench_decode(void *handle, int32_t *prompt, int n, int n_predict, double *seconds) {
    auto *loop = static_cast<Loop *>(handle);
    const llama_vocab *vocab = llama_model_get_vocab(loop->model);
    llama_memory_clear(llama_get_memory(loop->ctx), true);
    llama_sampler_reset(loop->sampler);
    if (llama_decode(loop->ctx, llama_batch_get_one(prompt, n)) != 0) return -1;
    char piece[256];
    double t_first = 0, t_last = 0;
    int generated = 0;
    llama_token token = llama_sampler_sample(loop->sampler, loop->ctx, -1);
    while (!llama_vocab_is_eog(vocab, token)) {
        llama_token_to_piece(vocab, token, piece, sizeof(piece), 0, false);
        t_last = now_s();
        if (++generated == 1) t_first = t_last;
        if (generated >= n_predict) break;
        if (llama_decode(loop->ctx, llama_batch_get_one(&token, 1)) != 0) return -1;
        token = llama_sampler_sample(loop->sampler, loop->ctx, -1);
    }
    *seconds = t_last - t_first;
    return generated;
}

void bench_close(void *handle) {
    auto *loop = static_cast<Loop *>(handle);
    llama_sampler_free(loop->sampler);
    llama_free(loop->ctx);
    llama_model_free(loop->model);
    delete loop;
}

}  // extern "C"
