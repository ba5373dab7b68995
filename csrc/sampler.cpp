#include "sampler.h"

#include "context.h"
#include "errors.h"
#include "grammar.h"
#include "grammar_check.h"
#include "logging.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <functional>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace fireside {

namespace {

void check_finite(const char* name, double value) {
    if (!std::isfinite(value)) throw py::value_error(std::string(name) + " must be a finite number");
}

void check_unit(const char* name, double value) {
    check_finite(name, value);
    if (value < 0.0 || value > 1.0) throw py::value_error(std::string(name) + " must be in [0, 1], got " + std::to_string(value));
}

// The ranges below are fireside.generation.sampling.BOUNDS' (the one definition of the
// sampling options); tests/native/test_sampler_bounds.py checks that both sides agree.
void check_range(const char* name, double value, double lo, double hi, const char* text, bool lo_open = false) {
    check_finite(name, value);
    if (value < lo || value > hi || (lo_open && value == lo))
        throw py::value_error(std::string(name) + " must be " + text + ", got " + std::to_string(value));
}

void check_mirostat(float tau, float eta) {
    check_finite("tau", tau);
    check_finite("eta", eta);
    if (tau <= 0) throw py::value_error("tau must be > 0");
    if (eta <= 0) throw py::value_error("eta must be > 0");
}

class Sampler {
public:
    explicit Sampler(const Model& model) : model_(model.handle()) {
        llama_sampler_chain_params p = llama_sampler_chain_default_params();
        p.no_perf = true;
        chain_.reset(llama_sampler_chain_init(p));
    }

    Sampler(const Sampler& other)
        : has_mirostat_(other.has_mirostat_),
          model_(other.model_),
          grammar_stages_(other.grammar_stages_),
          only_bias_and_greedy_(other.only_bias_and_greedy_),
          bias_(other.bias_),
          n_bias_stages_(other.n_bias_stages_),
          only_bias_so_far_(other.only_bias_so_far_),
          top_k_stage_(other.top_k_stage_),
          top_k_(other.top_k_),
          after_top_k_ok_(other.after_top_k_ok_),
          has_selector_(other.has_selector_),
          chain_(llama_sampler_clone(other.get()), llama_sampler_free) {}

    llama_sampler* get() const {
        if (!chain_) raise_closed("Sampler");
        return chain_.get();
    }
    const llama_vocab* vocab() const { return llama_model_get_vocab(model_.get()); }
    int32_t n_vocab() const { return llama_vocab_n_tokens(vocab()); }

    // sample() and accept() run without the GIL: one call on a Sampler at a time.
    std::unique_lock<std::mutex> lock() const {
        std::unique_lock<std::mutex> guard(mutex_, std::try_to_lock);
        if (!guard.owns_lock()) {
            py::gil_scoped_release release;
            guard.lock();
        }
        return guard;
    }

    // `top_k`: the k of a top-k stage (see sample_top_k_first).
    void add(llama_sampler* stage, bool selects = false, bool is_grammar = false, int32_t top_k = 0) {
        auto own = lock();
        llama_sampler* chain = get();
        if (has_selector_) {
            llama_sampler_free(stage);
            throw py::value_error("the chain already ends in a selecting stage (greedy, dist or mirostat); "
                                  "add filters before it");
        }
        const std::string name = llama_sampler_name(stage);
        const bool no_op = name[0] == '?';  // "?x": a stage that does nothing
        if (name != "greedy" && name != "logit-bias" && !no_op) only_bias_and_greedy_ = false;
        const int32_t position = llama_sampler_chain_n(chain);
        if (top_k_stage_ < 0) {
            if (top_k > 0 && only_bias_so_far_ && n_bias_stages_ <= 1) top_k_stage_ = position, top_k_ = top_k;
            else if (name == "logit-bias") ++n_bias_stages_;
            else if (!no_op) only_bias_so_far_ = false;
        } else if (!no_op && !works_on_candidates(name)) {
            after_top_k_ok_ = false;
        }
        if (is_grammar) grammar_stages_.push_back(position);
        llama_sampler_chain_add(chain, stage);
        has_selector_ = selects;
    }

    // The chain's top-k stage may pick its candidates from the logits directly: only a
    // logit bias comes before it, and each stage after it reads the candidates alone.
    bool top_k_first() const { return top_k_stage_ >= 0 && after_top_k_ok_ && !has_mirostat_; }

