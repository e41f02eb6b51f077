// Shared declarations of the llamahost._native extension.
//
// One C++ class per llama.h handle, owning it through llama-cpp.h's smart pointers.
// Every error is thrown as NativeError carrying the name of the Python exception class
// in llamahost.errors that it becomes (see errors.cpp).
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ggml.h"
#include "llama-cpp.h"
#include "llama.h"

namespace py = pybind11;

namespace llamahost {

// An error destined to become an instance of llamahost.errors.<py_class>.
class NativeError : public std::runtime_error {
public:
    NativeError(const char *py_class, const std::string &message)
        : std::runtime_error(message), py_class_(py_class) {}
    const char *py_class() const { return py_class_; }

private:
    const char *py_class_;
};

[[noreturn]] inline void raise(const char *py_class, const std::string &message) {
    throw NativeError(py_class, message);
}

void register_errors(py::module_ &m);

// Bytes from llama.cpp as a Python str; invalid UTF-8 becomes U+FFFD, never an error.
inline py::str utf8_str(const char *data, size_t size) {
    PyObject *obj = PyUnicode_DecodeUTF8(data, static_cast<Py_ssize_t>(size), "replace");
    if (obj == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::str>(obj);
}
inline py::str utf8_str(const std::string &s) { return utf8_str(s.data(), s.size()); }

// ---- backends shipped as loadable libraries (backends.cpp) --------------------------
void load_bundled_backends();
void register_backends(py::module_ &m);

// ---- logging (logging.cpp) ---------------------------------------------------------
void register_logging(py::module_ &m);

// Collects llama.cpp's log lines (warnings and errors) emitted on this thread while
// alive, so a failed call can say why in llama.cpp's own words. A deferring capture holds
// those lines back until flush() (or its end), so that the caller can decide their level:
// an abort that was asked for is not an error.
class LogCapture {
public:
    explicit LogCapture(bool defer = false);
    ~LogCapture();
    LogCapture(const LogCapture &) = delete;
    LogCapture &operator=(const LogCapture &) = delete;

    // The captured error lines (or warnings when there were no errors), joined by "; ".
    std::string reason() const;
    void add(ggml_log_level level, const std::string &line);
    bool defers() const { return defer_; }
    // Emit the held-back lines, each at its own level or all at `as` (GGML_LOG_LEVEL_NONE:
    // their own).
    void flush(ggml_log_level as = GGML_LOG_LEVEL_NONE);

private:
    LogCapture *previous_;
    bool defer_;
    bool flushed_ = false;
    std::vector<std::pair<ggml_log_level, std::string>> lines_;
};

// ---- model (model.cpp) -------------------------------------------------------------
class Model {
public:
    Model(llama_model_ptr model, std::vector<std::string> paths);

    llama_model *get() const { return model_.get(); }
    const llama_vocab *vocab() const { return vocab_; }
    const std::vector<std::string> &paths() const { return paths_; }
    int32_t n_vocab() const { return n_vocab_; }

    void check_token(llama_token token, const char *what) const;
    std::string token_to_piece(llama_token token, bool special) const;

private:
    llama_model_ptr model_;
    const llama_vocab *vocab_;
    std::vector<std::string> paths_;
    int32_t n_vocab_;
};
// A LoRA adapter loaded for a Model (llama_adapter_lora); keeps the model alive.
class Adapter {
public:
    Adapter(std::shared_ptr<Model> model, llama_adapter_lora_ptr adapter, std::string path)
        : model_(std::move(model)), adapter_(std::move(adapter)), path_(std::move(path)) {}
    llama_adapter_lora *get() const { return adapter_.get(); }
    const std::shared_ptr<Model> &model() const { return model_; }
    const std::string &path() const { return path_; }

private:
    std::shared_ptr<Model> model_;  // declared first: destroyed after the adapter
    llama_adapter_lora_ptr adapter_;
    std::string path_;
};

void register_model(py::module_ &m);

// ---- context (context.cpp) ---------------------------------------------------------
class Batch {
public:
    Batch(int32_t capacity, int32_t n_seq_max);
    ~Batch();
    Batch(const Batch &) = delete;
    Batch &operator=(const Batch &) = delete;

    void clear() { batch_.n_tokens = 0; }
    void add(llama_token token, llama_pos pos, const std::vector<llama_seq_id> &seq_ids, bool logits);
    int32_t size() const { return batch_.n_tokens; }
    int32_t capacity() const { return capacity_; }
    const llama_batch &get() const { return batch_; }

private:
    llama_batch batch_;
    int32_t capacity_;
    int32_t n_seq_max_;
};

class Context {
public:
    Context(std::shared_ptr<Model> model, const llama_context_params &params);

    llama_context *get() const { return ctx_.get(); }
    const std::shared_ptr<Model> &model() const { return model_; }
    llama_memory_t memory() const { return llama_get_memory(ctx_.get()); }
    uint32_t n_ctx_seq() const { return llama_n_ctx_seq(ctx_.get()); }

    // llama_decode; maps its return code to a typed error. These methods never touch the
    // GIL: their Python bindings release it around them.
    void decode(const llama_batch &batch);
    void encode(const llama_batch &batch);

    // Decode `tokens` of one sequence from position `pos0` in chunks of n_batch,
    // requesting logits for the last token only.
    void decode_sequence(const std::vector<llama_token> &tokens, llama_pos pos0,
                         llama_seq_id seq_id, bool logits_last);

    // Raise OptionError for a sequence id outside [0, n_seq_max) (-1 allowed when `any`).
    void check_seq(llama_seq_id seq_id, bool any) const;
    bool kv_unified() const { return kv_unified_; }

    void abort() { abort_requested_.store(true); }
    void clear_abort() { abort_requested_.store(false); }
    bool abort_requested() const { return abort_requested_.load(); }

private:
    static bool abort_callback(void *data);
    void check_decode_result(int32_t rc, int32_t n_tokens, const char *what);
    void run_batch(const llama_batch &batch, bool encoder);

    std::shared_ptr<Model> model_;  // keeps the weights alive as long as the context
    llama_context_ptr ctx_;
    std::atomic<bool> abort_requested_{false};
    bool kv_unified_ = false;
    std::unique_ptr<Batch> chunk_batch_;
};
void register_context(py::module_ &m);

// ---- sampler (sampler.cpp) ---------------------------------------------------------
class Sampler {
public:
    explicit Sampler(std::shared_ptr<Model> model);

    void add(llama_sampler *smpl, const char *what, bool takes_history = false);
    void set_grammar(llama_sampler *grammar);
    // Sample from output `idx` of the last decode and accept the token.
    llama_token sample(Context &ctx, int32_t idx);
    void accept(llama_token token);
    void accept_history(const std::vector<llama_token> &tokens);
    void reset();

    const std::shared_ptr<Model> &model() const { return model_; }
    llama_sampler *chain() const { return chain_.get(); }
    bool has_grammar() const { return grammar_ != nullptr; }
    std::vector<std::string> names() const;

private:
    void fill_candidates(const float *logits);

    std::shared_ptr<Model> model_;
    llama_sampler_ptr chain_;
    llama_sampler_ptr grammar_;
    std::vector<int32_t> history_samplers_;  // chain indices of penalties/DRY
    std::vector<llama_token_data> candidates_;
};
void register_sampler(py::module_ &m);

// ---- generation loop (generator.cpp), GGUF files, system ---------------------------
void register_generator(py::module_ &m);
void register_gguf(py::module_ &m);
void register_system(py::module_ &m);

}  // namespace llamahost
