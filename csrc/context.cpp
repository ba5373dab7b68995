#include "context.h"

#include "compute_thread.h"
#include "errors.h"
#include "logging.h"
#include "threads.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace fireside {

namespace {

llama_flash_attn_type parse_flash_attn(const std::string& s) {
    if (s == "auto") return LLAMA_FLASH_ATTN_TYPE_AUTO;
    if (s == "on" || s == "enabled") return LLAMA_FLASH_ATTN_TYPE_ENABLED;
    if (s == "off" || s == "disabled") return LLAMA_FLASH_ATTN_TYPE_DISABLED;
    throw py::value_error("flash_attn must be 'auto', 'on' or 'off', got '" + s + "'");
}

ggml_type parse_cache_type(const char* what, const std::string& s) {
    static const ggml_type allowed[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                        GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_IQ4_NL, GGML_TYPE_Q5_0,
                                        GGML_TYPE_Q5_1};
    std::string names;
    for (ggml_type t : allowed) {
        if (s == ggml_type_name(t)) return t;
        names += std::string(names.empty() ? "" : ", ") + ggml_type_name(t);
    }
    throw py::value_error(std::string(what) + " must be one of " + names + ", got '" + s + "'");
}

enum llama_pooling_type parse_pooling(const std::string& s) {
    static const std::map<std::string, enum llama_pooling_type> names = {
        {"unspecified", LLAMA_POOLING_TYPE_UNSPECIFIED}, {"none", LLAMA_POOLING_TYPE_NONE},
        {"mean", LLAMA_POOLING_TYPE_MEAN}, {"cls", LLAMA_POOLING_TYPE_CLS},
        {"last", LLAMA_POOLING_TYPE_LAST}, {"rank", LLAMA_POOLING_TYPE_RANK}};
    auto it = names.find(s);
    if (it == names.end())
        throw py::value_error("pooling must be unspecified, none, mean, cls, last or rank, got '" + s + "'");
    return it->second;
}

std::string pooling_name(enum llama_pooling_type t) {
    switch (t) {
        case LLAMA_POOLING_TYPE_NONE: return "none";
        case LLAMA_POOLING_TYPE_MEAN: return "mean";
        case LLAMA_POOLING_TYPE_CLS: return "cls";
        case LLAMA_POOLING_TYPE_LAST: return "last";
        case LLAMA_POOLING_TYPE_RANK: return "rank";
        default: return "unspecified";
    }
}

py::array_t<float> copy_floats(const float* data, size_t n) {
    py::array_t<float> out(static_cast<py::ssize_t>(n));
    std::copy(data, data + n, out.mutable_data());
    return out;
}

llama_memory_t memory_of(llama_context* ctx) {
    llama_memory_t mem = llama_get_memory(ctx);
    if (mem == nullptr) throw py::value_error("this context has no KV cache (memory)");
    return mem;
}

// ggml cannot run more than GGML_MAX_N_THREADS threads; 0 means "the default" where allowed.
void check_threads(const char* name, int32_t n, int32_t min) {
    if (n < min || n > GGML_MAX_N_THREADS)
        throw py::value_error(std::string(name) + " must be in [" + std::to_string(min) + ", " +
                              std::to_string(GGML_MAX_N_THREADS) + "], got " + std::to_string(n));
}

std::string fspath(const py::object& path) { return py::str(py::module_::import("os").attr("fspath")(path)); }

}  // namespace

bool Context::abort_requested(void* flag) { return static_cast<std::atomic<bool>*>(flag)->load(std::memory_order_relaxed); }

