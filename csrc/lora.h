// A LoRA adapter loaded for one model.
#pragma once

#include "model.h"

#include <memory>
#include <string>

namespace fireside {

class LoraAdapter {
public:
    LoraAdapter(ModelPtr model, const std::string& path);

    // The live adapter, or ClosedError. Contexts copy this pointer to keep it alive.
    const std::shared_ptr<llama_adapter_lora>& handle() const;
    void close() { adapter_.reset(); }
    bool closed() const { return adapter_ == nullptr; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::shared_ptr<llama_adapter_lora> adapter_;  // its deleter holds the model alive
};

void register_lora(py::module_& m);

}  // namespace fireside
