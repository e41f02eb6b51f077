// llama.cpp's log, routed to Python's `logging` (logger "llamahost.llama_cpp").
//
// llama.cpp logs through one process-wide callback, from whichever thread is working,
// often with the GIL released, and sometimes a line in several pieces
// (GGML_LOG_LEVEL_CONT). Lines are assembled per thread. Lines below the native
// threshold (WARN by default) never touch Python. While a LogCapture is alive on a
// thread, that thread's warning and error lines are also kept for error messages.
#include "common.hpp"

#include <cstdlib>
#include <mutex>

namespace llamahost {
namespace {

std::atomic<int> g_min_level{GGML_LOG_LEVEL_WARN};
std::atomic<bool> g_python_enabled{false};

thread_local LogCapture *t_capture = nullptr;
thread_local std::string t_line;
thread_local ggml_log_level t_line_level = GGML_LOG_LEVEL_INFO;

int python_level(ggml_log_level level) {
    switch (level) {
        case GGML_LOG_LEVEL_DEBUG: return 10;
        case GGML_LOG_LEVEL_INFO: return 20;
        case GGML_LOG_LEVEL_WARN: return 30;
        case GGML_LOG_LEVEL_ERROR: return 40;
        default: return 20;
    }
}

void emit_to_python(ggml_log_level level, const std::string &line) {
    if (!g_python_enabled.load() || !Py_IsInitialized()) return;
    py::gil_scoped_acquire gil;
    try {
        static py::handle logger =
            py::module_::import("logging").attr("getLogger")("llamahost.llama_cpp").release();
        logger.attr("log")(python_level(level), "%s", utf8_str(line));
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("llamahost log bridge");
    }
}

void dispatch_line(ggml_log_level level, std::string line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty()) return;
    if (t_capture != nullptr && (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR)) {
        t_capture->add(level, line);
        if (t_capture->defers()) return;  // emitted by flush()
    }
    if (static_cast<int>(level) >= g_min_level.load()) emit_to_python(level, line);
}

void log_callback(ggml_log_level level, const char *text, void * /*user_data*/) {
    if (text == nullptr) return;
    if (level == GGML_LOG_LEVEL_CONT) {
        level = t_line_level;
    } else if (!t_line.empty()) {
        dispatch_line(t_line_level, std::move(t_line));
        t_line.clear();
    }
    t_line_level = level;
    t_line += text;
    // Emit every complete line; keep an unfinished tail for the next piece.
    size_t start = 0;
    for (size_t nl = t_line.find('\n'); nl != std::string::npos; nl = t_line.find('\n', start)) {
        dispatch_line(level, t_line.substr(start, nl - start));
        start = nl + 1;
    }
    t_line.erase(0, start);
}

}  // namespace

LogCapture::LogCapture(bool defer) : previous_(t_capture), defer_(defer) { t_capture = this; }
LogCapture::~LogCapture() {
    t_capture = previous_;
    flush();  // nothing held back is ever lost
}

void LogCapture::flush(ggml_log_level as) {
    if (!defer_ || flushed_) return;
    flushed_ = true;
    for (const auto &[level, line] : lines_) {
        const ggml_log_level emit_level = as == GGML_LOG_LEVEL_NONE ? level : as;
        if (static_cast<int>(emit_level) >= g_min_level.load()) emit_to_python(emit_level, line);
    }
}

void LogCapture::add(ggml_log_level level, const std::string &line) {
    lines_.emplace_back(level, line);
}

std::string LogCapture::reason() const {
    std::string errors, warnings;
    for (const auto &[level, line] : lines_) {
        std::string &out = level == GGML_LOG_LEVEL_ERROR ? errors : warnings;
        if (!out.empty()) out += "; ";
        out += line;
    }
    return errors.empty() ? warnings : errors;
}

void register_logging(py::module_ &m) {
    llama_log_set(log_callback, nullptr);
    // LLAMAHOST_DEBUG (not empty, not "0") forwards everything, down to llama.cpp's debug lines.
    if (const char *debug = std::getenv("LLAMAHOST_DEBUG");
        debug != nullptr && debug[0] != '\0' && std::string(debug) != "0") {
        g_min_level.store(GGML_LOG_LEVEL_DEBUG);
    }
    // Forward to the "llamahost.llama_cpp" logger from the moment the extension loads (the
    // package gives the "llamahost" logger a NullHandler); stop before the interpreter shuts
    // down, as llama.cpp may still log then.
    g_python_enabled.store(true);
    py::module_::import("atexit").attr("register")(
        py::cpp_function([]() { g_python_enabled.store(false); }));
    m.def(
        "set_log_level",
        [](int level) {
            if (level < GGML_LOG_LEVEL_DEBUG || level > GGML_LOG_LEVEL_ERROR + 1) {
                raise("OptionError", "`level` must be in [1, 5] (1 debug, 2 info, 3 warn, "
                                     "4 error, 5 off), got " + std::to_string(level));
            }
            g_min_level.store(level);
        },
        py::arg("level"),
        "Lowest llama.cpp log level forwarded to Python logging (1 debug .. 4 error, 5 off).");
    m.def("get_log_level", []() { return g_min_level.load(); });
    m.def(
        "_enable_python_logging", [](bool enabled) { g_python_enabled.store(enabled); },
        py::arg("enabled"),
        "Turn forwarding to Python on or off (off at interpreter exit).");
    m.def(
        "_log_test_message",
        [](int level, const std::string &text) {
            log_callback(static_cast<ggml_log_level>(level), text.c_str(), nullptr);
        },
        py::arg("level"), py::arg("text"), "Feed one message through the log bridge (tests).");
}

}  // namespace llamahost