Context::Context(py::object py_model, const Model& model, const ContextOptions& o)
    : model_(model.handle()), py_model_(std::move(py_model)), options_(o) {
    if (model.vocab_only()) throw py::value_error("cannot create a Context for a vocab_only model");
    if (o.n_seq_max < 1 || o.n_seq_max > llama_max_parallel_sequences())
        throw py::value_error("n_seq_max must be in [1, " + std::to_string(llama_max_parallel_sequences()) + "]");
    if (o.n_batch < 1) throw py::value_error("n_batch must be >= 1");
    if (o.n_ubatch < 1) throw py::value_error("n_ubatch must be >= 1");
    check_threads("n_threads", o.n_threads, 0);
    check_threads("n_threads_batch", o.n_threads_batch, 0);
    // llama.cpp reserves an output row per sequence within one batch (n_batch, which it caps
    // at n_ctx) and aborts the process when there are more sequences than that.
    {
        const uint32_t n_ctx = o.n_ctx > 0 ? o.n_ctx : static_cast<uint32_t>(llama_model_n_ctx_train(model_.get()));
        const uint32_t room = std::min<uint32_t>(o.n_batch, n_ctx);
        if (o.n_seq_max > room)
            throw py::value_error("n_seq_max (" + std::to_string(o.n_seq_max) + ") must not exceed n_batch and n_ctx (" +
                                  std::to_string(room) + "): each sequence needs a place in a batch");
    }

    llama_context_params p = llama_context_default_params();
    p.n_ctx = o.n_ctx;
    p.n_batch = o.n_batch;
    p.n_ubatch = std::min(o.n_ubatch, o.n_batch);
    p.n_seq_max = o.n_seq_max;
    p.n_threads = o.n_threads > 0 ? o.n_threads : physical_cores();
    p.n_threads_batch = o.n_threads_batch > 0 ? o.n_threads_batch : p.n_threads;
    p.flash_attn_type = parse_flash_attn(o.flash_attn);
    p.type_k = parse_cache_type("type_k", o.type_k);
    p.type_v = parse_cache_type("type_v", o.type_v);
    p.embeddings = o.embeddings;
    p.pooling_type = parse_pooling(o.pooling);
    p.offload_kqv = o.offload_kqv;
    p.kv_unified = o.kv_unified;
    p.swa_full = o.swa_full;
    p.no_perf = false;
    p.abort_callback = &Context::abort_requested;
    p.abort_callback_data = &cancel_;

    std::string reason;
    llama_context* raw = call_explained([&] { return llama_init_from_model(model_.get(), p); }, reason);
    if (raw == nullptr) throw py::value_error("cannot create the context: " + (reason.empty() ? "llama.cpp refused" : reason));
    ctx_.reset(raw);
    options_.n_threads = p.n_threads;
    options_.n_threads_batch = p.n_threads_batch;
    seq_ptrs_.reserve(o.n_batch);
}

void Context::close() {
    auto guard = lock();
    ctx_.reset();
    loras_.clear();
}

llama_context* Context::get() const {
    if (!ctx_) raise_closed("Context");
    return ctx_.get();
}

std::unique_lock<std::mutex> Context::lock() {
    std::unique_lock<std::mutex> guard(mutex_, std::try_to_lock);
    if (!guard.owns_lock()) {
        py::gil_scoped_release release;
        guard.lock();
    }
    return guard;
}

void Context::check_output_index(int32_t index) const {
    if (index < 0) {
        if (n_outputs_ + index < 0)
            throw py::index_error("output index " + std::to_string(index) + " is out of range: the last decode produced " +
                                  std::to_string(n_outputs_) + " output(s)");
        return;
    }
    if (static_cast<size_t>(index) >= outputs_.size() || !outputs_[static_cast<size_t>(index)])
        throw py::index_error("batch index " + std::to_string(index) +
                              " has no output: mark it with decode(..., logits=[...])");
}

void Context::check_seq(llama_seq_id seq_id, bool allow_all) const {
    const int32_t n = static_cast<int32_t>(llama_n_seq_max(get()));
    if ((seq_id >= 0 && seq_id < n) || (allow_all && seq_id == -1)) return;
    throw py::value_error("sequence id " + std::to_string(seq_id) + " is out of range [0, " + std::to_string(n) + ")" +
                          (allow_all ? " (or -1 for all sequences)" : ""));
}

