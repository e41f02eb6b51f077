// Sampler: a llama_sampler chain plus an optional grammar sampler kept beside it.
//
// The grammar is checked the way llama.cpp's own tools do it: sample with the chain,
// check only that token against the grammar, and run the grammar over the whole
// vocabulary only when it rejects the token. Constrained output costs little more
// than unconstrained output.
#include "common.hpp"

#include <cmath>

namespace llamahost {
namespace {

std::string n_str(int64_t v) { return std::to_string(v); }

llama_sampler *checked(llama_sampler *smpl, const char *what) {
    if (smpl == nullptr) raise("SamplerError", std::string("llama.cpp refused the ") + what +
                                                   " sampler with these parameters");
    return smpl;
}

}  // namespace

Sampler::Sampler(std::shared_ptr<Model> model) : model_(std::move(model)) {
    llama_sampler_chain_params params = llama_sampler_chain_default_params();
    params.no_perf = false;
    chain_.reset(llama_sampler_chain_init(params));
    candidates_.resize(static_cast<size_t>(model_->n_vocab()));
}

void Sampler::add(llama_sampler *smpl, const char *what, bool takes_history) {
    checked(smpl, what);
    llama_sampler_chain_add(chain_.get(), smpl);
    if (takes_history) history_samplers_.push_back(llama_sampler_chain_n(chain_.get()) - 1);
}

void Sampler::set_grammar(llama_sampler *grammar) { grammar_.reset(grammar); }

void Sampler::fill_candidates(const float *logits) {
    const int32_t n = model_->n_vocab();
    candidates_.resize(static_cast<size_t>(n));
    for (int32_t t = 0; t < n; ++t) candidates_[static_cast<size_t>(t)] = {t, logits[t], 0.0f};
}

llama_token Sampler::sample(Context &ctx, int32_t idx) {
    const float *logits = llama_get_logits_ith(ctx.get(), idx);
    if (logits == nullptr) {
        raise("DecodeError", "no logits for output " + n_str(idx) + " to sample from");
    }
    auto selected = [](const llama_token_data_array &arr) -> llama_token {
        if (arr.selected < 0 || static_cast<size_t>(arr.selected) >= arr.size) {
            raise("SamplerError", "the sampler chain selected no token (end it with greedy, "
                                  "dist or mirostat)");
        }
        return arr.data[arr.selected].id;
    };
    try {
        fill_candidates(logits);
        llama_token_data_array arr{candidates_.data(), candidates_.size(), -1, false};
        llama_sampler_apply(chain_.get(), &arr);
        llama_token token = selected(arr);
        if (grammar_) {
            llama_token_data single{token, 1.0f, 0.0f};
            llama_token_data_array one{&single, 1, -1, false};
            llama_sampler_apply(grammar_.get(), &one);
            if (std::isinf(single.logit) && single.logit < 0) {
                fill_candidates(logits);
                arr = {candidates_.data(), candidates_.size(), -1, false};
                llama_sampler_apply(grammar_.get(), &arr);
                llama_sampler_apply(chain_.get(), &arr);
                token = selected(arr);
                if (std::isinf(arr.data[arr.selected].logit) && arr.data[arr.selected].logit < 0) {
                    raise("GrammarError", "the grammar allows no token of this vocabulary here");
                }
            }
            llama_sampler_accept(grammar_.get(), token);
        }
        llama_sampler_accept(chain_.get(), token);
        return token;
    } catch (const NativeError &) {
        throw;
    } catch (const std::exception &e) {
        // llama.cpp's grammar code reports impossible states with C++ exceptions.
        raise("GrammarError", std::string("sampling failed: ") + e.what());
    }
}

void Sampler::accept(llama_token token) {
    model_->check_token(token, "token id");
    try {
        if (grammar_) llama_sampler_accept(grammar_.get(), token);
        llama_sampler_accept(chain_.get(), token);
    } catch (const std::exception &e) {
        raise("GrammarError", std::string("the grammar rejects token ") + n_str(token) + ": " +
                                  e.what());
    }
}

void Sampler::accept_history(const std::vector<llama_token> &tokens) {
    for (llama_token t : tokens) model_->check_token(t, "token id");
    for (int32_t i : history_samplers_) {
        llama_sampler *s = llama_sampler_chain_get(chain_.get(), i);
        for (llama_token t : tokens) llama_sampler_accept(s, t);
    }
}

void Sampler::reset() {
    llama_sampler_reset(chain_.get());
    if (grammar_) llama_sampler_reset(grammar_.get());
}

std::vector<std::string> Sampler::names() const {
    std::vector<std::string> out;
    const int32_t n = llama_sampler_chain_n(chain_.get());
    for (int32_t i = 0; i < n; ++i) {
        out.emplace_back(llama_sampler_name(llama_sampler_chain_get(chain_.get(), i)));
    }
    if (grammar_) out.emplace_back(llama_sampler_name(grammar_.get()));
    return out;
}

void register_sampler(py::module_ &m) {
    py::class_<Sampler, std::shared_ptr<Sampler>>(m, "Sampler", R"doc(
A sampler chain (llama_sampler_chain) built step by step, plus an optional GBNF grammar.
Add filters in order and end with a selecting sampler (greedy, dist, mirostat).
Parameter ranges are validated by llamahost.Options before they get here.)doc")
        .def(py::init<std::shared_ptr<Model>>(), py::arg("model"))
        .def("add_greedy", [](Sampler &s) { s.add(llama_sampler_init_greedy(), "greedy"); })
        .def(
            "add_dist", [](Sampler &s, uint32_t seed) { s.add(llama_sampler_init_dist(seed), "dist"); },
            py::arg("seed") = LLAMA_DEFAULT_SEED)
        .def(
            "add_top_k", [](Sampler &s, int32_t k) { s.add(llama_sampler_init_top_k(k), "top_k"); },
            py::arg("k"))
        .def(
            "add_top_p",
            [](Sampler &s, float p, size_t min_keep) {
                s.add(llama_sampler_init_top_p(p, min_keep), "top_p");
            },
            py::arg("p"), py::arg("min_keep") = 1)
        .def(
            "add_min_p",
            [](Sampler &s, float p, size_t min_keep) {
                s.add(llama_sampler_init_min_p(p, min_keep), "min_p");
            },
            py::arg("p"), py::arg("min_keep") = 1)
        .def(
            "add_typical",
            [](Sampler &s, float p, size_t min_keep) {
                s.add(llama_sampler_init_typical(p, min_keep), "typical");
            },
            py::arg("p"), py::arg("min_keep") = 1)
        .def(
            "add_temp", [](Sampler &s, float t) { s.add(llama_sampler_init_temp(t), "temp"); },
            py::arg("t"))
        .def(
            "add_temp_ext",
            [](Sampler &s, float t, float delta, float exponent) {
                s.add(llama_sampler_init_temp_ext(t, delta, exponent), "temp_ext");
            },
            py::arg("t"), py::arg("delta"), py::arg("exponent"))
        .def(
            "add_xtc",
            [](Sampler &s, float p, float t, size_t min_keep, uint32_t seed) {
                s.add(llama_sampler_init_xtc(p, t, min_keep, seed), "xtc");
            },
            py::arg("probability"), py::arg("threshold"), py::arg("min_keep") = 1,
            py::arg("seed") = LLAMA_DEFAULT_SEED)
        .def(
            "add_top_n_sigma",
            [](Sampler &s, float n) { s.add(llama_sampler_init_top_n_sigma(n), "top_n_sigma"); },
            py::arg("n"))
        .def(
            "add_mirostat",
            [](Sampler &s, uint32_t seed, float tau, float eta, int32_t m) {
                s.add(llama_sampler_init_mirostat(s.model()->n_vocab(), seed, tau, eta, m),
                      "mirostat");
            },
            py::arg("seed"), py::arg("tau"), py::arg("eta"), py::arg("m") = 100)
        .def(
            "add_mirostat_v2",
            [](Sampler &s, uint32_t seed, float tau, float eta) {
                s.add(llama_sampler_init_mirostat_v2(seed, tau, eta), "mirostat_v2");
            },
            py::arg("seed"), py::arg("tau"), py::arg("eta"))
        .def(
            "add_penalties",
            [](Sampler &s, int32_t last_n, float repeat, float frequency, float presence) {
                s.add(llama_sampler_init_penalties(s.model()->n_vocab(), last_n, repeat, frequency,
                                                   presence),
                      "penalties", /*takes_history=*/true);
            },
            py::arg("last_n"), py::arg("repeat"), py::arg("frequency"), py::arg("presence"))
        .def(
            "add_dry",
            [](Sampler &s, float multiplier, float base, int32_t allowed_length,
               int32_t penalty_last_n, const std::vector<std::string> &breakers) {
                std::vector<const char *> c_breakers;
                for (const auto &b : breakers) c_breakers.push_back(b.c_str());
                s.add(llama_sampler_init_dry(s.model()->vocab(), multiplier, base, allowed_length,
                                             penalty_last_n, c_breakers.data(), c_breakers.size()),
                      "dry", /*takes_history=*/true);
            },
            py::arg("multiplier"), py::arg("base"), py::arg("allowed_length"),
            py::arg("penalty_last_n"), py::arg("sequence_breakers"))
        .def(
            "add_logit_bias",
            [](Sampler &s, const std::map<llama_token, float> &bias) {
                std::vector<llama_logit_bias> entries;
                for (const auto &[token, value] : bias) {
                    s.model()->check_token(token, "logit_bias token id");
                    entries.push_back({token, value});
                }
                s.add(llama_sampler_init_logit_bias(s.model()->n_vocab(),
                                                    static_cast<int32_t>(entries.size()),
                                                    entries.data()),
                      "logit_bias");
            },
            py::arg("bias"))
        .def(
            "set_grammar",
            [](Sampler &s, const std::string &grammar, const std::string &root) {
                llama_sampler *g = nullptr;
                std::string reason;
                {
                    LogCapture capture;
                    g = llama_sampler_init_grammar(s.model()->vocab(), grammar.c_str(), root.c_str());
                    if (g == nullptr) reason = capture.reason();
                }
                if (g == nullptr) {
                    raise("GrammarError", "invalid GBNF grammar" +
                                              (reason.empty() ? std::string() : ": " + reason));
                }
                s.set_grammar(g);
            },
            py::arg("grammar"), py::arg("root") = "root",
            "Constrain sampling to a GBNF grammar (GrammarError if it does not parse).")
        .def(
            "set_lazy_grammar",
            [](Sampler &s, const std::string &grammar, const std::string &root,
               const std::vector<std::string> &trigger_patterns,
               const std::vector<llama_token> &trigger_tokens) {
                for (llama_token t : trigger_tokens) s.model()->check_token(t, "trigger token");
                std::vector<const char *> patterns;
                for (const auto &p : trigger_patterns) patterns.push_back(p.c_str());
                llama_sampler *g = nullptr;
                std::string reason;
                {
                    LogCapture capture;
                    try {
                        g = llama_sampler_init_grammar_lazy_patterns(
                            s.model()->vocab(), grammar.c_str(), root.c_str(), patterns.data(),
                            patterns.size(), trigger_tokens.data(), trigger_tokens.size());
                    } catch (const std::exception &e) {  // e.g. an invalid trigger regex
                        reason = e.what();
                    }
                    if (g == nullptr && reason.empty()) reason = capture.reason();
                }
                if (g == nullptr) {
                    raise("GrammarError", "invalid lazy grammar" +
                                              (reason.empty() ? std::string() : ": " + reason));
                }
                s.set_grammar(g);
            },
            py::arg("grammar"), py::arg("root") = "root",
            py::arg("trigger_patterns") = std::vector<std::string>{},
            py::arg("trigger_tokens") = std::vector<llama_token>{},
            "A grammar that applies only once the output matches a trigger pattern or token.")
        .def(
            "sample",
            [](Sampler &s, Context &ctx, int32_t idx) {
                py::gil_scoped_release release;
                return s.sample(ctx, idx);
            },
            py::arg("context"), py::arg("idx") = -1,
            "Sample (and accept) a token from output idx of the context's last decode.")
        .def("accept", &Sampler::accept, py::arg("token"))
        .def("accept_history", &Sampler::accept_history, py::arg("tokens"),
             "Feed earlier tokens (e.g. the prompt) to the penalty and DRY samplers only.")
        .def("reset", &Sampler::reset)
        .def_property_readonly("names", &Sampler::names)
        .def_property_readonly("has_grammar", &Sampler::has_grammar)
        .def_property_readonly("seed",
                               [](const Sampler &s) { return llama_sampler_get_seed(s.chain()); });
}

}  // namespace llamahost
