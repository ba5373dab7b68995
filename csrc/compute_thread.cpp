#include "compute_thread.h"

#ifndef _WIN32
#include <pthread.h>
#endif

#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

namespace fireside {

namespace {

// Shared by the caller and the compute thread, so that each notifies after unlocking (a
// thread woken while the notifier still holds the lock would sleep again at once).
struct Job {
    const std::function<void()>* fn = nullptr;
    std::exception_ptr error;
    std::mutex mutex;
    std::condition_variable finished;
    bool done = false;
};

// Never destroyed (a detached thread may still wait on it while the process exits); a
// forked child gets a fresh one, since the thread does not survive fork().
struct Worker {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::shared_ptr<Job>> jobs;
    bool started = false;
};

Worker* worker = nullptr;
std::once_flag atfork_once;

void serve(Worker* w) {
    for (;;) {
        std::shared_ptr<Job> job;
        {
            std::unique_lock<std::mutex> lock(w->mutex);
            w->wake.wait(lock, [w] { return !w->jobs.empty(); });
            job = std::move(w->jobs.front());
            w->jobs.pop_front();
        }
        try {
            (*job->fn)();
        } catch (...) {
            job->error = std::current_exception();
        }
        {
            std::lock_guard<std::mutex> lock(job->mutex);
            job->done = true;
        }
        job->finished.notify_one();
    }
}

#ifndef _WIN32
void forget_worker_in_child() { worker = new Worker(); }  // the parent's is not ours
#endif

Worker& the_worker() {
    std::call_once(atfork_once, [] {
        worker = new Worker();
#ifndef _WIN32
        pthread_atfork(nullptr, nullptr, &forget_worker_in_child);
#endif
    });
    return *worker;
}

}  // namespace

void run_on_compute_thread(const std::function<void()>& fn) {
    Worker& w = the_worker();
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    {
        std::lock_guard<std::mutex> lock(w.mutex);
        if (!w.started) {
            std::thread thread(serve, &w);
            thread.detach();
            w.started = true;
        }
        w.jobs.push_back(job);
    }
    w.wake.notify_one();
    {
        std::unique_lock<std::mutex> lock(job->mutex);
        job->finished.wait(lock, [&job] { return job->done; });
    }
    if (job->error) std::rethrow_exception(job->error);
}

}  // namespace fireside
