// The one native thread on which every llama.cpp graph is computed.
//
// ggml's CPU backend runs each graph as an OpenMP parallel region, and libgomp keeps a team
// of worker threads for every thread that has started one, for as long as that thread
// lives. Once teams from two threads exist (a Model used from the main thread and later
// from a worker thread, a server's engine thread beside a loader thread), libgomp counts
// more threads than cores and cuts the spinning at every barrier to almost nothing, so each
// of the hundreds of barriers in a token's graph sleeps and wakes: generation ran at 0.6 of
// its speed. Computing every graph from this one thread keeps one team, as in llama.cpp's
// own tools. The price is that graphs of different contexts never compute at the same time
// (they would share the same cores anyway).
//
// Handing each decode to this thread and back costs two thread wake-ups per token (about
// 0.1 ms on a VM), so the token loop itself runs here too: Python registers a *driver*
// (fireside.generation.compute), which this thread calls whenever it is woken with nothing
// else queued, and again as long as it reports more work. A decode from the driver runs
// inline; decodes from other threads queue as jobs and run between the driver's calls.
#pragma once

#include <pybind11/pybind11.h>

#include <functional>

namespace fireside {

namespace py = pybind11;

// Run `job` on the compute thread and wait for it; an exception it throws is rethrown
// here. Call without the GIL. On the compute thread itself, `job` runs at once.
void run_on_compute_thread(const std::function<void()>& job);

void register_compute_thread(py::module_& m);

}  // namespace fireside
