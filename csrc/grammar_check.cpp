#include "grammar_check.h"

#include <cctype>

namespace fireside {

namespace {

constexpr unsigned long kMaxRepetition = 10000;  // llama.cpp expands x{n} into n copies

// Skip a quoted string or a character class starting at `i` (the opening character).
size_t skip_literal(const std::string& g, size_t i, char close) {
    for (++i; i < g.size() && g[i] != close; ++i) {
        if (g[i] == '\\') ++i;
    }
    return i;  // at the closing character (or the end)
}

bool read_number(const std::string& g, size_t& i, unsigned long& out, bool& present) {
    while (i < g.size() && std::isspace(static_cast<unsigned char>(g[i]))) ++i;
    present = false;
    out = 0;
    while (i < g.size() && std::isdigit(static_cast<unsigned char>(g[i]))) {
        present = true;
        out = out * 10 + static_cast<unsigned long>(g[i] - '0');
        if (out > 100000000ul) return false;
        ++i;
    }
    while (i < g.size() && std::isspace(static_cast<unsigned char>(g[i]))) ++i;
    return true;
}

}  // namespace

std::string check_grammar_repetitions(const std::string& g) {
    for (size_t i = 0; i < g.size(); ++i) {
        char c = g[i];
        if (c == '"') {
            i = skip_literal(g, i, '"');
        } else if (c == '[') {
            i = skip_literal(g, i, ']');
        } else if (c == '#') {
            while (i < g.size() && g[i] != '\n') ++i;
        } else if (c == '{') {
            size_t j = i + 1;
            unsigned long lo = 0, hi = 0;
            bool has_lo = false, has_hi = false;
            if (!read_number(g, j, lo, has_lo)) return "repetition count too large at offset " + std::to_string(i);
            if (j < g.size() && g[j] == ',') {
                ++j;
                if (!read_number(g, j, hi, has_hi)) return "repetition count too large at offset " + std::to_string(i);
            } else {
                hi = lo;
                has_hi = has_lo;
            }
            if (has_lo && has_hi && lo > hi)
                return "repetition {" + std::to_string(lo) + "," + std::to_string(hi) +
                       "} has its minimum above its maximum (offset " + std::to_string(i) + ")";
            if ((has_lo && lo > kMaxRepetition) || (has_hi && hi > kMaxRepetition))
                return "repetition count above " + std::to_string(kMaxRepetition) + " at offset " + std::to_string(i);
        }
    }
    return "";
}

}  // namespace fireside
