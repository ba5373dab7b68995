// Raising fireside's typed exceptions (python/fireside/errors.py) from C++.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

namespace fireside {

namespace py = pybind11;

// Raise fireside.errors.<name>(message, **kwargs). Needs the GIL.
[[noreturn]] void raise_error(const char* name, const std::string& message,
                              const py::dict& kwargs = py::dict());

// Raise a built-in OSError subclass with errno and filename set, like open() does.
[[noreturn]] void raise_os_error(PyObject* type, int errnum, const std::string& filename);

// The error every method raises when its object was closed.
[[noreturn]] void raise_closed(const char* what);

void register_errors(py::module_& m);

}  // namespace fireside
