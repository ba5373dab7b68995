#include "compute_thread.h"

#ifndef _WIN32
#include <pthread.h>
#endif

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

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

// Called with `go_on`, which says whether it may call Python's driver again at once (else
// it returns, to let queued jobs run); returns whether it has more to do. Held by
// shared_ptr so that the compute thread's copy is never the last one (the last one is
// dropped with the GIL, in set_driver).
using Driver = std::shared_ptr<std::function<bool(const std::function<bool()>& go_on)>>;

// Never destroyed (a detached thread may still wait on it while the process exits); a
// forked child gets a fresh one, since the thread does not survive fork().
struct Worker {
    std::mutex mutex;
    std::condition_variable wake;
    std::condition_variable driver_returned;
    std::deque<std::shared_ptr<Job>> jobs;
    Driver driver;
    bool wanted = false;   // the driver was woken (or said it has more)
    bool driving = false;  // a driver call runs now
    bool started = false;
};

Worker* worker = nullptr;
std::once_flag atfork_once;
std::atomic<uint64_t> n_handed_over{0};  // jobs queued by other threads (a counter for tests)
thread_local bool is_compute_thread = false;

void serve(Worker* w) {
    is_compute_thread = true;
    for (;;) {
        std::shared_ptr<Job> job;
        Driver drive;
        {
            std::unique_lock<std::mutex> lock(w->mutex);
            w->wake.wait(lock, [w] { return !w->jobs.empty() || (w->wanted && w->driver); });
            if (!w->jobs.empty()) {
                job = std::move(w->jobs.front());
                w->jobs.pop_front();
            } else {
                w->wanted = false;
                w->driving = true;
                drive = w->driver;
            }
        }
        if (job) {
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
            continue;
        }
        const auto go_on = [w, &drive] {  // nothing queued, and this driver still set
            std::lock_guard<std::mutex> lock(w->mutex);
            return w->jobs.empty() && w->driver == drive;
        };
        bool more = (*drive)(go_on);  // catches everything itself
        drive.reset();
        {
            std::lock_guard<std::mutex> lock(w->mutex);
            w->driving = false;
            if (more) w->wanted = true;
        }
        w->driver_returned.notify_all();
    }
}

#ifndef _WIN32
void forget_worker_in_child() {  // the parent's thread is not ours; its driver still is
    Driver driver = worker->driver;
    worker = new Worker();
    worker->driver = std::move(driver);
}
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

void start_locked(Worker& w) {
    if (!w.started) {
        std::thread thread(serve, &w);
        thread.detach();
        w.started = true;
    }
}

bool python_is_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
}

// Calls `fn` with the GIL, keeping one thread state for the compute thread (so that Python
// sees one thread, with its thread-locals, across calls), and calls it again while it has
// more to do and `go_on` agrees, without giving up the GIL in between: a thread that a step
// woke (an event loop with the step's tokens to send) would otherwise take the GIL here
// and hold the next step back until it is done (the step's decode releases the GIL soon
// after, and that thread runs beside the computation instead).
bool call_python_driver(const py::object& fn, const std::function<bool()>& go_on) {
    static thread_local PyThreadState* state = nullptr;
    if (python_is_finalizing()) return false;  // a thread taking the GIL now would exit
    if (state == nullptr) PyGILState_Ensure();  // kept for the thread's life
    else PyEval_RestoreThread(state);
    bool more = false;
    do {
        try {
            more = fn().cast<bool>();
        } catch (py::error_already_set& e) {
            e.discard_as_unraisable("fireside compute driver");
            more = false;
        } catch (const std::exception& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
            PyErr_WriteUnraisable(nullptr);
            more = false;
        }
    } while (more && !python_is_finalizing() && go_on());
    state = PyEval_SaveThread();
    return more;
}

// Set (or with None clear) the driver; clearing waits for a running call to return.
void set_driver(const py::object& fn) {
    Worker& w = the_worker();
    Driver old;
    Driver next;
    if (!fn.is_none()) {  // built with the GIL: it copies a Python object
        auto held = std::make_shared<py::object>(fn);
        // the copy of `held` lives in the driver, which only this function drops
        next = std::make_shared<std::function<bool(const std::function<bool()>&)>>(
            [held](const std::function<bool()>& go_on) { return call_python_driver(*held, go_on); });
    }
    {
        py::gil_scoped_release release;
        std::unique_lock<std::mutex> lock(w.mutex);
        old = std::move(w.driver);
        w.driver = std::move(next);
        if (!is_compute_thread) w.driver_returned.wait(lock, [&w] { return !w.driving; });
    }
    old.reset();  // with the GIL: it holds a Python object
}

void wake_driver() {
    Worker& w = the_worker();
    {
        std::lock_guard<std::mutex> lock(w.mutex);
        w.wanted = true;
        start_locked(w);
    }
    w.wake.notify_one();
}

}  // namespace

void run_on_compute_thread(const std::function<void()>& fn) {
    if (is_compute_thread) {
        fn();
        return;
    }
    Worker& w = the_worker();
    n_handed_over.fetch_add(1, std::memory_order_relaxed);
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    {
        std::lock_guard<std::mutex> lock(w.mutex);
        start_locked(w);
        w.jobs.push_back(job);
    }
    w.wake.notify_one();
    {
        std::unique_lock<std::mutex> lock(job->mutex);
        job->finished.wait(lock, [&job] { return job->done; });
    }
    if (job->error) std::rethrow_exception(job->error);
}

void register_compute_thread(py::module_& m) {
    m.def("_set_compute_driver", &set_driver, py::arg("driver"),
          "Set the function the compute thread calls when woken (None: none; waits for a "
          "call under way). It returns whether it has more to do.");
    m.def("_wake_compute_driver", &wake_driver, "Have the compute thread call its driver soon.");
    m.def("_on_compute_thread", [] { return is_compute_thread; },
          "Whether the calling thread is the compute thread.");
    m.def("_compute_handovers", [] { return n_handed_over.load(std::memory_order_relaxed); },
          "Computations handed to the compute thread by other threads since the start.");
}

}  // namespace fireside