    // -1 ("the whole context") becomes the model's trained context: llama.cpp would read it as 0.
    int32_t history_length(int32_t last_n) const {
        if (last_n != -1) return last_n;
        int32_t n = llama_model_n_ctx_train(model_.get());
        return n > 0 ? n : 4096;
    }

    llama_token sample(Context& context, int32_t index) {
        llama_sampler* chain = get();
        if (!has_selector_)
            throw py::value_error("the sampler chain has no selecting stage: end it with add_greedy() or add_dist()");
        auto own = lock();
        auto guard = context.lock();
        llama_context* ctx = context.get();
        if (context.model() != model_) throw py::value_error("this Sampler was built for another model");
        context.check_output_index(index);
        // Every path below touches the whole vocabulary (a grammar's work is bounded but not
        // small, and its fallback checks every token): without the GIL.
        std::string failure;
        llama_token token = LLAMA_TOKEN_NULL;
        {
            py::gil_scoped_release release;
            try {
                if (only_bias_and_greedy_) {
                    token = argmax(llama_get_logits_ith(ctx, index));
                    llama_sampler_accept(chain, token);
                } else {
                    if (!grammar_stages_.empty() && grammar_stages_.size() == 1 && grammar_stages_[0] == 0 && !has_mirostat_)
                        token = sample_grammar_last(ctx, index);
                    else if (top_k_first())
                        token = sample_top_k_first(ctx, index);
                    if (token == LLAMA_TOKEN_NULL) token = llama_sampler_sample(chain, ctx, index);
                }
            } catch (const GrammarFailure& e) {
                failure = e.what();
            }
        }
        if (!failure.empty()) raise_error("GrammarError", failure);
        return token;
    }

    // Accept a token chosen elsewhere. llama.cpp aborts the process when a grammar is
    // handed a token it forbids: that is a ValueError here; a grammar that cannot go on
    // (over a limit) raises GrammarError.
    void accept(llama_token token) {
        llama_sampler* chain = get();
        if (token < 0 || token >= n_vocab()) throw py::value_error("token id " + std::to_string(token) + " is out of range");
        auto own = lock();
        std::string failure;
        bool allowed = true;
        {
            py::gil_scoped_release release;
            try {
                allowed = grammar_allows(token);
                if (allowed) llama_sampler_accept(chain, token);
            } catch (const GrammarFailure& e) {
                failure = e.what();
            }
        }
        if (!failure.empty()) raise_error("GrammarError", failure);
        if (!allowed) throw py::value_error("token id " + std::to_string(token) + " is not allowed by the grammar here");
    }

    // Logit biases of the chain's logit-bias stages, summed per token.
    void add_bias(const std::vector<llama_logit_bias>& items) {
        for (const auto& item : items) {
            auto it = std::find_if(bias_.begin(), bias_.end(), [&](const auto& b) { return b.first == item.token; });
            if (it == bias_.end()) bias_.emplace_back(item.token, item.bias);
            else it->second += item.bias;
        }
    }

    // True when every grammar stage accepts `token` now.
    bool grammar_allows(llama_token token) const {
        for (int32_t i : grammar_stages_) {
            llama_token_data one{token, 0.0f, 0.0f};
            llama_token_data_array arr{&one, 1, -1, false};
            llama_sampler_apply(llama_sampler_chain_get(chain_.get(), i), &arr);
            if (!std::isfinite(one.logit)) return false;
        }
        return true;
    }

    bool has_mirostat_ = false;

    void close() {
        auto own = lock();
        chain_.reset();
    }

private:
    // The lowest index of the largest value: the maximum of each block of 256 in 16 lanes
    // the compiler vectorises, then a search of the winning block. std::max_element carries
    // the index through every step and runs five times slower over a vocabulary. NaN
    // compares false everywhere, as there; only an all-NaN block leaves the fallback.
    static llama_token first_max(const float* x, int32_t n) {
        constexpr int32_t block_size = 256, lanes = 16;
        float best = -INFINITY;
        int32_t block = 0, i = 0;
        for (; i + block_size <= n; i += block_size) {
            float m[lanes];
            for (int32_t j = 0; j < lanes; ++j) m[j] = x[i + j];
            for (int32_t k = i + lanes; k < i + block_size; k += lanes) {
                for (int32_t j = 0; j < lanes; ++j) m[j] = x[k + j] > m[j] ? x[k + j] : m[j];
            }
            float top = m[0];
            for (int32_t j = 1; j < lanes; ++j) top = m[j] > top ? m[j] : top;
            if (top > best) best = top, block = i;
        }
        int32_t end = std::min(n, block + block_size);
        for (; i < n; ++i) {
            if (x[i] > best) best = x[i], block = i, end = i + 1;
        }
        for (int32_t k = block; k < end; ++k) {
            if (x[k] == best) return static_cast<llama_token>(k);
        }
        return static_cast<llama_token>(std::max_element(x, x + n) - x);
    }

