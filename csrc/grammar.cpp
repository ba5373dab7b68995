#include "grammar.h"

#include "grammar_check.h"
#include "llama-grammar.h"
#include "llama-vocab.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <unordered_set>
#include <utility>
#include <vector>

namespace fireside {

namespace {

struct StackHash {
    size_t operator()(const llama_grammar_stack& stack) const {
        size_t h = stack.size();
        for (const auto* p : stack) h ^= std::hash<const void*>()(p) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        return h;
    }
};

struct Bounded {
    const llama_vocab* vocab = nullptr;
    llama_grammar* grammar = nullptr;  // owned
    llama_grammar_stacks initial;      // `grammar`'s stacks before any token
    bool has_tokens = false;           // the grammar matches token ids (<[id]>) somewhere
    std::string failure;               // why the grammar cannot go on, once it cannot

    ~Bounded() { llama_grammar_free_impl(grammar); }
};

Bounded& bounded(const llama_sampler* smpl) { return *static_cast<Bounded*>(smpl->ctx); }

// UTF-8 bytes to code points, continuing (and possibly ending in) a partial sequence;
// the same rules as llama.cpp's matcher, whose partial state this carries on.
std::pair<std::vector<uint32_t>, llama_partial_utf8> decode(const std::string& src, llama_partial_utf8 partial) {
    static const int lookup[] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 3, 4};
    std::vector<uint32_t> points;
    const char* pos = src.c_str();
    uint32_t value = partial.value;
    int n_remain = partial.n_remain;
    while (*pos != 0 && n_remain > 0) {
        auto byte = static_cast<uint8_t>(*pos);
        if ((byte >> 6) != 2) return {{}, llama_partial_utf8{0, -1}};
        value = (value << 6) + (byte & 0x3F);
        ++pos;
        --n_remain;
    }
    if (partial.n_remain > 0 && n_remain == 0) points.push_back(value);
    while (*pos != 0) {
        auto first = static_cast<uint8_t>(*pos);
        n_remain = lookup[first >> 4] - 1;
        if (n_remain < 0) return {{}, llama_partial_utf8{0, n_remain}};
        value = first & ((1 << (7 - n_remain)) - 1);
        ++pos;
        while (*pos != 0 && n_remain > 0) {
            value = (value << 6) + (static_cast<uint8_t>(*pos) & 0x3F);
            ++pos;
            --n_remain;
        }
        if (n_remain == 0) points.push_back(value);
    }
    return {std::move(points), llama_partial_utf8{value, n_remain}};
}

[[noreturn]] void fail(Bounded& b, std::string why) {
    b.failure = std::move(why);
    throw GrammarFailure(b.failure);
}

void check_states(Bounded& b, size_t n) {
    if (n > GrammarLimits::max_states)
        fail(b, "the grammar is too ambiguous: the text so far can be parsed in more than " +
                    std::to_string(GrammarLimits::max_states) +
                    " ways at once (grammar limit max_states); make its alternatives start differently");
}

// Feed each code point to every parse state, one state at a time, so the new states are
// counted (and refused past the limit) before they are all built.
void accept_points(Bounded& b, const std::vector<uint32_t>& points) {
    llama_grammar& g = *b.grammar;
    for (uint32_t point : points) {
        llama_grammar_stacks sources = std::move(g.stacks);
        llama_grammar_stacks next;
        std::unordered_set<llama_grammar_stack, StackHash> seen;
        for (auto& stack : sources) {
            g.stacks.clear();
            g.stacks.push_back(std::move(stack));
            llama_grammar_accept(&g, point);
            for (auto& s : g.stacks) {
                if (seen.insert(s).second) next.push_back(std::move(s));
            }
            check_states(b, next.size());
        }
        g.stacks = std::move(next);
        if (g.stacks.empty()) return;
    }
}

const char* name(const llama_sampler*) { return "grammar"; }

void accept(llama_sampler* smpl, llama_token token) {
    Bounded& b = bounded(smpl);
    if (!b.failure.empty()) throw GrammarFailure(b.failure);
    llama_grammar& g = *b.grammar;
    if (b.vocab->is_eog(token)) {
        if (std::any_of(g.stacks.begin(), g.stacks.end(), [](const auto& s) { return s.empty(); })) return;
        fail(b, "the grammar does not allow the text to end here");
    }
    const std::string& piece = b.vocab->token_to_piece(token);
    if (b.has_tokens) {
        try {
            llama_grammar_accept_impl(g, token);
        } catch (const std::runtime_error&) {
            g.stacks.clear();
        }
        check_states(b, g.stacks.size());
    } else {
        auto [points, partial] = decode(piece, g.partial_utf8);
        accept_points(b, points);
        g.partial_utf8 = partial;
    }
    if (g.stacks.empty()) fail(b, "the grammar allows no text after token " + std::to_string(token));
}

// Whether code point `chr` matches the character element at `pos` (llama.cpp's rule).
bool match_char(const llama_grammar_element* pos, uint32_t chr) {
    bool positive = pos->type == LLAMA_GRETYPE_CHAR || pos->type == LLAMA_GRETYPE_CHAR_ANY;
    bool found = false;
    do {
        if (pos[1].type == LLAMA_GRETYPE_CHAR_RNG_UPPER) {
            found = found || (pos->value <= chr && chr <= pos[1].value);
            pos += 2;
        } else if (pos->type == LLAMA_GRETYPE_CHAR_ANY) {
            found = true;
            pos += 1;
        } else {
            found = found || pos->value == chr;
            pos += 1;
        }
    } while (pos->type == LLAMA_GRETYPE_CHAR_ALT);
    return found == positive;
}

// Mask the tokens the grammar forbids now: llama.cpp's matcher, run on one parse state at
// a time and only on the tokens whose first character that state can take, within a
// budget of max_checks (token, state) pairs per token.
void apply(llama_sampler* smpl, llama_token_data_array* cur_p) {
    Bounded& b = bounded(smpl);
    if (!b.failure.empty()) throw GrammarFailure(b.failure);
    llama_grammar& g = *b.grammar;
    bool allow_eog = std::any_of(g.stacks.begin(), g.stacks.end(), [](const auto& s) { return s.empty(); });
    std::vector<std::vector<uint32_t>> points;  // per candidate, 0-terminated (the matcher's form)
    points.reserve(cur_p->size);
    llama_grammar_candidates candidates;
    candidates.reserve(cur_p->size);
    for (size_t i = 0; i < cur_p->size; ++i) {
        llama_token id = cur_p->data[i].id;
        const std::string& piece = b.vocab->token_to_piece(id);
        if (b.vocab->is_eog(id)) {
            if (!allow_eog) cur_p->data[i].logit = -INFINITY;
            continue;
        }
        if (piece.empty() || piece[0] == 0) {
            cur_p->data[i].logit = -INFINITY;
            continue;
        }
        auto [decoded, partial] = decode(piece, g.partial_utf8);
        decoded.push_back(0);
        points.push_back(std::move(decoded));
        candidates.push_back({i, points.back().data(), partial, id});
    }
    std::vector<char> allowed(cur_p->size, 0);
    llama_grammar_candidates subset;
    size_t checks = 0;
    for (const auto& stack : g.stacks) {
        if (stack.empty()) continue;
        const llama_grammar_element* top = stack.back();
        bool by_token = top->type == LLAMA_GRETYPE_TOKEN || top->type == LLAMA_GRETYPE_TOKEN_NOT;
        subset.clear();
        for (const auto& c : candidates) {
            if (allowed[c.index]) continue;
            if (by_token || *c.code_points == 0 || match_char(top, *c.code_points)) subset.push_back(c);
        }
        checks += subset.size();
        if (checks > GrammarLimits::max_checks)
            fail(b, "the grammar needed more than " + std::to_string(GrammarLimits::max_checks) +
                        " token checks to choose one token (grammar limit max_checks); it is too ambiguous here");
        auto rejects = llama_grammar_reject_candidates_for_stack(g.rules, stack, subset);
        for (const auto& c : subset) allowed[c.index] = 1;
        for (const auto& r : rejects) allowed[r.index] = 0;
    }
    for (const auto& c : candidates)
        if (!allowed[c.index]) cur_p->data[c.index].logit = -INFINITY;
}

void reset(llama_sampler* smpl) {
    Bounded& b = bounded(smpl);
    b.grammar->stacks = b.initial;
    b.grammar->partial_utf8 = {0, 0};
    b.failure.clear();
}

// A copy of `src` whose stacks point into the copy's own rules.
llama_grammar* copy_grammar(const llama_grammar& src, const llama_grammar_stacks& initial, llama_grammar_stacks& initial_out) {
    auto* out = new llama_grammar{src.vocab, src.rules, {}, src.partial_utf8, false, false, "", {}, {}, {}};
    std::vector<std::pair<const llama_grammar_element*, size_t>> starts;  // (first element, rule)
    for (size_t r = 0; r < src.rules.size(); ++r)
        if (!src.rules[r].empty()) starts.emplace_back(src.rules[r].data(), r);
    std::sort(starts.begin(), starts.end());
    auto remap = [&](const llama_grammar_element* p) {
        auto it = std::upper_bound(starts.begin(), starts.end(), std::make_pair(p, SIZE_MAX));
        --it;  // every stack element points into some rule
        return out->rules[it->second].data() + (p - it->first);
    };
    auto remap_all = [&](const llama_grammar_stacks& stacks) {
        llama_grammar_stacks result;
        result.reserve(stacks.size());
        for (const auto& stack : stacks) {
            llama_grammar_stack& s = result.emplace_back();
            s.reserve(stack.size());
            for (const auto* p : stack) s.push_back(remap(p));
        }
        return result;
    };
    out->stacks = remap_all(src.stacks);
    initial_out = remap_all(initial);
    return out;
}

llama_sampler* clone(const llama_sampler* smpl);

void free_stage(llama_sampler* smpl) { delete static_cast<Bounded*>(smpl->ctx); }

llama_sampler_i iface = {
    /* .name              = */ name,
    /* .accept            = */ accept,
    /* .apply             = */ apply,
    /* .reset             = */ reset,
    /* .clone             = */ clone,
    /* .free              = */ free_stage,
    /* .backend_init      = */ nullptr,
    /* .backend_accept    = */ nullptr,
    /* .backend_apply     = */ nullptr,
    /* .backend_set_input = */ nullptr,
    /* .backend_reset     = */ nullptr,
    /* .copy_state        = */ nullptr,
};

llama_sampler* clone(const llama_sampler* smpl) {
    const Bounded& b = bounded(smpl);
    auto copy = std::make_unique<Bounded>();
    copy->vocab = b.vocab;
    copy->has_tokens = b.has_tokens;
    copy->failure = b.failure;
    copy->grammar = copy_grammar(*b.grammar, b.initial, copy->initial);
    return llama_sampler_init(&iface, copy.release());
}

}  // namespace

