// Waking another thread's event loop without giving up the GIL.
//
// A socket's send() in Python releases the GIL around the system call; the thread it wakes
// (an event loop waiting in select) takes the GIL then, and the caller (the compute thread,
// between two decodes) waits until that thread gives it back: for the loop's whole turn of
// sending a step's tokens. Written from here, the byte wakes the loop all the same, and the
// loop runs once the caller releases the GIL itself (in its next decode).
#pragma once

#include <pybind11/pybind11.h>

namespace fireside {

namespace py = pybind11;

void register_wakeup(py::module_& m);

}  // namespace fireside