    // Greedy decoding (with logit biases at most) is an argmax: llama.cpp's chain would first
    // copy the whole vocabulary into a candidate array. Same result, ties to the lowest id.
    llama_token argmax(const float* logits) {
        const int32_t n = n_vocab();
        llama_token best = first_max(logits, n);
        bool best_biased = std::any_of(bias_.begin(), bias_.end(), [best](const auto& b) { return b.first == best; });
        if (best_biased) {  // the raw winner is biased: score everything
            scratch_.assign(logits, logits + n);
            for (const auto& [token, bias] : bias_) scratch_[static_cast<size_t>(token)] += bias;
            return static_cast<llama_token>(std::max_element(scratch_.begin(), scratch_.end()) - scratch_.begin());
        }
        float best_value = logits[best];
        for (const auto& [token, bias] : bias_) {
            float v = logits[token] + bias;
            if (v > best_value || (v == best_value && token < best)) best = token, best_value = v;
        }
        return best;
    }

    // Stages that use nothing but the candidate array they are given (and so give the same
    // result on the k candidates of a top-k stage however those were found).
    static bool works_on_candidates(const std::string& name) {
        return name == "top-p" || name == "min-p" || name == "typical" || name == "temp" || name == "temp-ext" ||
               name == "dist" || name == "greedy";
    }

    // The largest of x[0..n) (NaN compares false, as in llama.cpp's sort): 16 lanes the
    // compiler vectorises.
    static float largest(const float* x, int32_t n) {
        constexpr int32_t lanes = 16;
        float m[lanes];
        std::fill(m, m + lanes, -INFINITY);
        int32_t i = 0;
        for (; i + lanes <= n; i += lanes) {
            for (int32_t j = 0; j < lanes; ++j) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
        }
        for (; i < n; ++i) m[0] = x[i] > m[0] ? x[i] : m[0];
        float top = m[0];
        for (int32_t j = 1; j < lanes; ++j) top = m[j] > top ? m[j] : top;
        return top;
    }

    // llama.cpp's chain copies the whole vocabulary into a candidate array for its top-k
    // stage to sort. When only a logit bias comes before that stage, the k best come from
    // the logits directly: the largest value of each block of 64 tokens; the k-th largest of
    // those, a threshold the k best all reach (k blocks reach it with their maximum); then a
    // sort of the few tokens at or over it. The stages after top-k run on those k as they
    // would in the chain, so the draw is the same; tied logits are ordered by token id.
    // LLAMA_TOKEN_NULL: use the chain (no stage has run).
    llama_token sample_top_k_first(llama_context* ctx, int32_t index) {
        constexpr int32_t block = 64;
        llama_sampler* chain = chain_.get();
        const float* x = llama_get_logits_ith(ctx, index);
        if (x == nullptr) return LLAMA_TOKEN_NULL;
        const int32_t n = n_vocab();
        const int32_t n_blocks = (n + block - 1) / block;
        const int32_t k = std::min(top_k_, n);
        if (k > n_blocks / 4) return LLAMA_TOKEN_NULL;  // a large k: the chain's sort does as well
        if (!bias_.empty()) {
            scratch_.assign(x, x + n);
            for (const auto& [token, bias] : bias_) scratch_[static_cast<size_t>(token)] += bias;
            x = scratch_.data();
        }
        block_max_.resize(static_cast<size_t>(n_blocks));
        for (int32_t b = 0; b < n_blocks; ++b) block_max_[b] = largest(x + b * block, std::min(block, n - b * block));
        threshold_ = block_max_;
        std::nth_element(threshold_.begin(), threshold_.begin() + (k - 1), threshold_.end(), std::greater<float>());
        const float t = threshold_[static_cast<size_t>(k - 1)];
        candidates_.clear();
        for (int32_t b = 0; b < n_blocks; ++b) {
            if (!(block_max_[b] >= t)) continue;
            for (int32_t i = b * block, end = std::min(n, i + block); i < end; ++i) {
                if (x[i] >= t) candidates_.push_back(llama_token_data{i, x[i], 0.0f});
            }
        }
        if (static_cast<int32_t>(candidates_.size()) < k) return LLAMA_TOKEN_NULL;  // NaNs among the best
        std::partial_sort(candidates_.begin(), candidates_.begin() + k, candidates_.end(),
                          [](const llama_token_data& a, const llama_token_data& b) {
                              return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
                          });
        llama_token_data_array arr{candidates_.data(), static_cast<size_t>(k), -1, true};
        for (int32_t i = top_k_stage_ + 1; i < llama_sampler_chain_n(chain); ++i)
            llama_sampler_apply(llama_sampler_chain_get(chain, i), &arr);
        if (arr.selected < 0 || static_cast<size_t>(arr.selected) >= arr.size)
            throw std::runtime_error("the sampler chain selected no token");
        const llama_token token = arr.data[arr.selected].id;
        llama_sampler_accept(chain, token);
        return token;
    }

