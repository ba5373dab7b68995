#include "backend.h"

#include "errors.h"
#include "logging.h"
#include "remote.h"
#include "threads.h"

#include <ggml-backend.h>
#include <ggml-backend-impl.h>
#include <llama.h>
#ifdef FIRESIDE_HAVE_RPC
#include <ggml-rpc.h>
#endif

#include <pybind11/stl.h>

#ifdef FIRESIDE_BACKEND_DL
#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#endif
#endif

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
    std::string backend;
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
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    d.backend = reg != nullptr ? ggml_backend_reg_name(reg) : "";
#ifdef FIRESIDE_RPC_RECOVERABLE
    try {
        ggml_backend_dev_memory(dev, &d.memory_free, &d.memory_total);
    } catch (const RemoteError&) {
        d.memory_free = d.memory_total = 0;  // a worker that went away: listed, memory unknown
    }
#else
    ggml_backend_dev_memory(dev, &d.memory_free, &d.memory_total);
#endif
    return d;
}

std::vector<Device> list_devices() {
    std::vector<Device> out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) out.push_back(describe(ggml_backend_dev_get(i)));
    return out;
}

#ifdef FIRESIDE_HAVE_RPC
std::mutex rpc_mutex;

// Register the worker at ``endpoint``; returns its devices (a worker may serve several).
const RpcApi& require_rpc() {
    const RpcApi* api = rpc_api();
    if (api == nullptr) raise_remote_error("this fireside build has no RPC backend");
    return *api;
}

std::vector<Device> rpc_add_server(const std::string& endpoint) {
    const RpcApi* api = &require_rpc();
    ggml_backend_reg_t reg = nullptr;
    std::string failure;
    {
        LogCapture capture;
        {
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(rpc_mutex);
#ifdef FIRESIDE_RPC_RECOVERABLE
            try {
#endif
                reg = api->add_server(endpoint.c_str());
#ifdef FIRESIDE_RPC_RECOVERABLE
            } catch (const RemoteError& e) {
                failure = e.what();
            }
#endif
            if (reg != nullptr && ggml_backend_reg_dev_count(reg) > 0) {
                // Adding a known endpoint again returns the existing registry: only register once.
                bool known = false;
                for (size_t i = 0; i < ggml_backend_reg_count(); ++i) known |= ggml_backend_reg_get(i) == reg;
                if (!known) ggml_backend_register(reg);
            }
        }
        if (failure.empty()) failure = capture.reason();
    }
    flush_logs();
    if (reg == nullptr || ggml_backend_reg_dev_count(reg) == 0)
        raise_remote_error("cannot use the RPC server at " + endpoint + ": " +
                           (failure.empty() ? "it offers no devices" : failure));
    std::vector<Device> out;
    for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i) out.push_back(describe(ggml_backend_reg_dev_get(reg, i)));
    return out;
}

// The worker serves the CPU through a copy of its device that reports `mem_bytes` of memory
// (clients split layers by the memory a device reports) and hands itself to the backends it
// creates, so the server's memory queries reach it.
ggml_backend_device served_cpu;
ggml_backend_dev_t real_cpu = nullptr;
size_t served_mem = 0;

void served_memory(ggml_backend_dev_t, size_t* free, size_t* total) {
    size_t real_free = 0, real_total = 0;
    ggml_backend_dev_memory(real_cpu, &real_free, &real_total);
    *free = served_mem ? served_mem : real_free;
    *total = served_mem ? served_mem : real_total;
}

ggml_backend_t served_init(ggml_backend_dev_t, const char* params) {
    ggml_backend_t backend = ggml_backend_dev_init(real_cpu, params);
    if (backend != nullptr) backend->device = &served_cpu;
    return backend;
}

