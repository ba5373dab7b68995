#include "backend.h"

#include "errors.h"
#include "logging.h"

#include <ggml-backend.h>
#include <llama.h>
#ifdef FIRESIDE_HAVE_RPC
#include <ggml-rpc.h>
#endif

#include <pybind11/stl.h>

#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace fireside {

namespace {

struct Device {
    std::string name;
    std::string description;
    std::string type;
    size_t memory_free = 0;
    size_t memory_total = 0;
};

const char* type_name(enum ggml_backend_dev_type type) {
    switch (type) {
        case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
        default: return "unknown";
    }
}

Device describe(ggml_backend_dev_t dev) {
    Device d;
    d.name = ggml_backend_dev_name(dev);
    d.description = ggml_backend_dev_description(dev);
    d.type = type_name(ggml_backend_dev_type(dev));
    ggml_backend_dev_memory(dev, &d.memory_free, &d.memory_total);
    return d;
}

std::vector<Device> list_devices() {
    std::vector<Device> out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) out.push_back(describe(ggml_backend_dev_get(i)));
    return out;
}

#ifdef FIRESIDE_HAVE_RPC
std::mutex rpc_mutex;

Device rpc_add_server(const std::string& endpoint) {
    ggml_backend_reg_t reg = nullptr;
    size_t before = ggml_backend_dev_count();
    {
        LogCapture capture;
        py::gil_scoped_release release;
        std::lock_guard<std::mutex> lock(rpc_mutex);
        reg = ggml_backend_rpc_add_server(endpoint.c_str());
        if (reg != nullptr && ggml_backend_reg_dev_count(reg) > 0) {
            // Adding a known endpoint again returns the existing registry: only register once.
            bool known = false;
            for (size_t i = 0; i < ggml_backend_reg_count(); ++i) known |= ggml_backend_reg_get(i) == reg;
            if (!known) ggml_backend_register(reg);
        }
        if (reg == nullptr || ggml_backend_reg_dev_count(reg) == 0) {
            py::gil_scoped_acquire acquire;
            flush_logs();
            std::string why = capture.reason();
            PyErr_SetString(PyExc_ConnectionError,
                            ("cannot reach the RPC server at " + endpoint + (why.empty() ? "" : ": " + why)).c_str());
            throw py::error_already_set();
        }
    }
    flush_logs();
    (void)before;
    return describe(ggml_backend_reg_dev_get(reg, 0));
}

void rpc_start_server(const std::string& endpoint, const std::optional<std::string>& cache_dir, size_t n_threads,
                      size_t mem_bytes) {
    (void)mem_bytes;  // the pinned RPC server reports the device's own memory
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (cpu == nullptr) throw std::runtime_error("no CPU device to serve");
    py::gil_scoped_release release;
    ggml_backend_rpc_start_server(endpoint.c_str(), cache_dir ? cache_dir->c_str() : nullptr,
                                  n_threads, 1, &cpu);
}
#endif

}  // namespace

void register_backend(py::module_& m) {
    llama_backend_init();

    py::class_<Device>(m, "Device", "A compute device that ggml can see.")
        .def_readonly("name", &Device::name)
        .def_readonly("description", &Device::description)
        .def_readonly("type", &Device::type, "One of \"cpu\", \"gpu\", \"igpu\", \"accel\".")
        .def_readonly("memory_free", &Device::memory_free, "Free memory in bytes (0 when unknown).")
        .def_readonly("memory_total", &Device::memory_total, "Total memory in bytes (0 when unknown).")
        .def("__repr__", [](const Device& d) {
            return "<Device " + d.name + " (" + d.type + "): " + d.description + ">";
        });

    m.attr("LLAMA_CPP_COMMIT") = FIRESIDE_LLAMA_COMMIT;
    m.def("system_info", [] { return std::string(llama_print_system_info()); },
          "llama.cpp's description of the CPU features and backends compiled in.");
    m.def("supports_gpu_offload", &llama_supports_gpu_offload,
          "Whether this build can offload layers to a GPU (or a remote RPC device).");
    m.def("supports_rpc", &llama_supports_rpc, "Whether this build includes the ggml RPC backend.");
    m.def("supports_mmap", &llama_supports_mmap, "Whether models can be memory-mapped on this platform.");
    m.def("supports_mlock", &llama_supports_mlock, "Whether model memory can be locked in RAM here.");
    m.def("max_devices", &llama_max_devices, "The most devices llama.cpp can split one model across.");
    m.def("devices", &list_devices, "All devices ggml sees now, including registered RPC servers.");
#ifdef FIRESIDE_HAVE_RPC
    m.def("rpc_add_server", &rpc_add_server, py::arg("endpoint"),
          R"pbdoc(Register a remote ggml RPC server (``host:port``) as a device; returns it.

Raises ``ConnectionError`` when the server cannot be reached.)pbdoc");
    m.def("rpc_start_server", &rpc_start_server, py::arg("endpoint"), py::kw_only(),
          py::arg("cache_dir") = py::none(), py::arg("n_threads") = 0, py::arg("mem_bytes") = 0,
          R"pbdoc(Run a ggml RPC worker on ``endpoint`` (blocks, GIL released) until the process ends.)pbdoc");
#else
    m.def("rpc_add_server", [](const std::string&) -> Device {
        throw std::runtime_error("this fireside build has no RPC support (GGML_RPC=OFF)");
    }, py::arg("endpoint"));
    m.def("rpc_start_server", [](const std::string&, py::object, size_t, size_t) {
        throw std::runtime_error("this fireside build has no RPC support (GGML_RPC=OFF)");
    }, py::arg("endpoint"), py::kw_only(), py::arg("cache_dir") = py::none(), py::arg("n_threads") = 0,
          py::arg("mem_bytes") = 0);
#endif
}

}  // namespace fireside
