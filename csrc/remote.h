// Remote (ggml RPC) devices: a lost worker must end in a Python exception, never abort().
//
// fireside patches ggml's RPC client (vendor/patches/ggml-rpc-recoverable.patch) so that a
// failed connection throws ggml_rpc_connection_error on the calling thread. These helpers
// keep such failures out of destructors and turn them into fireside.errors.RemoteDeviceError.
#pragma once

#include <pybind11/pybind11.h>

#include <ggml-backend.h>
#ifdef FIRESIDE_HAVE_RPC
#include <ggml-rpc.h>
#endif

namespace fireside {

namespace py = pybind11;

#if defined(FIRESIDE_HAVE_RPC) && defined(GGML_RPC_FIRESIDE_RECOVERABLE)
#define FIRESIDE_RPC_RECOVERABLE 1
using RemoteError = ggml_rpc_connection_error;
#endif

// llama.cpp's RPC entry points: linked in (static build), or looked up in the RPC backend
// library (portable builds load backends at run time). Null members: not available.
struct RpcApi {
    ggml_backend_reg_t (*add_server)(const char* endpoint) = nullptr;
    void (*start_server)(const char* endpoint, const char* cache_dir, size_t n_threads, size_t n_devices,
                         ggml_backend_dev_t* devices) = nullptr;
    void (*teardown_scope)(bool enter) = nullptr;
};

// The RPC backend's entry points, or nullptr when this build has none.
const RpcApi* rpc_api();

// While one is alive, this thread ignores lost RPC connections: freeing a model or context
// whose worker is gone must not throw (it runs in destructors).
class RemoteTeardownScope {
public:
    RemoteTeardownScope() : api_(rpc_api()) {
        if (api_ && api_->teardown_scope) api_->teardown_scope(true);
    }
    ~RemoteTeardownScope() {
        if (api_ && api_->teardown_scope) api_->teardown_scope(false);
    }
    RemoteTeardownScope(const RemoteTeardownScope&) = delete;
    RemoteTeardownScope& operator=(const RemoteTeardownScope&) = delete;

private:
    const RpcApi* api_;
};

// A deleter that frees with `Free` inside a RemoteTeardownScope.
template <auto Free>
struct QuietFree {
    template <class T>
    void operator()(T* p) const {
        RemoteTeardownScope scope;
        Free(p);
    }
};

// Raise fireside.errors.RemoteDeviceError (needs the GIL).
[[noreturn]] void raise_remote_error(const std::string& message);

// Translate a lost RPC connection escaping any binding into RemoteDeviceError.
void register_remote(py::module_& m);

}  // namespace fireside