void Context::decode(const std::vector<llama_token>& tokens, const py::object& positions, const py::object& seq_ids,
                     const py::object& logits) {
    const size_t n = tokens.size();
    auto guard = lock();
    llama_context* ctx = get();
    if (n == 0) throw py::value_error("decode() needs at least one token");
    const uint32_t n_batch = llama_n_batch(ctx);
    if (n > n_batch)
        throw py::value_error("batch of " + std::to_string(n) + " tokens exceeds n_batch=" + std::to_string(n_batch) +
                              "; split it into several decode() calls");
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model_.get()));
    for (llama_token t : tokens) {
        if (t < 0 || t >= n_vocab)
            throw py::value_error("token id " + std::to_string(t) + " is out of range [0, " + std::to_string(n_vocab) + ")");
    }

    // Sequence ids: one for all tokens, or one per token.
    const int32_t n_seq_max = static_cast<int32_t>(llama_n_seq_max(ctx));
    seq_.assign(n, 0);
    if (py::isinstance<py::int_>(seq_ids)) {
        std::fill(seq_.begin(), seq_.end(), seq_ids.cast<llama_seq_id>());
    } else {
        auto ids = seq_ids.cast<std::vector<llama_seq_id>>();
        if (ids.size() != n)
            throw py::value_error("seq_ids has " + std::to_string(ids.size()) + " entries for " + std::to_string(n) + " tokens");
        seq_ = std::move(ids);
    }
    for (llama_seq_id s : seq_) {
        if (s < 0 || s >= n_seq_max)
            throw py::value_error("sequence id " + std::to_string(s) + " is out of range [0, " + std::to_string(n_seq_max) + ")");
    }

    // Positions: given, or continuing each sequence after its last cached position.
    llama_memory_t mem = llama_get_memory(ctx);
    std::map<llama_seq_id, llama_pos> before;  // last position per touched sequence
    for (llama_seq_id s : seq_) {
        if (!before.count(s)) before[s] = mem ? llama_memory_seq_pos_max(mem, s) : -1;
    }
    pos_.resize(n);
    if (positions.is_none()) {
        std::map<llama_seq_id, llama_pos> next;
        for (auto& [s, p] : before) next[s] = p + 1;
        for (size_t i = 0; i < n; ++i) pos_[i] = next[seq_[i]]++;
    } else {
        auto given = positions.cast<std::vector<llama_pos>>();
        if (given.size() != n)
            throw py::value_error("positions has " + std::to_string(given.size()) + " entries for " + std::to_string(n) + " tokens");
        for (llama_pos p : given) {
            if (p < 0) throw py::value_error("positions must be >= 0");
        }
        pos_ = std::move(given);
    }
    const uint32_t n_ctx_seq = llama_n_ctx_seq(ctx);
    for (size_t i = 0; i < n; ++i) {
        if (static_cast<uint32_t>(pos_[i]) >= n_ctx_seq) {
            py::dict info;
            info["n_ctx"] = n_ctx_seq;
            info["n_tokens"] = static_cast<int64_t>(pos_[i]) + 1;
            raise_error("ContextFullError",
                        "the context is full: position " + std::to_string(pos_[i]) + " of sequence " +
                            std::to_string(seq_[i]) + " does not fit n_ctx=" + std::to_string(n_ctx_seq),
                        info);
        }
    }

    // Outputs: given, or the last token only.
    outputs_.assign(n, 0);
    if (logits.is_none()) {
        outputs_[n - 1] = 1;
    } else {
        auto flags = logits.cast<std::vector<bool>>();
        if (flags.size() != n)
            throw py::value_error("logits has " + std::to_string(flags.size()) + " entries for " + std::to_string(n) + " tokens");
        for (size_t i = 0; i < n; ++i) outputs_[i] = flags[i] ? 1 : 0;
    }

    tokens_ = tokens;
    n_seq_id_.assign(n, 1);
    seq_ptrs_.resize(n);
    for (size_t i = 0; i < n; ++i) seq_ptrs_[i] = &seq_[i];
    llama_batch batch{};
    batch.n_tokens = static_cast<int32_t>(n);
    batch.token = tokens_.data();
    batch.pos = pos_.data();
    batch.n_seq_id = n_seq_id_.data();
    batch.seq_id = seq_ptrs_.data();
    batch.logits = outputs_.data();

    if (!remote_failure_.empty()) raise_remote_error(remote_failure_);
    int32_t rc = 0;
    std::string reason;
    {
        py::gil_scoped_release release;
        run_on_compute_thread([&] {
            LogCapture capture;  // on the thread llama.cpp logs from
#ifdef FIRESIDE_RPC_RECOVERABLE
            try {
#endif
                if (!cancel_.load()) rc = llama_decode(ctx, batch);
                else rc = 2;
                // Callers read the outputs next anyway; synchronising here also books this
                // batch in llama.cpp's perf counters as its own (prompt vs one-token eval).
                if (rc == 0) llama_synchronize(ctx);
#ifdef FIRESIDE_RPC_RECOVERABLE
            } catch (const RemoteError& e) {
                // The KV cache now lives partly on a worker that is gone: nothing to roll back.
                remote_failure_ = e.what();
                rc = -100;
            }
#endif
            if (rc != 0 && rc != 1 && rc != -1 && mem != nullptr && remote_failure_.empty()) {
                // Aborted or failed midway: drop the ubatches that made it into the cache.
                for (auto& [s, p] : before) llama_memory_seq_rm(mem, s, p + 1, -1);
            }
            reason = capture.reason();
        });
    }
    flush_logs();
    if (rc == 0) {
        n_outputs_ = static_cast<int32_t>(std::count(outputs_.begin(), outputs_.end(), 1));
        n_decode_calls += 1;
        n_tokens_decoded += n;
        return;
    }
    outputs_.clear();
    n_outputs_ = 0;
    if (!remote_failure_.empty()) raise_remote_error(remote_failure_);
    if (rc == 2) raise_error("GenerationCancelled", "decode was cancelled");
    if (rc == 1) {
        py::dict info;
        info["n_ctx"] = llama_n_ctx(ctx);
        info["n_tokens"] = static_cast<int64_t>(n);
        raise_error("ContextFullError",
                    "the KV cache has no room for a batch of " + std::to_string(n) + " tokens (n_ctx=" +
                        std::to_string(llama_n_ctx(ctx)) + ")",
                    info);
    }
    py::dict info;
    info["code"] = rc;
    raise_error("DecodeError", "llama_decode failed (code " + std::to_string(rc) + ")" + (reason.empty() ? "" : ": " + reason),
                info);
}

