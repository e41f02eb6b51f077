// Turns NativeError into the matching class of llamahost.errors.
#include "common.hpp"

namespace llamahost {

void register_errors(py::module_ &m) {
    // The classes live in Python so that native and Python code raise one hierarchy.
    // Kept for the life of the process (never released at interpreter teardown).
    static py::handle errors_module = py::module_::import("llamahost.errors").release();
    m.attr("_errors_module") = errors_module;

    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const NativeError &e) {
            py::object cls = errors_module.attr(e.py_class());
            PyErr_SetString(cls.ptr(), e.what());
        }
    });
}

}  // namespace llamahost
