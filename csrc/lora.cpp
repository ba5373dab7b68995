#include "lora.h"

#include "errors.h"
#include "logging.h"
#include "remote.h"

#include <cerrno>
#include <sys/stat.h>
#include <vector>

namespace fireside {

LoraAdapter::LoraAdapter(ModelPtr model, const std::string& path) : path_(path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) raise_os_error(PyExc_FileNotFoundError, ENOENT, path);
    if (S_ISDIR(st.st_mode)) raise_os_error(PyExc_IsADirectoryError, EISDIR, path);
    std::string reason;
    llama_adapter_lora* raw = call_explained([&] { return llama_adapter_lora_init(model.get(), path.c_str()); }, reason);
    if (raw == nullptr) {
        py::dict info;
        info["path"] = path;
        info["reason"] = reason;
        raise_error("ModelLoadError", "cannot load LoRA adapter " + path + ": " + reason, info);
    }
    // Free the adapter before the model it belongs to.
    adapter_ = std::shared_ptr<llama_adapter_lora>(raw, [model](llama_adapter_lora* a) { QuietFree<llama_adapter_lora_free>{}(a); });
}

const std::shared_ptr<llama_adapter_lora>& LoraAdapter::handle() const {
    if (!adapter_) raise_closed("LoraAdapter");
    return adapter_;
}

void register_lora(py::module_& m) {
    py::class_<LoraAdapter>(m, "LoraAdapter", "A LoRA adapter loaded for one model (keeps that model alive).")
        .def_property_readonly("path", &LoraAdapter::path)
        .def_property_readonly("metadata", [](const LoraAdapter& self) {
            const llama_adapter_lora* a = self.handle().get();
            py::dict out;
            std::vector<char> key(256), val(4096);
            for (int32_t i = 0; i < llama_adapter_meta_count(a); ++i) {
                if (llama_adapter_meta_key_by_index(a, i, key.data(), key.size()) < 0) continue;
                if (llama_adapter_meta_val_str_by_index(a, i, val.data(), val.size()) < 0) continue;
                out[py::str(key.data())] = py::str(val.data());
            }
            return out;
        })
        .def("close", &LoraAdapter::close)
        .def_property_readonly("closed", &LoraAdapter::closed);
}

}  // namespace fireside
