#include "wakeup.h"

#include <cerrno>
#include <cstdint>

#ifdef _WIN32
#include <winsock2.h>
#else
#include <sys/socket.h>
#endif

namespace fireside {

namespace {

// One byte to a non-blocking socket, holding the GIL. A full buffer means the reader has
// wake-ups pending already: nothing is lost (false is returned).
bool send_wakeup(intptr_t fd) {
    const char byte = 0;
#ifdef _WIN32
    if (send(static_cast<SOCKET>(fd), &byte, 1, 0) == 1) return true;
    const int error = WSAGetLastError();
    if (error == WSAEWOULDBLOCK) return false;
    PyErr_SetExcFromWindowsErr(PyExc_OSError, error);
    throw py::error_already_set();
#else
    for (;;) {
        if (send(static_cast<int>(fd), &byte, 1, MSG_DONTWAIT) == 1) return true;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
        PyErr_SetFromErrno(PyExc_OSError);
        throw py::error_already_set();
    }
#endif
}

}  // namespace

void register_wakeup(py::module_& m) {
    m.def("_send_wakeup", &send_wakeup, py::arg("fd"),
          "Send one byte to the non-blocking socket `fd` without releasing the GIL; False "
          "when its buffer is full (wake-ups are pending already). OSError on a closed or "
          "bad socket.");
}

}  // namespace fireside
