// The Context: a KV cache plus compute buffers over a Model, and the decode operation.
#pragma once

#include "lora.h"
#include "model.h"
#include "remote.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace fireside {

struct ContextOptions {
    uint32_t n_ctx = 0;
    uint32_t n_batch = 2048;
    uint32_t n_ubatch = 512;
    uint32_t n_seq_max = 1;
    int32_t n_threads = 0;
    int32_t n_threads_batch = 0;
    std::string flash_attn = "auto";
    std::string type_k = "f16";
    std::string type_v = "f16";
    bool embeddings = false;
    std::string pooling = "unspecified";
    bool offload_kqv = true;
    bool kv_unified = false;
    bool swa_full = false;
};

class Context {
public:
    Context(py::object py_model, const Model& model, const ContextOptions& options);

    void close();
    bool closed() const { return ctx_ == nullptr; }

    // The live handle, or ClosedError. Use under lock().
    llama_context* get() const;
    // Serialises users of this context; waits with the GIL released. Call with the GIL held.
    std::unique_lock<std::mutex> lock();

    const py::object& py_model() const { return py_model_; }
    const ModelPtr& model() const { return model_; }
    const ContextOptions& options() const { return options_; }

    // ValueError/IndexError unless `index` names an output row of the last decode.
    void check_output_index(int32_t index) const;
    // ValueError unless 0 <= seq_id < n_seq_max (or -1, meaning all, when allow_all).
    void check_seq(llama_seq_id seq_id, bool allow_all = false) const;
    // After a state restore the last decode's outputs no longer describe the cache.
    void forget_outputs() { outputs_.clear(); n_outputs_ = 0; }

    void decode(const std::vector<llama_token>& tokens, const py::object& positions, const py::object& seq_ids,
                const py::object& logits);

    void cancel() { cancel_.store(true); }
    void reset_cancel() { cancel_.store(false); }
    bool cancelled() const { return cancel_.load(); }

    void set_lora(const std::vector<std::pair<const LoraAdapter*, float>>& adapters);

    uint64_t n_decode_calls = 0;
    uint64_t n_tokens_decoded = 0;

private:
    static bool abort_requested(void* flag);

    ModelPtr model_;
    py::object py_model_;
    ContextOptions options_;
    std::unique_ptr<llama_context, QuietFree<llama_free>> ctx_;
    std::string remote_failure_;  // set once a remote (RPC) device was lost: the context is unusable
    std::mutex mutex_;
    std::atomic<bool> cancel_{false};
    std::vector<std::shared_ptr<llama_adapter_lora>> loras_;  // applied adapters stay alive

    // Reused batch storage: no allocation per decode.
    std::vector<llama_token> tokens_;
    std::vector<llama_pos> pos_;
    std::vector<int32_t> n_seq_id_;
    std::vector<llama_seq_id> seq_;
    std::vector<llama_seq_id*> seq_ptrs_;
    std::vector<int8_t> outputs_;  // of the last successful decode
    int32_t n_outputs_ = 0;
};

void register_context(py::module_& m);

}  // namespace fireside
