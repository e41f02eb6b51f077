// What the loaded llama.cpp library was built with and what it sees; chat-template helpers.
#include "common.hpp"

#include "ggml-backend.h"

namespace llamahost {
namespace {

const char *device_type_name(enum ggml_backend_dev_type type) {
    switch (type) {
        case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
        default: return "other";
    }
}

py::dict system_info() {
    py::dict info;
    info["llama_cpp_commit"] = LLAMAHOST_LLAMA_BUILD_COMMIT;
    info["llama_cpp_version"] = LLAMAHOST_LLAMA_VERSION;
    info["ggml_backends_built"] = LLAMAHOST_GGML_BACKENDS;

    py::list backends;
    py::dict features;
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        ggml_backend_reg_t reg = ggml_backend_reg_get(i);
        const char *name = ggml_backend_reg_name(reg);
        backends.append(name);
        auto get_features = reinterpret_cast<ggml_backend_get_features_t>(
            ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features"));
        if (get_features == nullptr) continue;
        py::dict reg_features;
        for (ggml_backend_feature *f = get_features(reg); f != nullptr && f->name != nullptr; ++f) {
            reg_features[py::str(f->name)] = py::str(f->value);
        }
        features[py::str(name)] = reg_features;
    }
    info["backends"] = backends;
    info["features"] = features;

    py::list devices;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        ggml_backend_dev_props props{};
        ggml_backend_dev_get_props(dev, &props);
        py::dict d;
        d["name"] = props.name ? props.name : "";
        d["description"] = props.description ? props.description : "";
        d["type"] = device_type_name(props.type);
        d["backend"] = ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev));
        d["memory_free"] = props.memory_free;
        d["memory_total"] = props.memory_total;
        devices.append(d);
    }
    info["devices"] = devices;
    info["supports_mmap"] = llama_supports_mmap();
    info["supports_mlock"] = llama_supports_mlock();
    info["supports_gpu_offload"] = llama_supports_gpu_offload();
    info["supports_rpc"] = llama_supports_rpc();
    info["max_devices"] = llama_max_devices();
    info["max_parallel_sequences"] = llama_max_parallel_sequences();
    info["system_info"] = llama_print_system_info();
    return info;
}

py::str apply_builtin_template(const std::string &tmpl,
                               const std::vector<std::pair<std::string, std::string>> &messages,
                               bool add_assistant) {
    std::vector<llama_chat_message> chat;
    size_t total = 0;
    for (const auto &[role, content] : messages) {
        chat.push_back({role.c_str(), content.c_str()});
        total += role.size() + content.size();
    }
    std::vector<char> buf(total * 2 + 256);
    int32_t n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), add_assistant,
                                          buf.data(), static_cast<int32_t>(buf.size()));
    if (n > static_cast<int32_t>(buf.size())) {
        buf.resize(static_cast<size_t>(n));
        n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), add_assistant,
                                      buf.data(), static_cast<int32_t>(buf.size()));
    }
    if (n < 0) {
        raise("TemplateError", "llama.cpp has no built-in chat template matching '" +
                                   tmpl.substr(0, 60) + (tmpl.size() > 60 ? "...'" : "'"));
    }
    return utf8_str(buf.data(), static_cast<size_t>(n));
}

}  // namespace

void register_system(py::module_ &m) {
    m.def("system_info", &system_info,
          "llama.cpp build commit, backends compiled in, devices seen, CPU features.");
    m.def("llama_time_us", &llama_time_us);
    m.def("apply_builtin_template", &apply_builtin_template, py::arg("template"),
          py::arg("messages"), py::arg("add_assistant") = true,
          R"doc(Format (role, content) messages with one of llama.cpp's built-in templates,
chosen by name ("chatml", "llama3", ...) or detected from a Jinja template's text.
Raises TemplateError if none matches.)doc");
    m.def("builtin_templates", []() {
        std::vector<const char *> names(128);
        int32_t n = llama_chat_builtin_templates(names.data(), names.size());
        if (n > static_cast<int32_t>(names.size())) {
            names.resize(static_cast<size_t>(n));
            n = llama_chat_builtin_templates(names.data(), names.size());
        }
        std::vector<std::string> out(names.begin(), names.begin() + std::max(n, 0));
        return out;
    });
}

}  // namespace llamahost
