// ggml backends shipped as loadable libraries inside a llamahost wheel.
//
// A wheel (scripts/build_wheel.py) carries llama.cpp built with GGML_BACKEND_DL: the CPU
// backend in one library per instruction-set level (libggml-cpu-haswell.so, ...) and each
// GPU backend in its own (libggml-vulkan.so, libggml-cuda.so), all in <package>/lib beside
// this extension. ggml loads the best CPU variant this CPU can run and every GPU backend
// whose driver is present. A GPU backend that cannot load (no driver, no device) is
// reported in one warning line, and the model runs on the CPU. A build linked against
// llama-cpp-python has its backends compiled in and no such folder: nothing happens.
#include "common.hpp"

#include <dlfcn.h>

#include <filesystem>
#include <map>

#include "ggml-backend.h"

namespace llamahost {
namespace {

namespace fs = std::filesystem;

struct BackendLoadFailure {
    std::string library;
    std::string reason;
};

fs::path g_backend_dir;
std::vector<BackendLoadFailure> g_failures;

// The file a loaded backend came from: the library whose memory holds its name.
std::string library_of(ggml_backend_reg_t reg) {
    Dl_info info{};
    const char *name = ggml_backend_reg_name(reg);
    if (name != nullptr && dladdr(name, &info) != 0 && info.dli_fname != nullptr) {
        return info.dli_fname;
    }
    return "";
}

void warn(const std::string &line) {
    const std::string text = "llamahost: " + line + "\n";
    ggml_log_callback callback = nullptr;
    void *user_data = nullptr;
    llama_log_get(&callback, &user_data);
    if (callback != nullptr) callback(GGML_LOG_LEVEL_WARN, text.c_str(), user_data);
}

// Why a library does not load, in the dynamic loader's words.
std::string dlopen_error(const fs::path &path) {
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
        dlclose(handle);
        return "it loads, but its backend did not register";
    }
    const char *error = dlerror();
    return error != nullptr ? error : "unknown error";
}

}  // namespace

void load_bundled_backends() {
    Dl_info self{};
    if (dladdr(reinterpret_cast<void *>(&load_bundled_backends), &self) == 0 ||
        self.dli_fname == nullptr) {
        return;
    }
    const fs::path dir = fs::path(self.dli_fname).parent_path() / "lib";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    g_backend_dir = dir;
    ggml_backend_load_all_from_path(dir.c_str());

    std::map<std::string, ggml_backend_reg_t> loaded;  // library file name -> backend
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        ggml_backend_reg_t reg = ggml_backend_reg_get(i);
        loaded[fs::path(library_of(reg)).filename().string()] = reg;
    }
    for (const auto &entry : fs::directory_iterator(dir, ec)) {
        const std::string file = entry.path().filename().string();
        if (file.rfind("libggml-", 0) != 0 || file.rfind("libggml-cpu", 0) == 0 ||
            file.rfind("libggml-base", 0) == 0 || entry.path().extension() != ".so") {
            continue;  // CPU variants: only the best one loads, by design
        }
        const auto found = loaded.find(file);
        std::string reason;
        if (found == loaded.end()) {
            reason = dlopen_error(entry.path());
        } else if (ggml_backend_reg_dev_count(found->second) == 0) {
            reason = "it found no device";
        } else {
            continue;
        }
        g_failures.push_back({file, reason});
        warn("the " + file + " backend is not used (" + reason + "); running on the CPU");
    }
}

// Whether `device` runs a matrix multiplication by a weight of this type and shape, the
// test llama.cpp makes before it puts a weight on a device (a Vulkan device refuses a
// tensor above its maxStorageBufferRange, for one).
bool device_supports_matmul(const std::string &device, int type, int64_t rows, int64_t cols) {
    ggml_backend_dev_t dev = ggml_backend_dev_by_name(device.c_str());
    if (dev == nullptr) raise("OptionError", "no device named '" + device + "'");
    if (type < 0 || type >= GGML_TYPE_COUNT) {
        raise("OptionError", "`type` must be a ggml type id, got " + std::to_string(type));
    }
    ggml_init_params params{ggml_tensor_overhead() * 8, nullptr, true};
    std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx(ggml_init(params), ggml_free);
    ggml_tensor *weight = ggml_new_tensor_2d(ctx.get(), static_cast<ggml_type>(type), cols, rows);
    ggml_tensor *input = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, cols, 512);
    ggml_tensor *product = ggml_mul_mat(ctx.get(), weight, input);
    ggml_backend_buffer_type_t buft = ggml_backend_dev_buffer_type(dev);
    weight->buffer = ggml_backend_buft_alloc_buffer(buft, 0);  // as llama.cpp's check does
    const bool supported = ggml_backend_dev_supports_op(dev, product);
    ggml_backend_buffer_free(weight->buffer);
    return supported;
}

void register_backends(py::module_ &m) {
    m.def("device_supports_matmul", &device_supports_matmul, py::arg("device"), py::arg("type"),
          py::arg("rows"), py::arg("cols"),
          "Whether a device runs a matmul by a weight of this ggml type and shape (rows x cols).");
    m.def(
        "backend_libraries",
        []() {
            py::dict libraries;
            for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
                ggml_backend_reg_t reg = ggml_backend_reg_get(i);
                libraries[py::str(ggml_backend_reg_name(reg))] = library_of(reg);
            }
            return libraries;
        },
        "Each registered ggml backend's name -> the shared library it was loaded from.");
    m.def(
        "backend_load_failures",
        []() {
            py::list failures;
            for (const auto &failure : g_failures) {
                py::dict item;
                item["library"] = failure.library;
                item["reason"] = failure.reason;
                failures.append(item);
            }
            return failures;
        },
        "GPU backend libraries shipped in the package that are not in use, and why.");
    m.def(
        "bundled_backend_dir", []() { return g_backend_dir.string(); },
        "The folder the backends were loaded from; empty when they are compiled in.");
}

}  // namespace llamahost
