// JSON Schema -> GBNF by llama.cpp's own converter (common/json-schema-to-grammar.cpp),
// the one llama-server uses for response_format.
#pragma once

#include <pybind11/pybind11.h>

namespace fireside {

namespace py = pybind11;

void register_json_schema(py::module_& m);

}  // namespace fireside