llama_sampler* init_bounded_grammar(const llama_vocab* vocab, const std::string& grammar, const std::string& root,
                                    std::string& error) {
    error = check_grammar_text(grammar);
    if (!error.empty()) return nullptr;
    llama_grammar_parser parser(vocab);
    if (!parser.parse(grammar.c_str()) || parser.rules.empty()) return nullptr;  // reason: in llama.cpp's log
    auto root_it = parser.symbol_ids.find(root);
    if (root_it == parser.symbol_ids.end()) {
        error = "the grammar has no '" + root + "' rule to start from";
        return nullptr;
    }
    error = check_grammar_rules(parser);
    if (!error.empty()) return nullptr;
    auto b = std::make_unique<Bounded>();
    b->vocab = vocab;
    for (const auto& rule : parser.rules)
        for (const auto& e : rule)
            if (e.type == LLAMA_GRETYPE_TOKEN || e.type == LLAMA_GRETYPE_TOKEN_NOT) b->has_tokens = true;
    llama_grammar_stack rules = parser.c_rules();
    b->grammar = llama_grammar_init_impl(vocab, rules.data(), rules.size(), root_it->second);
    if (b->grammar == nullptr) return nullptr;  // reason: in llama.cpp's log
    if (b->grammar->stacks.size() > GrammarLimits::max_states) {
        error = "the grammar can start in more than " + std::to_string(GrammarLimits::max_states) +
                " ways (grammar limit max_states)";
        return nullptr;
    }
    b->initial = b->grammar->stacks;
    return llama_sampler_init(&iface, b.release());
}

}  // namespace fireside
