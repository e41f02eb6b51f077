// Model (llama_model) and Vocab (its llama_vocab): loading, metadata, tokenization.
#include "common.hpp"

#include <climits>
#include <optional>

namespace llamahost {
namespace {

struct LoadProgress {
    py::object callback;
    bool cancelled = false;
    std::unique_ptr<py::error_already_set> error;
};

bool load_progress_trampoline(float progress, void *data) {
    auto *state = static_cast<LoadProgress *>(data);
    py::gil_scoped_acquire gil;
    try {
        py::object keep_going = state->callback(progress);
        if (!keep_going.is_none() && !keep_going.cast<bool>()) {
            state->cancelled = true;
            return false;
        }
        return true;
    } catch (py::error_already_set &e) {
        state->error = std::make_unique<py::error_already_set>(std::move(e));
        return false;
    }
}

std::string join_paths(const std::vector<std::string> &paths) {
    std::string out;
    for (const auto &p : paths) {
        if (!out.empty()) out += "', '";
        out += p;
    }
    return "'" + out + "'";
}

llama_load_mode load_mode_for(std::optional<bool> use_mmap, bool use_mlock,
                              llama_load_mode default_mode) {
    if (!use_mmap.has_value() && !use_mlock) return default_mode;
    bool mmap = use_mmap.value_or(llama_supports_mmap());
    if (mmap) return use_mlock ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MMAP;
    return use_mlock ? LLAMA_LOAD_MODE_MLOCK : LLAMA_LOAD_MODE_NONE;
}

std::shared_ptr<Model> load_model(std::vector<std::string> paths, int32_t n_gpu_layers,
                                  int32_t main_gpu, int split_mode,
                                  std::vector<float> tensor_split, std::optional<bool> use_mmap,
                                  bool use_mlock, bool vocab_only, bool check_tensors,
                                  bool use_extra_bufts, py::object progress_callback) {
    if (paths.empty()) raise("ModelLoadError", "no model file given");
    if (split_mode < LLAMA_SPLIT_MODE_NONE || split_mode > LLAMA_SPLIT_MODE_TENSOR) {
        raise("OptionError", "`split_mode` must be in [0, 3] (none, layer, row, tensor), got " +
                                 std::to_string(split_mode));
    }
    const size_t max_devices = llama_max_devices();
    if (tensor_split.size() > max_devices) {
        raise("OptionError", "`tensor_split` has " + std::to_string(tensor_split.size()) +
                                 " entries; this build supports at most " +
                                 std::to_string(max_devices) + " devices");
    }
    tensor_split.resize(max_devices, 0.0f);

    llama_model_params params = llama_model_default_params();
    params.n_gpu_layers = n_gpu_layers;
    params.main_gpu = main_gpu;
    params.split_mode = static_cast<llama_split_mode>(split_mode);
    params.tensor_split = tensor_split.data();
    params.load_mode = load_mode_for(use_mmap, use_mlock, params.load_mode);
    params.vocab_only = vocab_only;
    params.check_tensors = check_tensors;
    params.use_extra_bufts = use_extra_bufts;

    LoadProgress progress;
    if (!progress_callback.is_none()) {
        progress.callback = progress_callback;
        params.progress_callback = load_progress_trampoline;
        params.progress_callback_user_data = &progress;
    }

    llama_model *raw = nullptr;
    std::string reason;
    {
        py::gil_scoped_release release;
        LogCapture capture;
        if (paths.size() == 1) {
            raw = llama_model_load_from_file(paths[0].c_str(), params);
        } else {
            std::vector<const char *> c_paths;
            for (const auto &p : paths) c_paths.push_back(p.c_str());
            raw = llama_model_load_from_splits(c_paths.data(), c_paths.size(), params);
        }
        if (raw == nullptr) reason = capture.reason();
    }
    llama_model_ptr model(raw);
    if (progress.error) {
        py::error_already_set err = std::move(*progress.error);
        progress.error.reset();
        throw err;
    }
    if (!model) {
        if (progress.cancelled) {
            raise("ModelLoadError", "loading " + join_paths(paths) +
                                        " was cancelled by the progress callback");
        }
        if (reason.empty()) reason = "llama.cpp gave no reason (see the llamahost.llama_cpp log)";
        raise("ModelLoadError", "cannot load model " + join_paths(paths) + ": " + reason);
    }
    return std::make_shared<Model>(std::move(model), std::move(paths));
}

// Reads a string from a llama.cpp getter that works like snprintf (`fn(buf, size)` returns
// the full length, or < 0 when there is no value), growing the buffer once if needed.
template <typename Fn>
std::optional<std::string> read_c_string(Fn fn) {
    std::vector<char> buf(256);
    int32_t n = fn(buf.data(), buf.size());
    if (n < 0) return std::nullopt;
    if (static_cast<size_t>(n) >= buf.size()) {
        buf.resize(static_cast<size_t>(n) + 1);
        n = fn(buf.data(), buf.size());
    }
    return std::string(buf.data(), static_cast<size_t>(n));
}

std::optional<py::str> as_py(const std::optional<std::string> &s) {
    if (!s) return std::nullopt;
    return utf8_str(*s);
}

py::dict model_metadata(const Model &self) {
    py::dict out;
    const int32_t n = llama_model_meta_count(self.get());
    for (int32_t i = 0; i < n; ++i) {
        auto key = read_c_string([&](char *b, size_t n) {
            return llama_model_meta_key_by_index(self.get(), i, b, n);
        });
        auto val = read_c_string([&](char *b, size_t n) {
            return llama_model_meta_val_str_by_index(self.get(), i, b, n);
        });
        if (key) out[utf8_str(*key)] = utf8_str(val.value_or(""));
    }
    return out;
}

// ---- Vocab: a view of the model's vocabulary that keeps the model alive -------------
struct Vocab {
    std::shared_ptr<Model> model;
    const llama_vocab *v() const { return model->vocab(); }
};

std::vector<llama_token> tokenize(const Vocab &self, const std::string &text, bool add_special,
                                  bool parse_special) {
    if (text.size() > static_cast<size_t>(INT32_MAX) / 2) {
        raise("TokenizeError", "text of " + std::to_string(text.size()) +
                                   " bytes is too long to tokenize (limit 1 GiB)");
    }
    const int32_t text_len = static_cast<int32_t>(text.size());
    std::vector<llama_token> tokens(static_cast<size_t>(text_len) + 4);
    int32_t n;
    {
        std::optional<py::gil_scoped_release> release;
        if (text.size() > 4096) release.emplace();
        n = llama_tokenize(self.v(), text.data(), text_len, tokens.data(),
                           static_cast<int32_t>(tokens.size()), add_special, parse_special);
        if (n < 0 && n != INT32_MIN) {
            tokens.resize(static_cast<size_t>(-n));
            n = llama_tokenize(self.v(), text.data(), text_len, tokens.data(),
                               static_cast<int32_t>(tokens.size()), add_special, parse_special);
        }
    }
    if (n < 0) raise("TokenizeError", "llama_tokenize failed for a text of " +
                                          std::to_string(text.size()) + " bytes");
    tokens.resize(static_cast<size_t>(n));
    return tokens;
}

py::str detokenize(const Vocab &self, const std::vector<llama_token> &tokens,
                   bool remove_special, bool unparse_special) {
    for (llama_token t : tokens) self.model->check_token(t, "token id");
    std::vector<char> text(tokens.size() * 8 + 16);
    const auto n_tokens = static_cast<int32_t>(tokens.size());
    int32_t n = llama_detokenize(self.v(), tokens.data(), n_tokens, text.data(),
                                 static_cast<int32_t>(text.size()), remove_special,
                                 unparse_special);
    if (n < 0) {
        text.resize(static_cast<size_t>(-n));
        n = llama_detokenize(self.v(), tokens.data(), n_tokens, text.data(),
                             static_cast<int32_t>(text.size()), remove_special, unparse_special);
    }
    if (n < 0) raise("TokenizeError", "llama_detokenize failed");
    return utf8_str(text.data(), static_cast<size_t>(n));
}

std::shared_ptr<Adapter> load_adapter(std::shared_ptr<Model> model, const std::string &path) {
    llama_adapter_lora *raw = nullptr;
    std::string reason;
    {
        py::gil_scoped_release release;
        LogCapture capture;
        raw = llama_adapter_lora_init(model->get(), path.c_str());
        if (raw == nullptr) reason = capture.reason();
    }
    if (raw == nullptr) {
        if (reason.empty()) reason = "llama.cpp gave no reason";
        raise("ModelLoadError", "cannot load LoRA adapter '" + path + "': " + reason);
    }
    return std::make_shared<Adapter>(std::move(model), llama_adapter_lora_ptr(raw), path);
}

}  // namespace

Model::Model(llama_model_ptr model, std::vector<std::string> paths)
    : model_(std::move(model)),
      vocab_(llama_model_get_vocab(model_.get())),
      paths_(std::move(paths)),
      n_vocab_(llama_vocab_n_tokens(vocab_)) {}

void Model::check_token(llama_token token, const char *what) const {
    if (token < 0 || token >= n_vocab_) {
        raise("TokenizeError", std::string(what) + " " + std::to_string(token) +
                                   " is out of range [0, " + std::to_string(n_vocab_) + ")");
    }
}

std::string Model::token_to_piece(llama_token token, bool special) const {
    char small[64];
    int32_t n = llama_token_to_piece(vocab_, token, small, sizeof(small), 0, special);
    if (n >= 0) return std::string(small, static_cast<size_t>(n));
    std::string big(static_cast<size_t>(-n), '\0');
    n = llama_token_to_piece(vocab_, token, big.data(), static_cast<int32_t>(big.size()), 0,
                             special);
    if (n < 0) raise("TokenizeError", "llama_token_to_piece failed for token " +
                                          std::to_string(token));
    big.resize(static_cast<size_t>(n));
    return big;
}

void register_model(py::module_ &m) {
    py::class_<Model, std::shared_ptr<Model>> model(m, "Model", R"doc(
A loaded llama.cpp model (weights and vocabulary). Immutable once loaded and safe to
share between threads; create one Context per concurrent user.)doc");
    model
        .def_static("load", &load_model, py::arg("paths"), py::kw_only(),
                    py::arg("n_gpu_layers") = llama_model_default_params().n_gpu_layers,
                    py::arg("main_gpu") = 0, py::arg("split_mode") = 1,
                    py::arg("tensor_split") = std::vector<float>{},
                    py::arg("use_mmap") = py::none(), py::arg("use_mlock") = false,
                    py::arg("vocab_only") = false, py::arg("check_tensors") = false,
                    py::arg("use_extra_bufts") = llama_model_default_params().use_extra_bufts,
                    py::arg("progress_callback") = py::none(),
                    R"doc(Load a model from one GGUF file or an explicit, ordered list of
split files. `progress_callback(progress: float) -> bool | None` is called during the
load; returning False cancels it (ModelLoadError). `use_extra_bufts` lets llama.cpp put
CPU weights in its extra buffer types (repacked layouts, AMX). Raises ModelLoadError with
llama.cpp's own reason and the file names.)doc")
        .def_property_readonly("paths", &Model::paths)
        .def_property_readonly("n_params",
                               [](const Model &s) { return llama_model_n_params(s.get()); })
        .def_property_readonly("size", [](const Model &s) { return llama_model_size(s.get()); })
        .def_property_readonly("n_ctx_train",
                               [](const Model &s) { return llama_model_n_ctx_train(s.get()); })
        .def_property_readonly("n_embd", [](const Model &s) { return llama_model_n_embd(s.get()); })
        .def_property_readonly("n_layer",
                               [](const Model &s) { return llama_model_n_layer(s.get()); })
        .def_property_readonly("n_head", [](const Model &s) { return llama_model_n_head(s.get()); })
        .def_property_readonly("n_head_kv",
                               [](const Model &s) { return llama_model_n_head_kv(s.get()); })
        .def_property_readonly("n_swa", [](const Model &s) { return llama_model_n_swa(s.get()); })
        .def_property_readonly("n_cls_out",
                               [](const Model &s) { return llama_model_n_cls_out(s.get()); })
        .def_property_readonly("has_encoder",
                               [](const Model &s) { return llama_model_has_encoder(s.get()); })
        .def_property_readonly("has_decoder",
                               [](const Model &s) { return llama_model_has_decoder(s.get()); })
        .def_property_readonly("is_recurrent",
                               [](const Model &s) { return llama_model_is_recurrent(s.get()); })
        .def_property_readonly("is_hybrid",
                               [](const Model &s) { return llama_model_is_hybrid(s.get()); })
        .def_property_readonly("decoder_start_token", [](const Model &s) {
            return llama_model_decoder_start_token(s.get());
        })
        .def_property_readonly("description",
                               [](const Model &s) {
                                   return utf8_str(read_c_string([&](char *b, size_t n) {
                                                       return llama_model_desc(s.get(), b, n);
                                                   }).value_or(""));
                               })
        .def_property_readonly("file_type",
                               [](const Model &s) {
                                   return std::string(llama_ftype_name(llama_model_ftype(s.get())));
                               })
        .def(
            "chat_template",
            [](const Model &s, std::optional<std::string> name) -> std::optional<py::str> {
                const char *t = llama_model_chat_template(s.get(), name ? name->c_str() : nullptr);
                if (t == nullptr) return std::nullopt;
                return utf8_str(t, std::strlen(t));
            },
            py::arg("name") = py::none(),
            "The GGUF's chat template (`tokenizer.chat_template[.name]`), or None.")
        .def("metadata", &model_metadata,
             "All GGUF key/values as llama.cpp formats them (strings).")
        .def(
            "meta_value",
            [](const Model &s, const std::string &key) {
                return as_py(read_c_string([&](char *b, size_t n) {
                    return llama_model_meta_val_str(s.get(), key.c_str(), b, n);
                }));
            },
            py::arg("key"))
        .def_property_readonly("vocab", [](const std::shared_ptr<Model> &s) { return Vocab{s}; });

    py::class_<Adapter, std::shared_ptr<Adapter>>(m, "Adapter", R"doc(
A LoRA adapter (GGUF) loaded for one model; apply it with Context.set_adapters.)doc")
        .def_static("load", &load_adapter, py::arg("model"), py::arg("path"),
                    "Load a LoRA adapter GGUF for `model` (ModelLoadError with the reason).")
        .def_property_readonly("path", &Adapter::path)
        .def(
            "meta_value",
            [](const Adapter &a, const std::string &key) {
                return as_py(read_c_string([&](char *b, size_t n) {
                    return llama_adapter_meta_val_str(a.get(), key.c_str(), b, n);
                }));
            },
            py::arg("key"));

    py::class_<Vocab>(m, "Vocab", "The vocabulary of a Model (tokenizer and special tokens).")
        .def_property_readonly("n_tokens", [](const Vocab &s) { return s.model->n_vocab(); })
        .def_property_readonly("type", [](const Vocab &s) {
            return static_cast<int>(llama_vocab_type(s.v()));
        })
        .def("tokenize", &tokenize, py::arg("text"), py::arg("add_special") = true,
             py::arg("parse_special") = false,
             "Text (UTF-8) to token ids. `add_special` adds BOS/EOS as the model asks; "
             "`parse_special` turns special-token text such as <|im_start|> into its id.")
        .def("detokenize", &detokenize, py::arg("tokens"), py::arg("remove_special") = false,
             py::arg("unparse_special") = false)
        .def(
            "token_to_piece",
            [](const Vocab &s, llama_token t, bool special) {
                s.model->check_token(t, "token id");
                std::string piece = s.model->token_to_piece(t, special);
                return py::bytes(piece);
            },
            py::arg("token"), py::arg("special") = false,
            "The bytes of one token (may be part of a UTF-8 character).")
        .def(
            "text",
            [](const Vocab &s, llama_token t) {
                s.model->check_token(t, "token id");
                const char *text = llama_vocab_get_text(s.v(), t);
                return utf8_str(text, std::strlen(text));
            },
            py::arg("token"))
        .def(
            "score",
            [](const Vocab &s, llama_token t) {
                s.model->check_token(t, "token id");
                return llama_vocab_get_score(s.v(), t);
            },
            py::arg("token"))
        .def(
            "attr",
            [](const Vocab &s, llama_token t) {
                s.model->check_token(t, "token id");
                return static_cast<int>(llama_vocab_get_attr(s.v(), t));
            },
            py::arg("token"))
        .def(
            "is_eog",
            [](const Vocab &s, llama_token t) { return llama_vocab_is_eog(s.v(), t); },
            py::arg("token"))
        .def(
            "is_control",
            [](const Vocab &s, llama_token t) { return llama_vocab_is_control(s.v(), t); },
            py::arg("token"))
        .def_property_readonly("bos", [](const Vocab &s) { return llama_vocab_bos(s.v()); })
        .def_property_readonly("eos", [](const Vocab &s) { return llama_vocab_eos(s.v()); })
        .def_property_readonly("eot", [](const Vocab &s) { return llama_vocab_eot(s.v()); })
        .def_property_readonly("sep", [](const Vocab &s) { return llama_vocab_sep(s.v()); })
        .def_property_readonly("nl", [](const Vocab &s) { return llama_vocab_nl(s.v()); })
        .def_property_readonly("pad", [](const Vocab &s) { return llama_vocab_pad(s.v()); })
        .def_property_readonly("fim_pre", [](const Vocab &s) { return llama_vocab_fim_pre(s.v()); })
        .def_property_readonly("fim_suf", [](const Vocab &s) { return llama_vocab_fim_suf(s.v()); })
        .def_property_readonly("fim_mid", [](const Vocab &s) { return llama_vocab_fim_mid(s.v()); })
        .def_property_readonly("add_bos",
                               [](const Vocab &s) { return llama_vocab_get_add_bos(s.v()); })
        .def_property_readonly("add_eos",
                               [](const Vocab &s) { return llama_vocab_get_add_eos(s.v()); })
        .def(
            "eog_tokens",
            [](const Vocab &s) {
                std::vector<llama_token> out;
                for (llama_token t = 0; t < s.model->n_vocab(); ++t) {
                    if (llama_vocab_is_eog(s.v(), t)) out.push_back(t);
                }
                return out;
            },
            "Every end-of-generation token id.")
        .def(
            "tokens_with_attr",
            [](const Vocab &s, int mask) {
                std::vector<llama_token> out;
                for (llama_token t = 0; t < s.model->n_vocab(); ++t) {
                    if (static_cast<int>(llama_vocab_get_attr(s.v(), t)) & mask) out.push_back(t);
                }
                return out;
            },
            py::arg("mask"),
            "Token ids with any of the attribute bits in `mask` (llama_token_attr: 1 unknown, "
            "8 control, 16 user-defined, ...).");
}

}  // namespace llamahost