void Context::set_lora(const std::vector<std::pair<const LoraAdapter*, float>>& adapters) {
    std::vector<std::shared_ptr<llama_adapter_lora>> keep;
    std::vector<llama_adapter_lora*> raw;
    std::vector<float> scales;
    for (auto& [adapter, scale] : adapters) {
        keep.push_back(adapter->handle());
        raw.push_back(keep.back().get());
        scales.push_back(scale);
    }
    auto guard = lock();
    if (llama_set_adapters_lora(get(), raw.data(), raw.size(), scales.data()) != 0)
        throw py::value_error("llama.cpp rejected the LoRA adapters (do they belong to this model?)");
    loras_ = std::move(keep);
}

namespace {

struct Perf {
    double t_load_ms, t_prompt_eval_ms, t_eval_ms;
    int64_t n_prompt_eval, n_eval, n_decode_calls, n_tokens_decoded;
};

py::tuple logprobs(Context& self, int32_t index, llama_token token, int top_n) {
    auto guard = self.lock();
    llama_context* ctx = self.get();
    self.check_output_index(index);
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(self.model().get()));
    if (token < 0 || token >= n_vocab) throw py::value_error("token id " + std::to_string(token) + " is out of range");
    if (top_n < 0) throw py::value_error("top_n must be >= 0");
    const float* x = llama_get_logits_ith(ctx, index);
    if (x == nullptr) throw py::index_error("no logits at index " + std::to_string(index));
    // A softmax and a partial sort over the whole vocabulary: without the GIL.
    double log_z = 0.0;
    std::vector<int32_t> ids;
    size_t k = 0;
    {
        py::gil_scoped_release release;
        float max = *std::max_element(x, x + n_vocab);
        double sum = 0.0;
        for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(x[i] - max));
        log_z = static_cast<double>(max) + std::log(sum);
        if (top_n > 0) {
            ids.resize(static_cast<size_t>(n_vocab));
            std::iota(ids.begin(), ids.end(), 0);
            k = std::min<size_t>(static_cast<size_t>(top_n), ids.size());
            std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                              [x](int32_t a, int32_t b) { return x[a] > x[b]; });
        }
    }
    py::list top;
    for (size_t i = 0; i < k; ++i) top.append(py::make_tuple(ids[i], static_cast<double>(x[ids[i]]) - log_z));
    return py::make_tuple(static_cast<double>(x[token]) - log_z, top);
}

}  // namespace

