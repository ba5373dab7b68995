#include "grammar_check.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace fireside {

namespace {

using L = GrammarLimits;

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

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }

std::string at(size_t offset) { return " (at offset " + std::to_string(offset) + ")"; }

// Counts, for each rule, the parse states llama.cpp opens when a stack reaches a reference
// to it: `terminal` stacks that end at a character or token, and `empty` ways of matching
// nothing (after which the element that follows the reference is expanded too). Saturates
// just above the limit.
class BranchCounter {
public:
    explicit BranchCounter(const llama_grammar_parser& parser)
        : rules_(parser.rules), state_(parser.rules.size(), 0), memo_(parser.rules.size()) {
        names_.resize(rules_.size());
        for (const auto& [name, id] : parser.symbol_ids)
            if (id < names_.size()) names_[id] = name;
    }

    std::string check() {
        for (uint32_t id = 0; id < rules_.size() && error_.empty(); ++id) rule(id);
        return error_;
    }

private:
    struct Count {
        size_t terminal = 0;
        size_t empty = 0;
    };
    static constexpr size_t kCap = L::max_branching + 1;

    static size_t add(size_t a, size_t b) { return std::min(kCap, a + b); }
    static size_t mul(size_t a, size_t b) { return (a == 0 || b == 0) ? 0 : std::min(kCap, a * b); }

    std::string name(uint32_t id) const {
        return id < names_.size() && !names_[id].empty() ? "'" + names_[id] + "'" : "#" + std::to_string(id);
    }

    Count sequence(const llama_grammar_element* pos) {
        Count out;
        size_t ways = 1;  // ways of having matched nothing so far
        for (;; ++pos) {
            if (pos->type == LLAMA_GRETYPE_END || pos->type == LLAMA_GRETYPE_ALT) {
                out.empty = ways;
                return out;
            }
            if (pos->type != LLAMA_GRETYPE_RULE_REF) {  // a character or token: one state
                out.terminal = add(out.terminal, ways);
                return out;
            }
            Count inner = rule(pos->value);
            if (!error_.empty()) return out;
            out.terminal = add(out.terminal, mul(ways, inner.terminal));
            ways = mul(ways, inner.empty);
            if (ways == 0) return out;
        }
    }

    Count rule(uint32_t id) {
        if (id >= rules_.size() || rules_[id].empty()) return {};
        if (state_[id] == 2) return memo_[id];
        if (state_[id] == 1) {
            error_ = "rule " + name(id) + " is left-recursive (it can reach itself before matching any text)";
            return {};
        }
        if (++depth_ > 4096) {
            error_ = "rules refer to one another more than 4096 deep before matching any text";
            return {};
        }
        state_[id] = 1;
        Count total;
        const llama_grammar_element* pos = rules_[id].data();
        while (error_.empty()) {
            Count alt = sequence(pos);
            total.terminal = add(total.terminal, alt.terminal);
            total.empty = add(total.empty, alt.empty);
            while (pos->type != LLAMA_GRETYPE_END && pos->type != LLAMA_GRETYPE_ALT) ++pos;
            if (pos->type != LLAMA_GRETYPE_ALT) break;
            ++pos;
        }
        --depth_;
        state_[id] = 2;
        memo_[id] = total;
        if (error_.empty() && (total.terminal > L::max_branching || total.empty > L::max_branching))
            error_ = "rule " + name(id) + " opens more than " + std::to_string(L::max_branching) +
                     " parse states at one position (grammar limit max_branching); give alternatives distinct "
                     "beginnings or split long lists of them";
        return total;
    }

    const llama_grammar_rules& rules_;
    std::vector<int8_t> state_;  // 0 new, 1 in progress, 2 done
    std::vector<Count> memo_;
    std::vector<std::string> names_;
    std::string error_;
    size_t depth_ = 0;
};

}  // namespace

std::string check_grammar_text(const std::string& g) {
    if (g.size() > L::max_bytes)
        return "the grammar is " + std::to_string(g.size()) + " bytes; at most " + std::to_string(L::max_bytes) +
               " are allowed (grammar limit max_bytes)";
    std::vector<size_t> open;  // offsets of the '(' not closed yet
    size_t item_start = 0;     // where the item a repetition would repeat begins
    size_t expansion = 0;
    for (size_t i = 0; i < g.size(); ++i) {
        char c = g[i];
        if (c == '"' || c == '[') {
            item_start = i;
            i = skip_literal(g, i, c == '"' ? '"' : ']');
        } else if (c == '<') {
            item_start = i;
            while (i < g.size() && g[i] != '>') ++i;
        } else if (c == '#') {
            while (i < g.size() && g[i] != '\n') ++i;
        } else if (c == '(') {
            open.push_back(i);
            if (open.size() > L::max_nesting)
                return "parentheses are nested more than " + std::to_string(L::max_nesting) + " deep (grammar limit max_nesting)" +
                       at(i);
        } else if (c == ')') {
            if (!open.empty()) {
                item_start = open.back();
                open.pop_back();
            }
        } else if (c == '.' || (is_word_char(c) && (i == 0 || !is_word_char(g[i - 1])))) {
            item_start = i;
        } else if (c == '{') {
            size_t j = i + 1;
            unsigned long lo = 0, hi = 0;
            bool has_lo = false, has_hi = false, open_ended = false;
            if (!read_number(g, j, lo, has_lo))
                return "repetition count above " + std::to_string(L::max_repetition) + " (grammar limit max_repetition)" + at(i);
            if (j < g.size() && g[j] == ',') {
                ++j;
                if (!read_number(g, j, hi, has_hi))
                    return "repetition count above " + std::to_string(L::max_repetition) + " (grammar limit max_repetition)" + at(i);
                open_ended = !has_hi;
            } else {
                hi = lo;
                has_hi = has_lo;
            }
            if (has_lo && has_hi && lo > hi)
                return "repetition {" + std::to_string(lo) + "," + std::to_string(hi) + "} has its minimum above its maximum" +
                       at(i);
            if ((has_lo && lo > L::max_repetition) || (has_hi && hi > L::max_repetition))
                return "repetition count above " + std::to_string(L::max_repetition) + " (grammar limit max_repetition)" + at(i);
            size_t copies = (open_ended ? lo : hi) + 1;
            size_t item = i > item_start ? i - item_start : 1;
            expansion += copies * item;
            if (expansion > L::max_expansion)
                return "repetitions would expand the grammar to more than " + std::to_string(L::max_expansion) +
                       " bytes (grammar limit max_expansion)" + at(i);
            i = j < g.size() ? j : g.size();  // at the closing brace
        }
    }
    return "";
}

std::string check_grammar_rules(const llama_grammar_parser& parser) { return BranchCounter(parser).check(); }

}  // namespace fireside
