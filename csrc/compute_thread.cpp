#include "compute_thread.h"

#ifndef _WIN32
#include <pthread.h>
#endif

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace fireside {

namespace {

struct Job {
    const std::function<void()>* fn;
    std::exception_ptr error;
    bool done = false;
    std::condition_variable finished;
};

// Never destroyed (a detached thread may still wait on it while the process exits); a
// forked child gets a fresh one, since the thread does not survive fork().
struct Worker {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<Job*> jobs;
    bool started = false;
};

Worker* worker = nullptr;
std::once_flag atfork_once;

void serve(Worker* w) {
    std::unique_lock<std::mutex> lock(w->mutex);
    for (;;) {
        w->wake.wait(lock, [w] { return !w->jobs.empty(); });
        Job* job = w->jobs.front();
        w->jobs.pop_front();
        lock.unlock();
        try {
            (*job->fn)();
        } catch (...) {
            job->error = std::current_exception();
        }
        lock.lock();
        job->done = true;
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
    Job job;
    job.fn = &fn;
    {
        std::unique_lock<std::mutex> lock(w.mutex);
        if (!w.started) {
            std::thread thread(serve, &w);
            thread.detach();
            w.started = true;
        }
        w.jobs.push_back(&job);
        w.wake.notify_one();
        job.finished.wait(lock, [&job] { return job.done; });
    }
    if (job.error) std::rethrow_exception(job.error);
}

}  // namespace fireside