void register_context(py::module_& m) {
    py::class_<Perf>(m, "Perf", "llama.cpp's context counters plus fireside's own.")
        .def_readonly("t_load_ms", &Perf::t_load_ms)
        .def_readonly("t_prompt_eval_ms", &Perf::t_prompt_eval_ms)
        .def_readonly("t_eval_ms", &Perf::t_eval_ms)
        .def_readonly("n_prompt_eval", &Perf::n_prompt_eval, "Tokens evaluated in batches of more than one token.")
        .def_readonly("n_eval", &Perf::n_eval, "Tokens evaluated one at a time.")
        .def_readonly("n_decode_calls", &Perf::n_decode_calls, "Successful decode calls.")
        .def_readonly("n_tokens_decoded", &Perf::n_tokens_decoded, "Tokens passed to successful decode calls.")
        .def("__repr__", [](const Perf& p) {
            return "<Perf decode_calls=" + std::to_string(p.n_decode_calls) +
                   " tokens_decoded=" + std::to_string(p.n_tokens_decoded) + ">";
        });

    py::class_<Context>(m, "Context",
                        "An inference context (KV cache and compute buffers) over a Model it keeps alive.\n\n"
                        "All methods lock the context, so calls from several threads are serialised; "
                        "decode releases the GIL.")
        .def(py::init([](const py::object& model, uint32_t n_ctx, uint32_t n_batch, uint32_t n_ubatch,
                         uint32_t n_seq_max, int32_t n_threads, int32_t n_threads_batch, const std::string& flash_attn,
                         const std::string& type_k, const std::string& type_v, bool embeddings,
                         const std::string& pooling, bool offload_kqv, bool kv_unified, bool swa_full) {
                 ContextOptions o{n_ctx,  n_batch,    n_ubatch, n_seq_max, n_threads,   n_threads_batch, flash_attn,
                                  type_k, type_v, embeddings, pooling,  offload_kqv, kv_unified, swa_full};
                 return new Context(model, model.cast<const Model&>(), o);
             }),
             py::arg("model"), py::kw_only(), py::arg("n_ctx") = 0, py::arg("n_batch") = 2048,
             py::arg("n_ubatch") = 512, py::arg("n_seq_max") = 1, py::arg("n_threads") = 0,
             py::arg("n_threads_batch") = 0, py::arg("flash_attn") = "auto", py::arg("type_k") = "f16",
             py::arg("type_v") = "f16", py::arg("embeddings") = false, py::arg("pooling") = "unspecified",
             py::arg("offload_kqv") = true, py::arg("kv_unified") = false, py::arg("swa_full") = false,
             R"pbdoc(``n_ctx=0`` takes the model's trained context; ``n_threads=0`` the physical cores.)pbdoc")
        .def("close", &Context::close)
        .def("__enter__", [](Context& self) -> Context& { return self; }, py::return_value_policy::reference)
        .def("__exit__", [](Context& self, const py::args&) { self.close(); })
        .def_property_readonly("closed", &Context::closed)
        .def_property_readonly("model", [](const Context& self) { return self.py_model(); })
        .def_property_readonly("n_ctx", [](Context& self) { return llama_n_ctx(self.get()); })
        .def_property_readonly("n_ctx_seq", [](Context& self) { return llama_n_ctx_seq(self.get()); },
                               "Context available to each sequence.")
        .def_property_readonly("n_batch", [](Context& self) { return llama_n_batch(self.get()); })
        .def_property_readonly("n_ubatch", [](Context& self) { return llama_n_ubatch(self.get()); })
        .def_property_readonly("n_seq_max", [](Context& self) { return llama_n_seq_max(self.get()); })
        .def_property_readonly("n_threads", [](Context& self) { auto g = self.lock(); return llama_n_threads(self.get()); })
        .def_property_readonly("n_threads_batch",
                               [](Context& self) { auto g = self.lock(); return llama_n_threads_batch(self.get()); })
        .def(
            "set_threads",
            [](Context& self, int32_t n, int32_t nb) {
                check_threads("n_threads", n, 1);
                check_threads("n_threads_batch", nb, 1);
                auto g = self.lock();
                llama_set_n_threads(self.get(), n, nb);
            },
            py::arg("n_threads"), py::arg("n_threads_batch"))
        .def_property_readonly("flash_attn", [](const Context& self) { return self.options().flash_attn; })
        .def_property_readonly("type_k", [](const Context& self) { return self.options().type_k; })
        .def_property_readonly("type_v", [](const Context& self) { return self.options().type_v; })
        .def_property(
            "embeddings", [](const Context& self) { return self.options().embeddings; },
            [](Context& self, bool value) {
                auto g = self.lock();
                llama_set_embeddings(self.get(), value);
                const_cast<ContextOptions&>(self.options()).embeddings = value;
            })
        .def_property_readonly("pooling", [](Context& self) { return pooling_name(llama_pooling_type(self.get())); })
        .def("decode", &Context::decode, py::arg("tokens"), py::kw_only(), py::arg("positions") = py::none(),
             py::arg("seq_ids") = 0, py::arg("logits") = py::none(),
             R"pbdoc(Evaluate a batch (GIL released).

``positions=None`` continues each sequence after its last cached position. ``seq_ids`` gives one
sequence per token (or one for all). ``logits`` marks the batch indices whose logits/embeddings are
kept (default: the last only). Raises ValueError for an empty batch, a batch over n_batch, bad token
or sequence ids; ContextFullError when the KV cache has no room; GenerationCancelled after cancel().
On failure the cache holds no part of the batch.)pbdoc")
        .def(
            "logits",
            [](Context& self, int32_t index) {
                auto g = self.lock();
                llama_context* ctx = self.get();
                self.check_output_index(index);
                const float* x = llama_get_logits_ith(ctx, index);
                if (x == nullptr) throw py::index_error("no logits at index " + std::to_string(index));
                return copy_floats(x, static_cast<size_t>(llama_vocab_n_tokens(llama_model_get_vocab(self.model().get()))));
            },
            py::arg("index") = -1, "A copy of the logits at batch ``index`` of the last decode (-1: last output).")
        .def("logprobs", &logprobs, py::arg("index"), py::arg("token"), py::arg("top_n") = 0,
             "log-softmax of the raw logits at ``index``: ``token``'s and the ``top_n`` best as (id, logprob).")
        .def(
            "embedding",
            [](Context& self, int32_t index) {
                auto g = self.lock();
                llama_context* ctx = self.get();
                if (!self.options().embeddings) throw py::value_error("create the Context with embeddings=True");
                self.check_output_index(index);
                const float* x = llama_get_embeddings_ith(ctx, index);
                if (x == nullptr) throw py::index_error("no embedding at index " + std::to_string(index));
                return copy_floats(x, static_cast<size_t>(llama_model_n_embd_out(self.model().get())));
            },
            py::arg("index") = -1, "The (unpooled) embedding at batch ``index`` (needs embeddings=True).")
        .def(
            "seq_embedding",
            [](Context& self, llama_seq_id seq) {
                auto g = self.lock();
                llama_context* ctx = self.get();
                if (!self.options().embeddings) throw py::value_error("create the Context with embeddings=True");
                if (llama_pooling_type(ctx) == LLAMA_POOLING_TYPE_NONE)
                    throw py::value_error("pooling is 'none': use embedding(index) instead");
                const float* x = llama_get_embeddings_seq(ctx, seq);
                if (x == nullptr) throw py::index_error("no pooled embedding for sequence " + std::to_string(seq));
                return copy_floats(x, static_cast<size_t>(llama_model_n_embd_out(self.model().get())));
            },
            py::arg("seq_id"), "The pooled embedding of a sequence (needs embeddings=True and pooling).")
        // memory
        .def("memory_clear", [](Context& self) { auto g = self.lock(); llama_memory_clear(memory_of(self.get()), true); },
             "Forget every sequence.")
        .def(
            "seq_rm",
            [](Context& self, llama_seq_id s, llama_pos p0, llama_pos p1) {
                auto g = self.lock();
                self.check_seq(s, true);
                return llama_memory_seq_rm(memory_of(self.get()), s, p0, p1);
            },
            py::arg("seq_id"), py::arg("p0") = -1, py::arg("p1") = -1,
            "Remove positions [p0, p1) of a sequence (-1: open end; seq -1: all sequences).")
        .def(
            "seq_cp",
            [](Context& self, llama_seq_id src, llama_seq_id dst, llama_pos p0, llama_pos p1) {
                auto g = self.lock();
                int32_t n = static_cast<int32_t>(llama_n_seq_max(self.get()));
                if (src < 0 || src >= n || dst < 0 || dst >= n)
                    throw py::value_error("sequence ids must be in [0, " + std::to_string(n) + ")");
                llama_memory_seq_cp(memory_of(self.get()), src, dst, p0, p1);
            },
            py::arg("src"), py::arg("dst"), py::arg("p0") = -1, py::arg("p1") = -1)
        .def(
            "seq_keep",
            [](Context& self, llama_seq_id s) {
                auto g = self.lock();
                self.check_seq(s);
                // llama_memory_seq_keep only touches the stream of `s` when each sequence has
                // its own (kv_unified=False); removing every other sequence works for both.
                llama_memory_t mem = memory_of(self.get());
                const auto n = static_cast<llama_seq_id>(llama_n_seq_max(self.get()));
                for (llama_seq_id other = 0; other < n; ++other) {
                    if (other != s) llama_memory_seq_rm(mem, other, -1, -1);
                }
            },
            py::arg("seq_id"))
        .def(
            "seq_add",
            [](Context& self, llama_seq_id s, llama_pos p0, llama_pos p1, llama_pos delta) {
                auto g = self.lock();
                self.check_seq(s);
                llama_memory_t mem = memory_of(self.get());
                if (!llama_memory_can_shift(mem)) throw py::value_error("this model's cache cannot shift positions");
                llama_memory_seq_add(mem, s, p0, p1, delta);
            },
            py::arg("seq_id"), py::arg("p0"), py::arg("p1"), py::arg("delta"),
            "Shift positions [p0, p1) by ``delta``.")
        .def(
            "seq_pos_min",
            [](Context& self, llama_seq_id s) { auto g = self.lock(); self.check_seq(s); return llama_memory_seq_pos_min(memory_of(self.get()), s); },
            py::arg("seq_id"), "Smallest cached position, or -1 when the sequence is empty.")
        .def(
            "seq_pos_max",
            [](Context& self, llama_seq_id s) { auto g = self.lock(); self.check_seq(s); return llama_memory_seq_pos_max(memory_of(self.get()), s); },
            py::arg("seq_id"), "Largest cached position, or -1 when the sequence is empty.")
        .def_property_readonly("can_shift", [](Context& self) {
            auto g = self.lock();
            return llama_memory_can_shift(memory_of(self.get()));
        })
        // state
        .def("state_get",
             [](Context& self) {
                 auto g = self.lock();
                 llama_context* ctx = self.get();
                 std::string buf;
                 {
                     py::gil_scoped_release release;
                     buf.resize(llama_state_get_size(ctx));
                     buf.resize(llama_state_get_data(ctx, reinterpret_cast<uint8_t*>(buf.data()), buf.size()));
                 }
                 return py::bytes(buf);
             })
        .def(
            "state_set",
            [](Context& self, const py::bytes& data) {
                std::string_view view = data;
                auto g = self.lock();
                self.forget_outputs();
                llama_context* ctx = self.get();
                size_t read = 0;
                {
                    py::gil_scoped_release release;  // `data` stays alive: the caller holds it
                    read = llama_state_set_data(ctx, reinterpret_cast<const uint8_t*>(view.data()), view.size());
                }
                if (read == 0) throw py::value_error("invalid state data for this context");
            },
            py::arg("data"))
        .def(
            "state_save",
            [](Context& self, const py::object& path, const std::vector<llama_token>& tokens) {
                std::string p = fspath(path);
                auto g = self.lock();
                llama_context* ctx = self.get();
                bool saved = false;
                {
                    py::gil_scoped_release release;  // file I/O
                    saved = llama_state_save_file(ctx, p.c_str(), tokens.data(), tokens.size());
                }
                if (!saved) raise_os_error(PyExc_OSError, EIO, p);
            },
            py::arg("path"), py::arg("tokens") = std::vector<llama_token>{})
        .def(
            "state_load",
            [](Context& self, const py::object& path) {
                std::string p = fspath(path);
                auto g = self.lock();
                llama_context* ctx = self.get();
                std::vector<llama_token> tokens(llama_n_ctx(ctx));
                size_t count = 0;
                self.forget_outputs();
                bool loaded = false;
                {
                    py::gil_scoped_release release;  // file I/O
                    loaded = llama_state_load_file(ctx, p.c_str(), tokens.data(), tokens.size(), &count);
                }
                if (!loaded) throw py::value_error("cannot restore the state file " + p + " into this context");
                tokens.resize(count);
                return tokens;
            },
            py::arg("path"), "Restore a state file; returns the tokens saved with it.")
        .def(
            "seq_state_get",
            [](Context& self, llama_seq_id s) {
                auto g = self.lock();
                self.check_seq(s);
                llama_context* ctx = self.get();
                std::string buf;
                {
                    py::gil_scoped_release release;
                    buf.resize(llama_state_seq_get_size(ctx, s));
                    buf.resize(llama_state_seq_get_data(ctx, reinterpret_cast<uint8_t*>(buf.data()), buf.size(), s));
                }
                return py::bytes(buf);
            },
            py::arg("seq_id"))
        .def(
            "seq_state_set",
            [](Context& self, const py::bytes& data, llama_seq_id s) {
                std::string_view view = data;
                auto g = self.lock();
                self.check_seq(s);
                self.forget_outputs();
                size_t read = 0;
                std::string reason;
                llama_context* ctx = self.get();
                {
                    py::gil_scoped_release release;  // `data` stays alive: the caller holds it
                    LogCapture capture;
                    read = llama_state_seq_set_data(ctx, reinterpret_cast<const uint8_t*>(view.data()), view.size(), s);
                    reason = capture.reason();
                }
                flush_logs();
                if (read == 0)
                    throw py::value_error("invalid sequence state data for this context" + (reason.empty() ? "" : ": " + reason));
            },
            py::arg("data"), py::arg("seq_id"))
        .def(
            "seq_state_save",
            [](Context& self, const py::object& path, llama_seq_id s, const std::vector<llama_token>& tokens) {
                std::string p = fspath(path);
                auto g = self.lock();
                self.check_seq(s);
                llama_context* ctx = self.get();
                size_t written = 0;
                {
                    py::gil_scoped_release release;  // file I/O
                    written = llama_state_seq_save_file(ctx, p.c_str(), s, tokens.data(), tokens.size());
                }
                if (written == 0) raise_os_error(PyExc_OSError, EIO, p);
            },
            py::arg("path"), py::arg("seq_id"), py::arg("tokens") = std::vector<llama_token>{})
        .def(
            "seq_state_load",
            [](Context& self, const py::object& path, llama_seq_id s) {
                std::string p = fspath(path);
                auto g = self.lock();
                self.check_seq(s);
                llama_context* ctx = self.get();
                std::vector<llama_token> tokens(llama_n_ctx(ctx));
                size_t count = 0, read = 0;
                self.forget_outputs();
                std::string reason;
                {
                    py::gil_scoped_release release;  // file I/O
                    LogCapture capture;
                    read = llama_state_seq_load_file(ctx, p.c_str(), s, tokens.data(), tokens.size(), &count);
                    reason = capture.reason();
                }
                flush_logs();
                if (read == 0)
                    throw py::value_error("cannot restore the sequence state file " + p + " into this context" +
                                          (reason.empty() ? "" : ": " + reason));
                tokens.resize(count);
                return tokens;
            },
            py::arg("path"), py::arg("seq_id"))
        // control
        .def("cancel", &Context::cancel, "Abort the running decode and any later one until reset_cancel() (thread-safe).")
        .def("reset_cancel", &Context::reset_cancel)
        .def_property_readonly("cancelled", &Context::cancelled)
        .def(
            "set_lora",
            [](Context& self, const std::vector<std::pair<const LoraAdapter*, float>>& adapters) { self.set_lora(adapters); },
            py::arg("adapters"), "Apply these (adapter, scale) pairs (an empty list removes all).")
        .def("perf",
             [](Context& self) {
                 auto g = self.lock();
                 llama_synchronize(self.get());  // llama.cpp books a decode's tokens on synchronisation
                 llama_perf_context_data d = llama_perf_context(self.get());
                 return Perf{d.t_load_ms, d.t_p_eval_ms, d.t_eval_ms, d.n_p_eval, d.n_eval,
                             static_cast<int64_t>(self.n_decode_calls), static_cast<int64_t>(self.n_tokens_decoded)};
             })
        .def("reset_perf", [](Context& self) {
            auto g = self.lock();
            llama_perf_context_reset(self.get());
            self.n_decode_calls = 0;
            self.n_tokens_decoded = 0;
        })
        .def("__repr__", [](Context& self) {
            if (self.closed()) return std::string("<fireside._core.Context closed>");
            return "<fireside._core.Context n_ctx=" + std::to_string(llama_n_ctx(self.get())) +
                   " n_seq_max=" + std::to_string(llama_n_seq_max(self.get())) + ">";
        });
}

}  // namespace fireside
