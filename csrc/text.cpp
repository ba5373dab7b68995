#include "text.h"

#include <pybind11/pybind11.h>

#include <climits>
#include <optional>
#include <stdexcept>

namespace fireside {

namespace py = pybind11;

namespace {
constexpr size_t kReleaseGilAbove = 1 << 16;  // bytes; short texts tokenize faster than a GIL switch
}

std::vector<llama_token> tokenize(const llama_vocab* vocab, const std::string& text, bool add_special,
                                  bool parse_special) {
    if (text.size() > static_cast<size_t>(INT32_MAX)) throw py::value_error("text is too long to tokenize");
    std::optional<py::gil_scoped_release> release;
    if (text.size() > kReleaseGilAbove) release.emplace();
    std::vector<llama_token> out(text.size() + 4);
    auto run = [&] {
        return llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                              static_cast<int32_t>(out.size()), add_special, parse_special);
    };
    int32_t n = run();
    if (n < 0 && n != INT32_MIN) {
        out.resize(static_cast<size_t>(-n));
        n = run();
    }
    release.reset();
    if (n < 0) throw py::value_error("text is too long to tokenize");
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string token_to_piece(const llama_vocab* vocab, llama_token token, bool special, int lstrip) {
    char small[64];
    int32_t n = llama_token_to_piece(vocab, token, small, sizeof small, lstrip, special);
    if (n >= 0) return std::string(small, static_cast<size_t>(n));
    std::string big(static_cast<size_t>(-n), '\0');
    n = llama_token_to_piece(vocab, token, big.data(), static_cast<int32_t>(big.size()), lstrip, special);
    big.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return big;
}

std::string detokenize(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool remove_special,
                       bool unparse_special) {
    std::string out(tokens.size() * 8 + 16, '\0');
    auto run = [&] {
        return llama_detokenize(vocab, tokens.data(), static_cast<int32_t>(tokens.size()), out.data(),
                                static_cast<int32_t>(out.size()), remove_special, unparse_special);
    };
    int32_t n = run();
    if (n < 0) {
        out.resize(static_cast<size_t>(-n));
        n = run();
    }
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
}

}  // namespace fireside
