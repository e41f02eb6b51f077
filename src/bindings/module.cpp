// llamahost._native: a thin pybind11 layer over llama.cpp's C API.
#include "common.hpp"

PYBIND11_MODULE(_native, m) {
    m.doc() = "Thin bindings over llama.cpp's C API (see llamahost for the Python engine).";
    llamahost::register_errors(m);
    llamahost::register_logging(m);  // first: backend loading may log
    llamahost::load_bundled_backends();
    llama_backend_init();
    llamahost::register_backends(m);
    llamahost::register_model(m);
    llamahost::register_context(m);
    llamahost::register_sampler(m);
    llamahost::register_generator(m);
    llamahost::register_gguf(m);
    llamahost::register_system(m);
    m.attr("DEFAULT_SEED") = LLAMA_DEFAULT_SEED;
    m.attr("TOKEN_NULL") = LLAMA_TOKEN_NULL;
}
