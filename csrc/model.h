// The Model: one loaded GGUF (weights, vocabulary, metadata) and its LoRA adapters.
#pragma once

#include <pybind11/pybind11.h>

#include <llama.h>

#include <memory>
#include <string>

namespace fireside {

namespace py = pybind11;

// Shared ownership: Contexts, Samplers and adapters keep the llama_model alive after the
// Python Model is closed, so closing in any order never frees memory still in use.
using ModelPtr = std::shared_ptr<llama_model>;

class Model {
public:
    Model(const std::string& path, int n_gpu_layers, int main_gpu, const py::object& devices, bool use_mmap,
          bool use_mlock, bool vocab_only, bool check_tensors, const py::object& kv_overrides,
          const py::object& progress);

    void close() { model_.reset(); }
    bool closed() const { return model_ == nullptr; }

    // The live handle, or ClosedError.
    const ModelPtr& handle() const;
    const llama_vocab* vocab() const { return llama_model_get_vocab(handle().get()); }
    const std::string& path() const { return path_; }
    bool vocab_only() const { return vocab_only_; }

    // ValueError unless 0 <= token < n_vocab.
    void check_token(llama_token token) const;

private:
    ModelPtr model_;
    std::string path_;
    bool vocab_only_;
};

void register_model(py::module_& m);

}  // namespace fireside
