// Context (llama_context) and Batch (llama_batch): decode, outputs, memory, state, abort.
#include "common.hpp"

#include <pybind11/numpy.h>

#include <cmath>
#include <optional>

namespace llamahost {
namespace {

std::string n_str(int64_t v) { return std::to_string(v); }

py::array_t<float> float_view(const float *data, int64_t n, py::handle owner) {
    // A view into llama.cpp's buffer, valid until the next decode on the owner context.
    return py::array_t<float>({n}, {static_cast<int64_t>(sizeof(float))}, data, owner);
}

py::dict default_context_params() {
    const llama_context_params p = llama_context_default_params();
    py::dict d;
    d["n_ctx"] = p.n_ctx;
    d["n_batch"] = p.n_batch;
    d["n_ubatch"] = p.n_ubatch;
    d["n_seq_max"] = p.n_seq_max;
    d["n_threads"] = p.n_threads;
    d["n_threads_batch"] = p.n_threads_batch;
    d["flash_attn"] = static_cast<int>(p.flash_attn_type);
    d["type_k"] = static_cast<int>(p.type_k);
    d["type_v"] = static_cast<int>(p.type_v);
    d["embeddings"] = p.embeddings;
    d["pooling_type"] = static_cast<int>(p.pooling_type);
    d["attention_type"] = static_cast<int>(p.attention_type);
    d["rope_freq_base"] = p.rope_freq_base;
    d["rope_freq_scale"] = p.rope_freq_scale;
    d["offload_kqv"] = p.offload_kqv;
    d["kv_unified"] = p.kv_unified;
    d["swa_full"] = p.swa_full;
    d["no_perf"] = p.no_perf;
    return d;
}

std::shared_ptr<Context> make_context(std::shared_ptr<Model> model, uint32_t n_ctx,
                                      uint32_t n_batch, uint32_t n_ubatch, uint32_t n_seq_max,
                                      int32_t n_threads, int32_t n_threads_batch, int flash_attn,
                                      int type_k, int type_v, bool embeddings, int pooling_type,
                                      int attention_type, float rope_freq_base,
                                      float rope_freq_scale, bool offload_kqv, bool kv_unified,
                                      bool swa_full, bool no_perf) {
    auto check_range = [](const char *name, int64_t v, int64_t lo, int64_t hi) {
        if (v < lo || v > hi) {
            raise("OptionError", std::string("`") + name + "` must be in [" + n_str(lo) + ", " +
                                     n_str(hi) + "], got " + n_str(v));
        }
    };
    check_range("n_batch", n_batch, 1, INT32_MAX);
    check_range("n_ubatch", n_ubatch, 1, INT32_MAX);
    check_range("n_seq_max", n_seq_max, 1, static_cast<int64_t>(llama_max_parallel_sequences()));
    check_range("n_threads", n_threads, 1, 512);
    check_range("n_threads_batch", n_threads_batch, 1, 512);
    check_range("flash_attn", flash_attn, -1, 1);
    check_range("type_k", type_k, 0, GGML_TYPE_COUNT - 1);
    check_range("type_v", type_v, 0, GGML_TYPE_COUNT - 1);
    check_range("pooling_type", pooling_type, -1, 4);
    check_range("attention_type", attention_type, -1, 1);

    llama_context_params p = llama_context_default_params();
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_ubatch = std::min(n_ubatch, n_batch);
    p.n_seq_max = n_seq_max;
    p.n_threads = n_threads;
    p.n_threads_batch = n_threads_batch;
    p.flash_attn_type = static_cast<llama_flash_attn_type>(flash_attn);
    p.type_k = static_cast<ggml_type>(type_k);
    p.type_v = static_cast<ggml_type>(type_v);
    p.embeddings = embeddings;
    p.pooling_type = static_cast<enum llama_pooling_type>(pooling_type);
    p.attention_type = static_cast<llama_attention_type>(attention_type);
    p.rope_freq_base = rope_freq_base;
    p.rope_freq_scale = rope_freq_scale;
    p.offload_kqv = offload_kqv;
    p.kv_unified = kv_unified;
    p.swa_full = swa_full;
    p.no_perf = no_perf;
    return std::make_shared<Context>(std::move(model), p);
}

}  // namespace

// ---- Batch --------------------------------------------------------------------------
Batch::Batch(int32_t capacity, int32_t n_seq_max)
    : batch_{}, capacity_(capacity), n_seq_max_(n_seq_max) {
    if (capacity < 1) raise("OptionError", "`capacity` must be >= 1, got " + n_str(capacity));
    if (n_seq_max < 1) raise("OptionError", "`n_seq_max` must be >= 1, got " + n_str(n_seq_max));
    batch_ = llama_batch_init(capacity, 0, n_seq_max);
    batch_.n_tokens = 0;
}

Batch::~Batch() { llama_batch_free(batch_); }

void Batch::add(llama_token token, llama_pos pos, const std::vector<llama_seq_id> &seq_ids,
                bool logits) {
    if (batch_.n_tokens >= capacity_) {
        raise("InvalidBatchError", "batch is full (capacity " + n_str(capacity_) + " tokens)");
    }
    if (seq_ids.empty() || seq_ids.size() > static_cast<size_t>(n_seq_max_)) {
        raise("InvalidBatchError", "a token needs 1 to " + n_str(n_seq_max_) +
                                       " sequence ids, got " + n_str(seq_ids.size()));
    }
    const int32_t i = batch_.n_tokens;
    batch_.token[i] = token;
    batch_.pos[i] = pos;
    batch_.n_seq_id[i] = static_cast<int32_t>(seq_ids.size());
    for (size_t k = 0; k < seq_ids.size(); ++k) batch_.seq_id[i][k] = seq_ids[k];
    batch_.logits[i] = logits ? 1 : 0;
    batch_.n_tokens++;
}

// ---- Context ------------------------------------------------------------------------
Context::Context(std::shared_ptr<Model> model, const llama_context_params &params)
    : model_(std::move(model)) {
    llama_context_params p = params;
    p.abort_callback = &Context::abort_callback;
    p.abort_callback_data = this;
    llama_context *raw = nullptr;
    std::string reason;
    {
        py::gil_scoped_release release;
        LogCapture capture;
        raw = llama_init_from_model(model_->get(), p);
        if (raw == nullptr) reason = capture.reason();
    }
    if (raw == nullptr) {
        if (reason.empty()) reason = "llama.cpp gave no reason";
        raise("ContextError", "cannot create a context (n_ctx " + n_str(p.n_ctx) + ", n_batch " +
                                  n_str(p.n_batch) + ", n_seq_max " + n_str(p.n_seq_max) +
                                  "): " + reason);
    }
    ctx_.reset(raw);
    kv_unified_ = p.kv_unified;
}

void Context::check_seq(llama_seq_id seq_id, bool any) const {
    const auto n_seq_max = static_cast<llama_seq_id>(llama_n_seq_max(ctx_.get()));
    if ((any && seq_id == -1) || (seq_id >= 0 && seq_id < n_seq_max)) return;
    // llama.cpp asserts (aborts the process) on a sequence id outside its range.
    raise("OptionError", "`seq_id` must be in [" + std::string(any ? "-1" : "0") + ", " +
                             n_str(n_seq_max - 1) + "] for this context, got " + n_str(seq_id));
}

bool Context::abort_callback(void *data) {
    return static_cast<Context *>(data)->abort_requested_.load(std::memory_order_relaxed);
}

void Context::check_decode_result(int32_t rc, int32_t n_tokens, const char *what) {
    if (rc == 0) return;
    switch (rc) {
        case 1:
            raise("ContextFullError",
                  std::string(what) + ": no KV-cache slot for a batch of " + n_str(n_tokens) +
                      " tokens (context size " + n_str(llama_n_ctx(ctx_.get())) +
                      "); use a larger num_ctx or remove tokens from the sequence");
        case 2:
            clear_abort();
            raise("AbortedError", "aborted");
        case -1:
            raise("InvalidBatchError",
                  std::string(what) + " rejected the batch (bad token id, position or sequence "
                                      "id)");
        default:
            raise("DecodeError", std::string(what) + " failed with code " + n_str(rc));
    }
}

void Context::run_batch(const llama_batch &batch, bool encoder) {
    const char *what = encoder ? "llama_encode" : "llama_decode";
    if (batch.n_tokens == 0) raise("InvalidBatchError", std::string(what) + ": empty batch");
    int32_t rc;
    std::string reason;
    {
        LogCapture capture(/*defer=*/true);
        rc = encoder ? llama_encode(ctx_.get(), batch) : llama_decode(ctx_.get(), batch);
        if (rc != 0) reason = capture.reason();
        // An abort that was asked for is not an error: its log lines go out as debug.
        capture.flush(rc == 2 ? GGML_LOG_LEVEL_DEBUG : GGML_LOG_LEVEL_NONE);
    }
    try {
        check_decode_result(rc, batch.n_tokens, what);
    } catch (const NativeError &e) {
        if (rc == 2 || reason.empty()) throw;  // an abort says "aborted", no ggml internals
        raise(e.py_class(), std::string(e.what()) + ": " + reason);
    }
}

void Context::decode(const llama_batch &batch) { run_batch(batch, /*encoder=*/false); }

void Context::encode(const llama_batch &batch) {
    // An encoder (T5) or a context without KV memory (BERT-like embedding models) can
    // encode; llama.cpp crashes encoding on a decoder-only model's KV-cache context.
    if (!llama_model_has_encoder(model_->get()) && memory() != nullptr) {
        raise("DecodeError", "llama_encode: this model has no encoder; use decode()");
    }
    run_batch(batch, /*encoder=*/true);
}

void Context::decode_sequence(const std::vector<llama_token> &tokens, llama_pos pos0,
                              llama_seq_id seq_id, bool logits_last) {
    if (tokens.empty()) raise("InvalidBatchError", "cannot decode an empty token list");
    for (llama_token t : tokens) model_->check_token(t, "token id");
    const auto n_batch = static_cast<int32_t>(llama_n_batch(ctx_.get()));
    if (!chunk_batch_ || chunk_batch_->capacity() < n_batch) {
        chunk_batch_ = std::make_unique<Batch>(n_batch, 1);
    }
    const auto n = static_cast<int32_t>(tokens.size());
    const std::vector<llama_seq_id> seq{seq_id};
    for (int32_t start = 0; start < n; start += n_batch) {
        if (abort_requested()) {
            clear_abort();
            raise("AbortedError", "aborted");
        }
        const int32_t end = std::min(n, start + n_batch);
        chunk_batch_->clear();
        for (int32_t i = start; i < end; ++i) {
            chunk_batch_->add(tokens[static_cast<size_t>(i)], pos0 + i, seq,
                              logits_last && i == n - 1);
        }
        decode(chunk_batch_->get());
    }
}

void register_context(py::module_ &m) {
    m.def("context_default_params", &default_context_params,
          "llama.cpp's default context parameters (the defaults of ContextParams).");
    m.def(
        "ggml_types",
        []() {
            py::dict out;
            for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
                const char *name = ggml_type_name(static_cast<ggml_type>(t));
                if (name != nullptr && std::strcmp(name, "NONE") != 0 && name[0] != '\0') {
                    out[py::str(name)] = t;
                }
            }
            return out;
        },
        "ggml tensor type names and ids (for type_k/type_v).");

