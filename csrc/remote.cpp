#include "remote.h"

#include "errors.h"

namespace fireside {

const RpcApi* rpc_api() {
#ifdef FIRESIDE_HAVE_RPC
    static const RpcApi api = [] {
        RpcApi a;
#ifdef FIRESIDE_BACKEND_DL
        if (ggml_backend_reg_t reg = ggml_backend_reg_by_name("RPC")) {
            auto find = [reg](const char* name) { return ggml_backend_reg_get_proc_address(reg, name); };
            a.add_server = reinterpret_cast<decltype(a.add_server)>(find("ggml_backend_rpc_add_server"));
            a.start_server = reinterpret_cast<decltype(a.start_server)>(find("ggml_backend_rpc_start_server"));
            a.teardown_scope = reinterpret_cast<decltype(a.teardown_scope)>(find("ggml_backend_rpc_fireside_teardown_scope"));
        }
#else
        a.add_server = &ggml_backend_rpc_add_server;
        a.start_server = &ggml_backend_rpc_start_server;
#ifdef FIRESIDE_RPC_RECOVERABLE
        a.teardown_scope = &ggml_backend_rpc_fireside_teardown_scope;
#endif
#endif
        return a;
    }();
    return api.add_server != nullptr ? &api : nullptr;
#else
    return nullptr;
#endif
}

void raise_remote_error(const std::string& message) { raise_error("RemoteDeviceError", message); }

void register_remote(py::module_&) {
#ifdef FIRESIDE_RPC_RECOVERABLE
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const RemoteError& e) {
            try {
                raise_remote_error(e.what());
            } catch (py::error_already_set& err) {
                err.restore();
            }
        }
    });
#endif
}

}  // namespace fireside
