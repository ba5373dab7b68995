// The Sampler: a llama.cpp sampler chain built stage by stage.
#pragma once

#include "model.h"

#include <pybind11/pybind11.h>

namespace fireside {

namespace py = pybind11;

void register_sampler(py::module_& m);

}  // namespace fireside
