#include "stderr_capture.h"

#include <cstdio>
#include <mutex>

#ifdef _WIN32
#include <io.h>
#define dup _dup
#define dup2 _dup2
#define fileno _fileno
#define close _close
#else
#include <unistd.h>
#endif

namespace fireside {

namespace {
std::mutex redirect_mutex;  // one redirection at a time
}

StderrCapture::StderrCapture() {
    redirect_mutex.lock();
    std::FILE* tmp = std::tmpfile();
    if (tmp == nullptr) return;
    std::fflush(stderr);
    saved_fd_ = dup(fileno(stderr));
    if (saved_fd_ < 0 || dup2(fileno(tmp), fileno(stderr)) < 0) {
        std::fclose(tmp);
        if (saved_fd_ >= 0) close(saved_fd_);
        saved_fd_ = -1;
        return;
    }
    file_ = tmp;
}

std::string StderrCapture::finish() {
    std::string text;
    if (file_ != nullptr) {
        auto* tmp = static_cast<std::FILE*>(file_);
        std::fflush(stderr);
        dup2(saved_fd_, fileno(stderr));
        close(saved_fd_);
        std::rewind(tmp);
        char buf[1024];
        while (std::fgets(buf, sizeof buf, tmp) != nullptr) {
            text = buf;
            while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
            if (!text.empty()) break;
        }
        std::fclose(tmp);
        file_ = nullptr;
        saved_fd_ = -1;
    }
    return text;
}

StderrCapture::~StderrCapture() {
    finish();
    redirect_mutex.unlock();
}

}  // namespace fireside
