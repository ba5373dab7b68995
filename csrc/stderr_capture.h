// Capture what a short native call writes to the process's stderr (fd 2).
#pragma once

#include <string>

namespace fireside {

// Redirects fd 2 into a temporary file until finish() (or destruction). Process-wide:
// use only around short calls that report errors with fprintf(stderr, ...).
class StderrCapture {
public:
    StderrCapture();
    ~StderrCapture();
    StderrCapture(const StderrCapture&) = delete;
    StderrCapture& operator=(const StderrCapture&) = delete;

    // Restore stderr and return the first line that was written (trimmed), or "".
    std::string finish();

private:
    int saved_fd_ = -1;
    void* file_ = nullptr;  // FILE*
};

}  // namespace fireside