void rpc_start_server(const std::string& endpoint, const std::optional<std::string>& cache_dir, size_t n_threads,
                      size_t mem_bytes) {
    const RpcApi& api = require_rpc();
    {
        std::lock_guard<std::mutex> lock(rpc_mutex);
        if (real_cpu != nullptr) throw std::runtime_error("an RPC worker already runs in this process");
        real_cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        if (real_cpu == nullptr) throw std::runtime_error("no CPU device to serve");
        served_cpu = *real_cpu;
        served_cpu.iface.get_memory = &served_memory;
        served_cpu.iface.init_backend = &served_init;
        served_mem = mem_bytes;
    }
    ggml_backend_dev_t dev = &served_cpu;
    if (n_threads == 0) n_threads = static_cast<size_t>(physical_cores());
    py::gil_scoped_release release;
    api.start_server(endpoint.c_str(), cache_dir ? cache_dir->c_str() : nullptr, n_threads, 1, &dev);
}
#endif

#ifdef FIRESIDE_BACKEND_DL
// Portable builds install ggml's backends (each CPU variant, RPC, GPUs) as libraries next to
// this module; ggml picks the best CPU variant for the machine when loading them.
std::string module_dir() {
#ifdef _WIN32
    HMODULE self = nullptr;
    GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                       reinterpret_cast<LPCSTR>(&module_dir), &self);
    char path[MAX_PATH];
    std::string file(path, GetModuleFileNameA(self, path, MAX_PATH));
    return file.substr(0, file.find_last_of("\\/"));
#else
    Dl_info info{};
    dladdr(reinterpret_cast<void*>(&module_dir), &info);
    std::string file = info.dli_fname ? info.dli_fname : ".";
    return file.substr(0, file.find_last_of('/'));
#endif
}
#endif

}  // namespace

void register_backend(py::module_& m) {
#ifdef FIRESIDE_BACKEND_DL
    ggml_backend_load_all_from_path(module_dir().c_str());
    if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == nullptr)
        throw std::runtime_error("fireside: no CPU backend library (libggml-cpu-*) next to " + module_dir() +
                                 " suits this CPU; the installation is incomplete");
#endif
    llama_backend_init();

    py::class_<Device>(m, "Device", "A compute device that ggml can see.")
        .def_readonly("name", &Device::name)
        .def_readonly("description", &Device::description)
        .def_readonly("type", &Device::type, "One of \"cpu\", \"gpu\", \"igpu\", \"accel\".")
        .def_readonly("backend", &Device::backend, "The ggml backend serving it: \"CPU\", \"CUDA\", \"RPC\", ...")
        .def_property_readonly("remote", [](const Device& d) { return d.backend == "RPC"; },
                               "Whether it is a remote ggml RPC worker.")
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
    m.attr("RPC_PROTOCOL_VERSION") =
        py::make_tuple(RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION, RPC_PROTO_PATCH_VERSION);
    m.def("rpc_add_server", &rpc_add_server, py::arg("endpoint"),
          R"pbdoc(Register a remote ggml RPC server (``host:port``); returns its devices.

Raises ``fireside.errors.RemoteDeviceError`` (a ``ConnectionError``) when it cannot be used.)pbdoc");
    m.def("rpc_start_server", &rpc_start_server, py::arg("endpoint"), py::kw_only(),
          py::arg("cache_dir") = py::none(), py::arg("n_threads") = 0, py::arg("mem_bytes") = 0,
          R"pbdoc(Run a ggml RPC worker serving this machine's CPU on ``endpoint`` (blocks, GIL released,
until the process ends). ``n_threads`` 0 means the physical cores; ``mem_bytes`` 0 reports the
real free memory, otherwise that amount (clients split layers by it).)pbdoc");
#else
    m.attr("RPC_PROTOCOL_VERSION") = py::make_tuple(0, 0, 0);
    m.def("rpc_add_server", [](const std::string&) -> std::vector<Device> {
        throw std::runtime_error("this fireside build has no RPC support (GGML_RPC=OFF)");
    }, py::arg("endpoint"));
    m.def("rpc_start_server", [](const std::string&, py::object, size_t, size_t) {
        throw std::runtime_error("this fireside build has no RPC support (GGML_RPC=OFF)");
    }, py::arg("endpoint"), py::kw_only(), py::arg("cache_dir") = py::none(), py::arg("n_threads") = 0,
          py::arg("mem_bytes") = 0);
#endif
}

}  // namespace fireside