    // Checking a grammar against the whole vocabulary costs far more than the model's own
    // step. Like llama.cpp's tools, sample with the other stages first and check only the
    // chosen token; fall back to the full chain when the grammar rejects it.
    llama_token sample_grammar_last(llama_context* ctx, int32_t index) {
        llama_sampler* chain = chain_.get();
        const float* logits = llama_get_logits_ith(ctx, index);
        if (logits == nullptr) return LLAMA_TOKEN_NULL;
        const int32_t n = n_vocab();
        candidates_.resize(static_cast<size_t>(n));
        for (int32_t i = 0; i < n; ++i) candidates_[static_cast<size_t>(i)] = llama_token_data{i, logits[i], 0.0f};
        llama_token_data_array arr{candidates_.data(), candidates_.size(), -1, false};
        for (int32_t i = 1; i < llama_sampler_chain_n(chain); ++i) llama_sampler_apply(llama_sampler_chain_get(chain, i), &arr);
        if (arr.selected < 0 || static_cast<size_t>(arr.selected) >= arr.size) return LLAMA_TOKEN_NULL;
        llama_token token = arr.data[arr.selected].id;
        if (!grammar_allows(token)) return LLAMA_TOKEN_NULL;
        llama_sampler_accept(chain, token);
        return token;
    }

    ModelPtr model_;
    std::vector<int32_t> grammar_stages_;  // chain positions of grammar stages
    bool only_bias_and_greedy_ = true;      // every stage is logit-bias or greedy
    std::vector<std::pair<llama_token, float>> bias_;
    int32_t n_bias_stages_ = 0;
    bool only_bias_so_far_ = true;  // no stage but logit biases (and no-ops) before top-k
    int32_t top_k_stage_ = -1;      // chain position of the top-k stage, when it can pick first
    int32_t top_k_ = 0;
    bool after_top_k_ok_ = true;  // every stage after top-k works on candidates alone
    std::vector<llama_token_data> candidates_;
    std::vector<float> scratch_, block_max_, threshold_;
    bool has_selector_ = false;
    mutable std::mutex mutex_;  // not copied: a clone has its own
    std::unique_ptr<llama_sampler, decltype(&llama_sampler_free)> chain_{nullptr, llama_sampler_free};
};

Sampler& add_grammar(Sampler& self, const std::string& grammar, const std::string& root) {
    self.get();  // raises when closed
    const llama_vocab* vocab = self.vocab();
    llama_sampler* stage = nullptr;
    std::string reason;
    {
        // Checking, parsing and building may take a while: without the GIL. llama.cpp's
        // parser explains a syntax error in its log (vendor/patches/log-not-stderr.patch).
        py::gil_scoped_release release;
        LogCapture capture;
        stage = init_bounded_grammar(vocab, grammar, root, reason);
        if (reason.empty()) reason = capture.reason();
    }
    flush_logs();
    if (stage == nullptr) raise_error("GrammarError", "invalid grammar: " + (reason.empty() ? "llama.cpp rejected it" : reason));
    self.add(stage, false, true);
    return self;
}

py::dict grammar_limits() {
    using L = GrammarLimits;
    py::dict d;
    d["max_bytes"] = L::max_bytes;
    d["max_nesting"] = L::max_nesting;
    d["max_repetition"] = L::max_repetition;
    d["max_expansion"] = L::max_expansion;
    d["max_branching"] = L::max_branching;
    d["max_states"] = L::max_states;
    d["max_checks"] = L::max_checks;
    return d;
}

}  // namespace

