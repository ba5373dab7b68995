// llama.cpp / ggml log messages, routed into Python's `fireside.llama` logger.
//
// llama.cpp logs from worker threads and from inside calls that run without the GIL, so
// the callback never touches Python: it queues complete lines, and they are emitted by
// flush_logs() whenever a native call returns with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

namespace fireside {

namespace py = pybind11;

class LogCapture;
void capture_line(int level, const std::string& line);

// Emit queued messages into the Python logger (cheap when nothing is queued). Needs the GIL.
void flush_logs();

// While alive, collects the warning and error lines logged by *this thread* (llama.cpp
// explains a failed load or grammar only in its log).
class LogCapture {
public:
    LogCapture();
    ~LogCapture();
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;

    // The most telling captured line: the last error, else the last warning, else "".
    std::string reason() const;

private:
    friend void capture_line(int level, const std::string& line);
    std::vector<std::pair<int, std::string>> lines_;  // (python level, text)
    LogCapture* previous_;
};

// Run `call` without the GIL while capturing what llama.cpp logs about it; flush the log
// afterwards. Returns call's result; `reason` gets the most telling captured line.
template <class Call>
auto call_explained(Call&& call, std::string& reason) {
    decltype(call()) result{};
    {
        LogCapture capture;
        {
            py::gil_scoped_release release;
            result = call();
        }
        reason = capture.reason();
    }
    flush_logs();
    return result;
}

void register_logging(py::module_& m);

}  // namespace fireside
