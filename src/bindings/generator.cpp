// Generator: the per-token loop (decode -> sample -> accept) in C++.
//
// A Python caller pays one call per token: either iterate the generator (`next()` returns
// `(token, piece_bytes)`), or call `run(callback)`, which loops in C++ with the GIL
// released and calls `callback(token, piece_bytes)` once per token; the callback returns
// False to stop. Both paths share step().
//
// The generator starts right after a prompt decode: the context holds `kv_tokens` of
// sequence `seq_id` at positions 0..n-1 and the last output holds that decode's logits.
#include "common.hpp"

#include <optional>

namespace llamahost {
namespace {

class Generator {
public:
    Generator(std::shared_ptr<Context> ctx, std::shared_ptr<Sampler> sampler,
              std::vector<llama_token> kv_tokens, llama_seq_id seq_id, int32_t n_predict,
              bool special, int32_t n_keep, bool shift)
        : ctx_(std::move(ctx)),
          sampler_(std::move(sampler)),
          kv_tokens_(std::move(kv_tokens)),
          seq_id_(seq_id),
          seq_ids_{seq_id},
          n_predict_(n_predict),
          special_(special),
          n_keep_(std::max<int32_t>(0, n_keep)),
          shift_(shift),
          batch_(1, 1) {
        if (sampler_->model() != ctx_->model()) {
            raise("SamplerError", "the sampler was built for a different model than the context");
        }
        if (kv_tokens_.empty()) {
            raise("InvalidBatchError", "generation needs a decoded prompt of at least one token");
        }
    }

    // One token, or nullopt when generation has ended (see done_reason).
    std::optional<std::pair<llama_token, std::string>> step() {
        if (!done_reason_.empty()) return std::nullopt;
        if (ctx_->abort_requested()) {
            ctx_->clear_abort();
            done_reason_ = "aborted";
            raise("AbortedError", "aborted");
        }
        if (pending_ != LLAMA_TOKEN_NULL) {
            if (n_predict_ >= 0 && n_generated_ >= n_predict_) return finish("length");
            if (!make_room()) return finish("length");
            batch_.clear();
            batch_.add(pending_, static_cast<llama_pos>(kv_tokens_.size()), seq_ids_, true);
            ctx_->decode(batch_.get());
            kv_tokens_.push_back(pending_);
            pending_ = LLAMA_TOKEN_NULL;
        } else if (n_predict_ == 0) {
            return finish("length");
        }
        const llama_token token = sampler_->sample(*ctx_, -1);
        if (llama_vocab_is_eog(ctx_->model()->vocab(), token)) {
            eog_token_ = token;
            return finish("stop");
        }
        pending_ = token;
        ++n_generated_;
        return std::make_pair(token, ctx_->model()->token_to_piece(token, special_));
    }

    void run(const py::function &callback) {
        py::gil_scoped_release release;
        while (auto produced = step()) {
            py::gil_scoped_acquire gil;
            py::object keep_going =
                callback(produced->first, py::bytes(produced->second));
            if (!keep_going.is_none() && !PyObject_IsTrue(keep_going.ptr())) {
                finish("callback");
                break;
            }
        }
    }

    void stop() {
        if (done_reason_.empty()) finish("callback");
    }

    const std::string &done_reason() const { return done_reason_; }
    int32_t n_generated() const { return n_generated_; }
    int32_t n_shifted() const { return n_shifted_; }
    llama_token pending() const { return pending_; }
    llama_token eog_token() const { return eog_token_; }
    const std::vector<llama_token> &kv_tokens() const { return kv_tokens_; }

private:
    std::nullopt_t finish(const char *reason) {
        done_reason_ = reason;
        return std::nullopt;
    }

    // Make room for one more token: shift the context (drop the oldest half after
    // n_keep) when allowed, else report that the context is full.
    bool make_room() {
        const auto n_past = static_cast<int32_t>(kv_tokens_.size());
        if (n_past < static_cast<int32_t>(ctx_->n_ctx_seq())) return true;
        if (!shift_ || !llama_memory_can_shift(ctx_->memory())) return false;
        const int32_t n_keep = std::min(n_keep_, n_past - 1);
        const int32_t n_discard = (n_past - n_keep) / 2;
        if (n_discard <= 0) return false;
        llama_memory_t mem = ctx_->memory();
        if (!llama_memory_seq_rm(mem, seq_id_, n_keep, n_keep + n_discard)) return false;
        llama_memory_seq_add(mem, seq_id_, n_keep + n_discard, n_past, -n_discard);
        kv_tokens_.erase(kv_tokens_.begin() + n_keep, kv_tokens_.begin() + n_keep + n_discard);
        n_shifted_ += n_discard;
        return true;
    }

    std::shared_ptr<Context> ctx_;
    std::shared_ptr<Sampler> sampler_;
    std::vector<llama_token> kv_tokens_;
    llama_seq_id seq_id_;
    std::vector<llama_seq_id> seq_ids_;
    int32_t n_predict_;
    bool special_;
    int32_t n_keep_;
    bool shift_;
    Batch batch_;
    llama_token pending_ = LLAMA_TOKEN_NULL;
    llama_token eog_token_ = LLAMA_TOKEN_NULL;
    int32_t n_generated_ = 0;
    int32_t n_shifted_ = 0;
    std::string done_reason_;
};

}  // namespace

void register_generator(py::module_ &m) {
    py::class_<Generator>(m, "Generator", R"doc(
The token loop: decode the previous token, sample the next, accept it, hand it over.
Iterate it for `(token, piece_bytes)` pairs, or call run(callback). Ends with
done_reason "stop" (end-of-generation token), "length" (n_predict reached or the context
is full and may not shift) or "callback" (the callback returned False, or stop()).
Raises AbortedError if Context.abort() is called meanwhile.)doc")
        .def(py::init<std::shared_ptr<Context>, std::shared_ptr<Sampler>, std::vector<llama_token>,
                      llama_seq_id, int32_t, bool, int32_t, bool>(),
             py::arg("context"), py::arg("sampler"), py::arg("kv_tokens"), py::kw_only(),
             py::arg("seq_id") = 0, py::arg("n_predict") = -1, py::arg("special") = false,
             py::arg("n_keep") = 0, py::arg("shift") = true)
        .def("__iter__", [](py::object self) { return self; })
        .def("__next__",
             [](Generator &g) {
                 std::optional<std::pair<llama_token, std::string>> produced;
                 {
                     py::gil_scoped_release release;
                     produced = g.step();
                 }
                 if (!produced) throw py::stop_iteration();
                 return py::make_tuple(produced->first, py::bytes(produced->second));
             })
        .def("run", &Generator::run, py::arg("callback"),
             "Generate to the end in C++, calling callback(token, piece_bytes) per token; "
             "a False return stops generation.")
        .def("stop", &Generator::stop, "End generation now (done_reason 'callback').")
        .def_property_readonly("done_reason",
                               [](const Generator &g) -> std::optional<std::string> {
                                   if (g.done_reason().empty()) return std::nullopt;
                                   return g.done_reason();
                               })
        .def_property_readonly("n_generated", &Generator::n_generated)
        .def_property_readonly("n_shifted", &Generator::n_shifted,
                               "Tokens dropped by context shifts so far.")
        .def_property_readonly("eog_token", &Generator::eog_token)
        .def_property_readonly("pending_token", &Generator::pending,
                               "The last sampled token, not yet decoded into the context (-1 if none).")
        .def_property_readonly("kv_tokens", &Generator::kv_tokens,
                               "The tokens the context holds for this sequence, in order.");
}

}  // namespace llamahost
