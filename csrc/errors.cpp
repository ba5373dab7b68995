#include "errors.h"

#include <cstring>

namespace fireside {

void raise_error(const char* name, const std::string& message, const py::dict& kwargs) {
    py::object cls = py::module_::import("fireside.errors").attr(name);
    py::object exc = cls(message, **kwargs);
    PyErr_SetObject(cls.ptr(), exc.ptr());
    throw py::error_already_set();
}

void raise_os_error(PyObject* type, int errnum, const std::string& filename) {
    py::object exc = py::reinterpret_steal<py::object>(
        PyObject_CallFunction(type, "isO", errnum, std::strerror(errnum), py::str(filename).ptr()));
    if (!exc) throw py::error_already_set();
    PyErr_SetObject(type, exc.ptr());
    throw py::error_already_set();
}

void raise_closed(const char* what) {
    raise_error("ClosedError", std::string("this ") + what + " is closed");
}

void register_errors(py::module_& m) {
    // Import once at module load so a broken install fails early and clearly.
    m.attr("_errors") = py::module_::import("fireside.errors");
}

}  // namespace fireside
