// Minimal llama.cpp loop: decode a prompt (timed), then greedy-decode N tokens (timed),
// the way an application in C++ would. Prints one JSON line.
//
//   bench_loop MODEL THREADS N_CTX N_BATCH N_PREDICT PREFILL_TOKENS_FILE DECODE_TOKENS_FILE REPEATS
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "llama.h"

static std::vector<llama_token> read_tokens(const char *path) {
    std::ifstream in(path);
    std::vector<llama_token> out;
    llama_token t;
    while (in >> t) out.push_back(t);
    return out;
}

static double now_s() {
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

static void quiet(ggml_log_level, const char *, void *) {}

int main(int argc, char **argv) {
    if (argc != 9) {
        std::fprintf(stderr, "usage: %s MODEL THREADS N_CTX N_BATCH N_PREDICT PREFILL DECODE REPEATS\n", argv[0]);
        return 2;
    }
    const int threads = std::stoi(argv[2]), n_ctx = std::stoi(argv[3]), n_batch = std::stoi(argv[4]);
    const int n_predict = std::stoi(argv[5]), repeats = std::stoi(argv[8]);
    const auto prefill_tokens = read_tokens(argv[6]);
    const auto decode_prompt = read_tokens(argv[7]);

    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) return 1;
    const llama_vocab *vocab = llama_model_get_vocab(model);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_ubatch = n_batch < 512 ? n_batch : 512;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    llama_sampler *smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    std::printf("{\"prefill_s\": [");
    for (int r = 0; r < repeats; ++r) {
        llama_memory_clear(llama_get_memory(ctx), true);
        std::vector<llama_token> toks = prefill_tokens;
        const double t0 = now_s();
        for (size_t i = 0; i < toks.size(); i += n_batch) {
            const int n = (int)std::min<size_t>(n_batch, toks.size() - i);
            if (llama_decode(ctx, llama_batch_get_one(toks.data() + i, n)) != 0) return 1;
        }
        llama_synchronize(ctx);
        std::printf("%s%.6f", r ? ", " : "", now_s() - t0);
    }
    std::printf("], \"decode\": [");
    char piece[256];
    for (int r = 0; r < repeats; ++r) {
        llama_memory_clear(llama_get_memory(ctx), true);
        llama_sampler_reset(smpl);
        std::vector<llama_token> toks = decode_prompt;
        if (llama_decode(ctx, llama_batch_get_one(toks.data(), (int)toks.size())) != 0) return 1;
        double t_first = 0, t_last = 0;
        int n = 0;
        llama_token tok = llama_sampler_sample(smpl, ctx, -1);
        while (true) {
            if (llama_vocab_is_eog(vocab, tok)) break;
            llama_token_to_piece(vocab, tok, piece, sizeof(piece), 0, false);
            ++n;
            t_last = now_s();
            if (n == 1) t_first = t_last;
            if (n >= n_predict) break;
            if (llama_decode(ctx, llama_batch_get_one(&tok, 1)) != 0) return 1;
            tok = llama_sampler_sample(smpl, ctx, -1);
        }
        std::printf("%s[%d, %.6f]", r ? ", " : "", n, t_last - t_first);
    }
    std::printf("]}\n");
    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