    py::class_<Batch, std::shared_ptr<Batch>>(m, "Batch", R"doc(
Tokens for one decode call: each with a position, one or more sequence ids and whether its
logits/embeddings are wanted.)doc")
        .def(py::init<int32_t, int32_t>(), py::arg("capacity"), py::arg("n_seq_max") = 1)
        .def("add", &Batch::add, py::arg("token"), py::arg("pos"), py::arg("seq_ids"),
             py::arg("logits") = false)
        .def(
            "add_sequence",
            [](Batch &b, const std::vector<llama_token> &tokens, llama_pos pos0,
               llama_seq_id seq_id, bool logits_last, bool logits_all) {
                const std::vector<llama_seq_id> seq{seq_id};
                for (size_t i = 0; i < tokens.size(); ++i) {
                    b.add(tokens[i], pos0 + static_cast<llama_pos>(i), seq,
                          logits_all || (logits_last && i + 1 == tokens.size()));
                }
            },
            py::arg("tokens"), py::arg("pos0"), py::arg("seq_id") = 0,
            py::arg("logits_last") = true, py::arg("logits_all") = false,
            "Add a run of one sequence's tokens; outputs for the last one, or for all.")
        .def("clear", &Batch::clear)
        .def("__len__", &Batch::size)
        .def_property_readonly("capacity", &Batch::capacity);

