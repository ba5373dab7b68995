// Process-wide llama.cpp state: backend initialisation, system facts, devices and RPC.
#pragma once

#include <pybind11/pybind11.h>

namespace fireside {

namespace py = pybind11;

void register_backend(py::module_& m);

}  // namespace fireside
