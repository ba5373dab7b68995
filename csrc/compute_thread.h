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
#pragma once

#include <functional>

namespace fireside {

// Run `job` on the compute thread and wait for it; an exception it throws is rethrown
// here. Call without the GIL. A job must not call run_on_compute_thread itself.
void run_on_compute_thread(const std::function<void()>& job);

}  // namespace fireside