void register_sampler(py::module_& m) {
    using R = py::return_value_policy;
    m.attr("GRAMMAR_LIMITS") = grammar_limits();
    py::class_<Sampler>(m, "Sampler",
                        "A llama.cpp sampler chain; add stages in order, then sample.\n\n"
                        "Every add_* returns the sampler itself. A chain must end in a selecting stage "
                        "(greedy, dist or a mirostat).")
        .def(py::init([](const Model& model) { return new Sampler(model); }), py::arg("model"))
        .def("add_greedy", [](Sampler& s) -> Sampler& { s.add(llama_sampler_init_greedy(), true); return s; },
             R::reference_internal)
        .def(
            "add_dist",
            [](Sampler& s, uint32_t seed) -> Sampler& { s.add(llama_sampler_init_dist(seed), true); return s; },
            py::arg("seed"), R::reference_internal)
        .def(
            "add_top_k",
            [](Sampler& s, int32_t k) -> Sampler& {
                if (k < 0) throw py::value_error("top_k must be >= 0 (0 disables it), got " + std::to_string(k));
                s.add(llama_sampler_init_top_k(k), false, false, k);
                return s;
            },
            py::arg("k"), R::reference_internal)
        .def(
            "add_top_p",
            [](Sampler& s, float p, size_t min_keep) -> Sampler& {
                check_unit("top_p", p);
                s.add(llama_sampler_init_top_p(p, min_keep));
                return s;
            },
            py::arg("p"), py::arg("min_keep") = 1, R::reference_internal)
        .def(
            "add_min_p",
            [](Sampler& s, float p, size_t min_keep) -> Sampler& {
                check_unit("min_p", p);
                s.add(llama_sampler_init_min_p(p, min_keep));
                return s;
            },
            py::arg("p"), py::arg("min_keep") = 1, R::reference_internal)
        .def(
            "add_typical",
            [](Sampler& s, float p, size_t min_keep) -> Sampler& {
                check_range("typical_p", p, 0.0, 1.0, "in (0, 1]", true);
                s.add(llama_sampler_init_typical(p, min_keep));
                return s;
            },
            py::arg("p"), py::arg("min_keep") = 1, R::reference_internal)
        .def(
            "add_temperature",
            [](Sampler& s, float t, float delta, float exponent) -> Sampler& {
                check_range("temperature", t, 0.0, 2.0, "in [0, 2] (0: greedy)");
                check_finite("delta", delta);
                check_finite("exponent", exponent);
                if (delta < 0) throw py::value_error("delta must be >= 0");
                s.add(delta > 0 ? llama_sampler_init_temp_ext(t, delta, exponent) : llama_sampler_init_temp(t));
                return s;
            },
            py::arg("t"), py::arg("delta") = 0.0f, py::arg("exponent") = 1.0f, R::reference_internal,
            "Temperature; delta > 0 makes it dynamic in [t - delta, t + delta].")
        .def(
            "add_penalties",
            [](Sampler& s, int32_t last_n, float repeat, float frequency, float presence) -> Sampler& {
                check_finite("repeat", repeat);
                check_range("frequency_penalty", frequency, -2.0, 2.0, "in [-2, 2]");
                check_range("presence_penalty", presence, -2.0, 2.0, "in [-2, 2]");
                if (last_n < -1) throw py::value_error("last_n must be >= -1");
                if (repeat <= 0) throw py::value_error("repeat penalty must be > 0");
                s.add(llama_sampler_init_penalties(s.n_vocab(), s.history_length(last_n), repeat, frequency, presence));
                return s;
            },
            py::arg("last_n") = 64, py::arg("repeat") = 1.0f, py::arg("frequency") = 0.0f, py::arg("presence") = 0.0f,
            R::reference_internal)
        .def(
            "add_dry",
            [](Sampler& s, float multiplier, float base, int32_t allowed_length, int32_t last_n,
               const std::vector<std::string>& breakers) -> Sampler& {
                check_range("dry_multiplier", multiplier, 0.0, INFINITY, ">= 0 (0 disables it)");
                check_range("dry_base", base, 1.0, INFINITY, ">= 1");
                if (last_n < -1 || last_n > (1 << 20)) throw py::value_error("last_n must be in [-1, 1048576]");
                if (allowed_length < 0) throw py::value_error("allowed_length must be >= 0");
                std::vector<const char*> ptrs;
                for (auto& b : breakers) ptrs.push_back(b.c_str());
                s.add(llama_sampler_init_dry(s.vocab(), multiplier, base, allowed_length, s.history_length(last_n), ptrs.data(),
                                             ptrs.size()));
                return s;
            },
            py::arg("multiplier"), py::arg("base") = 1.75f, py::arg("allowed_length") = 2, py::arg("last_n") = -1,
            py::arg("breakers") = std::vector<std::string>{"\n", ":", "\"", "*"}, R::reference_internal)
        .def(
            "add_mirostat",
            [](Sampler& s, uint32_t seed, float tau, float eta, int32_t m) -> Sampler& {
                check_mirostat(tau, eta);
                if (m < 1) throw py::value_error("m must be >= 1");
                s.add(llama_sampler_init_mirostat(s.n_vocab(), seed, tau, eta, m), true);
                s.has_mirostat_ = true;
                return s;
            },
            py::arg("seed"), py::arg("tau") = 5.0f, py::arg("eta") = 0.1f, py::arg("m") = 100, R::reference_internal)
        .def(
            "add_mirostat_v2",
            [](Sampler& s, uint32_t seed, float tau, float eta) -> Sampler& {
                check_mirostat(tau, eta);
                s.add(llama_sampler_init_mirostat_v2(seed, tau, eta), true);
                s.has_mirostat_ = true;
                return s;
            },
            py::arg("seed"), py::arg("tau") = 5.0f, py::arg("eta") = 0.1f, R::reference_internal)
        .def(
            "add_logit_bias",
            [](Sampler& s, const std::map<llama_token, float>& bias) -> Sampler& {
                std::vector<llama_logit_bias> items;
                for (auto& [token, value] : bias) {
                    if (token < 0 || token >= s.n_vocab())
                        throw py::value_error("logit_bias token id " + std::to_string(token) + " is out of range");
                    if (std::isnan(value) || value == INFINITY)
                        throw py::value_error("logit_bias values must be finite or -inf (to ban)");
                    items.push_back({token, value});
                }
                s.add(llama_sampler_init_logit_bias(s.n_vocab(), static_cast<int32_t>(items.size()), items.data()));
                s.add_bias(items);
                return s;
            },
            py::arg("bias"), R::reference_internal)
        .def("add_grammar", &add_grammar, py::arg("grammar"), py::arg("root") = "root", R::reference_internal,
             "A GBNF grammar; raises GrammarError with llama.cpp's reason.")
        .def_property_readonly("picks_top_k_first", &Sampler::top_k_first,
                               "True when the top-k stage picks its candidates straight from the logits "
                               "(only a logit bias before it, stages after it that read the candidates alone): "
                               "the same draw as the chain without copying the vocabulary.")
        .def_property_readonly("stages",
                               [](const Sampler& s) {
                                   std::vector<std::string> names;
                                   llama_sampler* chain = s.get();
                                   for (int32_t i = 0; i < llama_sampler_chain_n(chain); ++i)
                                       names.emplace_back(llama_sampler_name(llama_sampler_chain_get(chain, i)));
                                   return names;
                               })
        .def("sample", &Sampler::sample, py::arg("context"), py::arg("index") = -1,
             "Pick a token from the logits at batch ``index`` of the last decode and accept it.")
        .def("accept", &Sampler::accept, py::arg("token"),
             "Tell the stateful stages (penalties, grammar, ...) about a token chosen elsewhere.")
        .def("reset", [](Sampler& s) { auto own = s.lock(); llama_sampler_reset(s.get()); })
        .def("clone", [](const Sampler& s) { auto own = s.lock(); return Sampler(s); })
        .def("close", &Sampler::close);
}

}  // namespace fireside
