// fireside._core: the native layer. Each concept registers itself from its own file.
#include <pybind11/pybind11.h>

#include "backend.h"
#include "compute_thread.h"
#include "context.h"
#include "errors.h"
#include "json_schema.h"
#include "logging.h"
#include "lora.h"
#include "model.h"
#include "remote.h"
#include "sampler.h"
#include "wakeup.h"

PYBIND11_MODULE(_core, m) {
    m.doc() = "fireside's native llama.cpp bindings: load, tokenize, decode, sample.";
    fireside::register_errors(m);
    fireside::register_remote(m);
    fireside::register_logging(m);
    fireside::register_backend(m);
    fireside::register_compute_thread(m);
    fireside::register_wakeup(m);
    fireside::register_model(m);
    fireside::register_lora(m);
    fireside::register_context(m);
    fireside::register_sampler(m);
    fireside::register_json_schema(m);
}