    py::class_<Context, std::shared_ptr<Context>>(m, "Context", R"doc(
A llama.cpp inference context: KV cache, compute buffers and outputs for up to n_seq_max
sequences. Not thread-safe: use it from one thread at a time, except abort(), which may be
called from any thread.)doc")
        .def(py::init(&make_context), py::arg("model"), py::kw_only(), py::arg("n_ctx"),
             py::arg("n_batch"), py::arg("n_ubatch"), py::arg("n_seq_max"),
             py::arg("n_threads"), py::arg("n_threads_batch"), py::arg("flash_attn"),
             py::arg("type_k"), py::arg("type_v"), py::arg("embeddings"),
             py::arg("pooling_type"), py::arg("attention_type"), py::arg("rope_freq_base"),
             py::arg("rope_freq_scale"), py::arg("offload_kqv"), py::arg("kv_unified"),
             py::arg("swa_full"), py::arg("no_perf"))
        .def_property_readonly("model", &Context::model)
        .def_property_readonly("n_ctx", [](const Context &c) { return llama_n_ctx(c.get()); })
        .def_property_readonly("n_ctx_seq", &Context::n_ctx_seq)
        .def_property_readonly("n_batch", [](const Context &c) { return llama_n_batch(c.get()); })
        .def_property_readonly("n_ubatch",
                               [](const Context &c) { return llama_n_ubatch(c.get()); })
        .def_property_readonly("n_seq_max",
                               [](const Context &c) { return llama_n_seq_max(c.get()); })
        .def_property_readonly("n_threads",
                               [](const Context &c) { return llama_n_threads(c.get()); })
        .def_property_readonly("n_threads_batch",
                               [](const Context &c) { return llama_n_threads_batch(c.get()); })
        .def_property_readonly("pooling_type", [](const Context &c) {
            return static_cast<int>(llama_pooling_type(c.get()));
        })
        .def(
            "set_n_threads",
            [](Context &c, int32_t n, int32_t n_batch) {
                if (n < 1 || n_batch < 1) raise("OptionError", "thread counts must be >= 1");
                llama_set_n_threads(c.get(), n, n_batch);
            },
            py::arg("n_threads"), py::arg("n_threads_batch"))
        .def(
            "set_embeddings", [](Context &c, bool on) { llama_set_embeddings(c.get(), on); },
            py::arg("enabled"))
        .def(
            "set_causal_attn", [](Context &c, bool on) { llama_set_causal_attn(c.get(), on); },
            py::arg("causal"))
        .def(
            "decode",
            [](Context &c, const Batch &b) {
                py::gil_scoped_release release;
                c.decode(b.get());
            },
            py::arg("batch"),
            "llama_decode with the GIL released. ContextFullError (1), AbortedError (2), "
            "InvalidBatchError (-1), DecodeError otherwise.")
        .def(
            "encode",
            [](Context &c, const Batch &b) {
                py::gil_scoped_release release;
                c.encode(b.get());
            },
            py::arg("batch"))
        .def(
            "decode_tokens",
            [](Context &c, const std::vector<llama_token> &tokens, llama_pos pos0,
               llama_seq_id seq_id, bool logits_last) {
                py::gil_scoped_release release;
                c.decode_sequence(tokens, pos0, seq_id, logits_last);
            },
            py::arg("tokens"), py::arg("pos0"),
             py::arg("seq_id") = 0, py::arg("logits_last") = true,
             "Decode a run of tokens of one sequence in n_batch chunks, GIL released.")
        .def(
            "logits",
            [](py::object self, int32_t i) {
                auto &c = self.cast<Context &>();
                const float *data = llama_get_logits_ith(c.get(), i);
                if (data == nullptr) {
                    raise("DecodeError", "no logits for output " + n_str(i) +
                                             " (request logits for that batch position)");
                }
                return float_view(data, c.model()->n_vocab(), self);
            },
            py::arg("i") = -1,
            "Logits of output i as a numpy view (no copy), valid until the next decode.")
        .def(
            "embeddings",
            [](py::object self, int32_t i) {
                auto &c = self.cast<Context &>();
                const float *data = llama_get_embeddings_ith(c.get(), i);
                if (data == nullptr) raise("DecodeError", "no embeddings for output " + n_str(i));
                return float_view(data, llama_model_n_embd_out(c.model()->get()), self);
            },
            py::arg("i") = -1)
        .def(
            "sequence_embeddings",
            [](py::object self, llama_seq_id seq_id) {
                auto &c = self.cast<Context &>();
                const float *data = llama_get_embeddings_seq(c.get(), seq_id);
                if (data == nullptr) {
                    raise("DecodeError", "no pooled embeddings for sequence " + n_str(seq_id) +
                                             " (is the context's pooling type none?)");
                }
                const bool rank = llama_pooling_type(c.get()) == LLAMA_POOLING_TYPE_RANK;
                const int64_t n = rank ? llama_model_n_cls_out(c.model()->get())
                                       : llama_model_n_embd_out(c.model()->get());
                return float_view(data, n, self);
            },
            py::arg("seq_id"))
        // memory (KV cache) operations
        .def(
            "memory_clear", [](Context &c, bool data) { llama_memory_clear(c.memory(), data); },
            py::arg("data") = true)
        .def(
            "seq_rm",
            [](Context &c, llama_seq_id s, llama_pos p0, llama_pos p1) {
                c.check_seq(s, /*any=*/true);
                return llama_memory_seq_rm(c.memory(), s, p0, p1);
            },
            py::arg("seq_id"), py::arg("p0") = -1, py::arg("p1") = -1,
            "Remove positions [p0, p1) of a sequence; False if a partial removal is impossible.")
        .def(
            "seq_cp",
            [](Context &c, llama_seq_id src, llama_seq_id dst, llama_pos p0, llama_pos p1) {
                c.check_seq(src, false);
                c.check_seq(dst, false);
                // Separate KV streams (kv_unified false) copy whole sequences only; llama.cpp
                // aborts the process on a partial range.
                if (!c.kv_unified() && src != dst && (p0 > 0 || p1 > 0)) {
                    raise("OptionError",
                          "`seq_cp` between sequences of separate KV streams copies whole "
                          "sequences: use p0=-1, p1=-1, then seq_rm the tail");
                }
                llama_memory_seq_cp(c.memory(), src, dst, p0, p1);
            },
            py::arg("src"), py::arg("dst"), py::arg("p0") = -1, py::arg("p1") = -1,
            "Copy positions [p0, p1) of sequence src to dst (shared cells in a unified KV "
            "cache; a whole-sequence copy between separate streams).")
        .def(
            "seq_keep",
            [](Context &c, llama_seq_id s) {
                c.check_seq(s, false);
                llama_memory_seq_keep(c.memory(), s);
            },
            py::arg("seq_id"))
        .def(
            "seq_add",
            [](Context &c, llama_seq_id s, llama_pos p0, llama_pos p1, llama_pos delta) {
                c.check_seq(s, false);
                if (!llama_memory_can_shift(c.memory())) {
                    raise("DecodeError", "this model's memory cannot shift positions");
                }
                llama_memory_seq_add(c.memory(), s, p0, p1, delta);
            },
            py::arg("seq_id"), py::arg("p0"), py::arg("p1"), py::arg("delta"))
        .def(
            "seq_pos_min",
            [](Context &c, llama_seq_id s) {
                c.check_seq(s, false);
                return llama_memory_seq_pos_min(c.memory(), s);
            },
            py::arg("seq_id"))
        .def(
            "seq_pos_max",
            [](Context &c, llama_seq_id s) {
                c.check_seq(s, false);
                return llama_memory_seq_pos_max(c.memory(), s);
            },
            py::arg("seq_id"))
        .def_property_readonly(
            "can_shift", [](Context &c) { return llama_memory_can_shift(c.memory()); })
        // state
        .def(
            "state_get",
            [](Context &c) {
                std::string buf(llama_state_get_size(c.get()), '\0');
                size_t n;
                {
                    py::gil_scoped_release release;
                    n = llama_state_get_data(c.get(), reinterpret_cast<uint8_t *>(buf.data()),
                                             buf.size());
                }
                if (n == 0) raise("StateError", "llama_state_get_data copied nothing");
                buf.resize(n);
                return py::bytes(buf);
            },
            "The whole context state (memory, logits, embeddings) as bytes.")
        .def(
            "state_set",
            [](Context &c, const py::bytes &data) {
                std::string_view view = data;
                size_t n;
                {
                    py::gil_scoped_release release;
                    n = llama_state_set_data(c.get(), reinterpret_cast<const uint8_t *>(view.data()),
                                             view.size());
                }
                if (n == 0) {
                    raise("StateError", "cannot restore a state of " + n_str(view.size()) +
                                            " bytes (made by another model or context shape?)");
                }
            },
            py::arg("data"))
        .def(
            "state_save_file",
            [](Context &c, const std::string &path, const std::vector<llama_token> &tokens) {
                bool ok;
                {
                    py::gil_scoped_release release;
                    ok = llama_state_save_file(c.get(), path.c_str(), tokens.data(), tokens.size());
                }
                if (!ok) raise("StateError", "cannot save the context state to '" + path + "'");
            },
            py::arg("path"), py::arg("tokens"))
        .def(
            "state_load_file",
            [](Context &c, const std::string &path) {
                std::vector<llama_token> tokens(llama_n_ctx(c.get()));
                size_t n = 0;
                bool ok;
                std::string reason;
                {
                    py::gil_scoped_release release;
                    LogCapture capture;
                    ok = llama_state_load_file(c.get(), path.c_str(), tokens.data(), tokens.size(),
                                               &n);
                    if (!ok) reason = capture.reason();
                }
                if (!ok) {
                    raise("StateError", "cannot load a context state from '" + path + "'" +
                                            (reason.empty() ? "" : ": " + reason));
                }
                tokens.resize(n);
                return tokens;
            },
            py::arg("path"), "Restore a state file; returns the tokens saved with it.")
        .def(
            "seq_state_get",
            [](Context &c, llama_seq_id s) {
                std::string buf(llama_state_seq_get_size(c.get(), s), '\0');
                const size_t n = llama_state_seq_get_data(
                    c.get(), reinterpret_cast<uint8_t *>(buf.data()), buf.size(), s);
                if (n == 0) {
                    raise("StateError", "llama_state_seq_get_data copied nothing for sequence " +
                                            n_str(s));
                }
                buf.resize(n);
                return py::bytes(buf);
            },
            py::arg("seq_id"))
        .def(
            "seq_state_set",
            [](Context &c, const py::bytes &data, llama_seq_id s) {
                std::string_view view = data;
                const size_t n = llama_state_seq_set_data(
                    c.get(), reinterpret_cast<const uint8_t *>(view.data()), view.size(), s);
                if (n == 0) raise("StateError", "cannot restore sequence " + n_str(s) + " state");
            },
            py::arg("data"), py::arg("seq_id"))
        .def(
            "set_adapters",
            [](Context &c, const std::vector<std::shared_ptr<Adapter>> &adapters,
               std::vector<float> scales) {
                if (scales.empty()) scales.assign(adapters.size(), 1.0f);
                if (scales.size() != adapters.size()) {
                    raise("OptionError", "`scales` needs one value per adapter (" +
                                             n_str(adapters.size()) + "), got " +
                                             n_str(scales.size()));
                }
                std::vector<llama_adapter_lora *> raw;
                for (const auto &a : adapters) {
                    if (a->model() != c.model()) {
                        raise("OptionError", "adapter '" + a->path() +
                                                 "' was loaded for a different model");
                    }
                    raw.push_back(a->get());
                }
                if (llama_set_adapters_lora(c.get(), raw.data(), raw.size(), scales.data()) != 0) {
                    raise("ContextError", "llama.cpp refused the LoRA adapters");
                }
            },
            py::arg("adapters"), py::arg("scales") = std::vector<float>{},
            "Use these LoRA adapters (scale 1.0 each unless given); [] removes them.")
        // abort
        .def("abort", &Context::abort,
             "Ask a running decode or generation to stop (thread-safe); it raises AbortedError.")
        .def("clear_abort", &Context::clear_abort)
        .def_property_readonly("abort_requested", &Context::abort_requested)
        .def("perf", [](Context &c) {
            const llama_perf_context_data d = llama_perf_context(c.get());
            py::dict out;
            out["t_load_ms"] = d.t_load_ms;
            out["t_p_eval_ms"] = d.t_p_eval_ms;
            out["t_eval_ms"] = d.t_eval_ms;
            out["n_p_eval"] = d.n_p_eval;
            out["n_eval"] = d.n_eval;
            out["n_reused"] = d.n_reused;
            return out;
        })
        .def("perf_reset", [](Context &c) { llama_perf_context_reset(c.get()); });
}

}  // namespace llamahost
