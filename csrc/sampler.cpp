#include "sampler.h"

#include "context.h"
#include "errors.h"
#include "logging.h"
#include "stderr_capture.h"

#include <pybind11/stl.h>

#include <cmath>
#include <map>
#include <memory>
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

class Sampler {
public:
    explicit Sampler(const Model& model) : model_(model.handle()) {
        llama_sampler_chain_params p = llama_sampler_chain_default_params();
        p.no_perf = true;
        chain_.reset(llama_sampler_chain_init(p));
    }

    Sampler(const Sampler& other)
        : model_(other.model_), has_selector_(other.has_selector_), chain_(llama_sampler_clone(other.get()), llama_sampler_free) {}

    llama_sampler* get() const {
        if (!chain_) raise_closed("Sampler");
        return chain_.get();
    }
    const llama_vocab* vocab() const { return llama_model_get_vocab(model_.get()); }
    int32_t n_vocab() const { return llama_vocab_n_tokens(vocab()); }

    void add(llama_sampler* stage, bool selects = false) {
        llama_sampler* chain = get();
        if (has_selector_) {
            llama_sampler_free(stage);
            throw py::value_error("the chain already ends in a selecting stage (greedy, dist or mirostat); "
                                  "add filters before it");
        }
        llama_sampler_chain_add(chain, stage);
        has_selector_ = selects;
    }

    llama_token sample(Context& context, int32_t index) {
        llama_sampler* chain = get();
        if (!has_selector_)
            throw py::value_error("the sampler chain has no selecting stage: end it with add_greedy() or add_dist()");
        auto guard = context.lock();
        llama_context* ctx = context.get();
        if (context.model() != model_) throw py::value_error("this Sampler was built for another model");
        context.check_output_index(index);
        return llama_sampler_sample(chain, ctx, index);
    }

    void close() { chain_.reset(); }

private:
    ModelPtr model_;
    bool has_selector_ = false;
    std::unique_ptr<llama_sampler, decltype(&llama_sampler_free)> chain_{nullptr, llama_sampler_free};
};

Sampler& add_grammar(Sampler& self, const std::string& grammar, const std::string& root) {
    llama_sampler* stage = nullptr;
    std::string reason;
    {
        // llama.cpp's grammar parser explains errors on stderr, not through its log.
        LogCapture capture;
        StderrCapture stderr_capture;
        stage = llama_sampler_init_grammar(self.vocab(), grammar.c_str(), root.c_str());
        reason = stderr_capture.finish();
        if (reason.empty()) reason = capture.reason();
    }
    flush_logs();
    if (stage == nullptr) raise_error("GrammarError", "invalid grammar: " + (reason.empty() ? "llama.cpp rejected it" : reason));
    self.add(stage);
    return self;
}

}  // namespace

void register_sampler(py::module_& m) {
    using R = py::return_value_policy;
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
                s.add(llama_sampler_init_top_k(k));
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
                check_unit("typical_p", p);
                s.add(llama_sampler_init_typical(p, min_keep));
                return s;
            },
            py::arg("p"), py::arg("min_keep") = 1, R::reference_internal)
        .def(
            "add_temperature",
            [](Sampler& s, float t, float delta, float exponent) -> Sampler& {
                check_finite("temperature", t);
                check_finite("delta", delta);
                check_finite("exponent", exponent);
                if (t < 0) throw py::value_error("temperature must be >= 0, got " + std::to_string(t));
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
                check_finite("frequency", frequency);
                check_finite("presence", presence);
                if (last_n < -1) throw py::value_error("last_n must be >= -1");
                if (repeat <= 0) throw py::value_error("repeat penalty must be > 0");
                s.add(llama_sampler_init_penalties(s.n_vocab(), last_n, repeat, frequency, presence));
                return s;
            },
            py::arg("last_n") = 64, py::arg("repeat") = 1.0f, py::arg("frequency") = 0.0f, py::arg("presence") = 0.0f,
            R::reference_internal)
        .def(
            "add_dry",
            [](Sampler& s, float multiplier, float base, int32_t allowed_length, int32_t last_n,
               const std::vector<std::string>& breakers) -> Sampler& {
                check_finite("multiplier", multiplier);
                check_finite("base", base);
                std::vector<const char*> ptrs;
                for (auto& b : breakers) ptrs.push_back(b.c_str());
                s.add(llama_sampler_init_dry(s.vocab(), multiplier, base, allowed_length, last_n, ptrs.data(), ptrs.size()));
                return s;
            },
            py::arg("multiplier"), py::arg("base") = 1.75f, py::arg("allowed_length") = 2, py::arg("last_n") = -1,
            py::arg("breakers") = std::vector<std::string>{"\n", ":", "\"", "*"}, R::reference_internal)
        .def(
            "add_mirostat",
            [](Sampler& s, uint32_t seed, float tau, float eta, int32_t m) -> Sampler& {
                s.add(llama_sampler_init_mirostat(s.n_vocab(), seed, tau, eta, m), true);
                return s;
            },
            py::arg("seed"), py::arg("tau") = 5.0f, py::arg("eta") = 0.1f, py::arg("m") = 100, R::reference_internal)
        .def(
            "add_mirostat_v2",
            [](Sampler& s, uint32_t seed, float tau, float eta) -> Sampler& {
                s.add(llama_sampler_init_mirostat_v2(seed, tau, eta), true);
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
                    if (std::isnan(value)) throw py::value_error("logit_bias values must not be NaN");
                    items.push_back({token, value});
                }
                s.add(llama_sampler_init_logit_bias(s.n_vocab(), static_cast<int32_t>(items.size()), items.data()));
                return s;
            },
            py::arg("bias"), R::reference_internal)
        .def("add_grammar", &add_grammar, py::arg("grammar"), py::arg("root") = "root", R::reference_internal,
             "A GBNF grammar; raises GrammarError with llama.cpp's reason.")
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
        .def(
            "accept",
            [](Sampler& s, llama_token token) {
                if (token < 0 || token >= s.n_vocab()) throw py::value_error("token id " + std::to_string(token) + " is out of range");
                llama_sampler_accept(s.get(), token);
            },
            py::arg("token"), "Tell the stateful stages (penalties, grammar, ...) about a token chosen elsewhere.")
        .def("reset", [](Sampler& s) { llama_sampler_reset(s.get()); })
        .def("clone", [](const Sampler& s) { return Sampler(s); })
        .def("close", &Sampler::close);
}

}  // namespace fireside
