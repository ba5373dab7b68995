#include "logging.h"

#include <ggml.h>
#include <llama.h>

#include <atomic>
#include <mutex>

namespace fireside {

namespace {

struct Queue {
    std::mutex mutex;
    std::vector<std::pair<int, std::string>> lines;
};

Queue& queue() {
    static Queue* q = new Queue();  // never destroyed: llama.cpp may log during exit
    return *q;
}

std::atomic<bool> pending{false};
std::atomic<int> min_level{30};  // Python's WARNING
thread_local std::string partial;
thread_local int partial_level = 20;
thread_local LogCapture* active_capture = nullptr;

int python_level(ggml_log_level level) {
    switch (level) {
        case GGML_LOG_LEVEL_DEBUG: return 10;
        case GGML_LOG_LEVEL_INFO: return 20;
        case GGML_LOG_LEVEL_WARN: return 30;
        case GGML_LOG_LEVEL_ERROR: return 40;
        default: return 20;
    }
}

void emit_line(int level, std::string line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty()) return;
    capture_line(level, line);
    if (level < min_level.load(std::memory_order_relaxed)) return;
    std::lock_guard<std::mutex> lock(queue().mutex);
    queue().lines.emplace_back(level, std::move(line));
    pending.store(true, std::memory_order_release);
}

void on_log(ggml_log_level level, const char* text, void*) {
    if (text == nullptr) return;
    if (level != GGML_LOG_LEVEL_CONT) {
        if (!partial.empty()) emit_line(partial_level, std::move(partial));
        partial.clear();
        partial_level = python_level(level);
    }
    partial += text;
    // Emit every complete line; keep an unfinished one for the next call.
    size_t start = 0;
    for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
        emit_line(partial_level, partial.substr(start, nl - start));
    }
    partial.erase(0, start);
}

}  // namespace

void capture_line(int level, const std::string& line) {
    if (active_capture != nullptr && level >= 30) active_capture->lines_.emplace_back(level, line);
}

LogCapture::LogCapture() : previous_(active_capture) { active_capture = this; }

LogCapture::~LogCapture() { active_capture = previous_; }

std::string LogCapture::reason() const {
    // llama.cpp explains a failure in one or more error lines, then adds a generic one
    // ("failed to load model"): keep the explanation, without the function-name prefixes.
    static const char* generic[] = {"failed to load model", "failed to decode", "failed to initialize batch",
                                    "failed to parse grammar", "failed to initialize the context"};
    auto strip = [](const std::string& line) {
        size_t colon = line.find(": ");
        bool is_prefix = colon != std::string::npos && colon > 0 &&
                         line.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == colon;
        std::string text = is_prefix ? line.substr(colon + 2) : line;
        size_t start = text.find_first_not_of(" -");
        return start == std::string::npos ? std::string() : text.substr(start);
    };
    std::string joined;
    for (auto& [level, line] : lines_) {
        if (level < 40) continue;
        bool is_generic = false;
        for (const char* g : generic) is_generic |= line.find(g) != std::string::npos;
        std::string text = strip(line);
        if (is_generic || text.empty()) continue;
        joined += (joined.empty() ? "" : " ") + text;
    }
    if (!joined.empty()) return joined;
    for (int wanted : {40, 30}) {
        for (auto it = lines_.rbegin(); it != lines_.rend(); ++it) {
            if (it->first >= wanted) return strip(it->second);
        }
    }
    return "";
}

void flush_logs() {
    if (!pending.load(std::memory_order_acquire)) return;
    std::vector<std::pair<int, std::string>> lines;
    {
        std::lock_guard<std::mutex> lock(queue().mutex);
        lines.swap(queue().lines);
        pending.store(false, std::memory_order_relaxed);
    }
    py::object logger = py::module_::import("logging").attr("getLogger")("fireside.llama");
    for (auto& [level, text] : lines) logger.attr("log")(level, text);
}

void register_logging(py::module_& m) {
    llama_log_set(on_log, nullptr);
    m.def(
        "set_log_level", [](int level) { min_level.store(level); }, py::arg("level"),
        R"pbdoc(Drop llama.cpp log messages below this Python logging level (default WARNING).)pbdoc");
    m.def("flush_logs", &flush_logs,
          R"pbdoc(Emit the llama.cpp log messages gathered so far into the ``fireside.llama`` logger.)pbdoc");
}

}  // namespace fireside
