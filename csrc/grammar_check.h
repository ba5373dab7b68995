// Bounds on GBNF grammars, checked before llama.cpp builds (or runs) one.
//
// A grammar is untrusted input: llama.cpp's parser recurses once per nesting level, expands
// x{n} into n copies, and its matcher tracks one "stack" per way the text so far can be
// parsed, which an ambiguous grammar doubles with every token. Each bound below is checked
// where it is cheap: the text before parsing, the parsed rules before any stack is built,
// and the number of stacks while it runs (grammar.cpp).
#pragma once

#include <cstddef>
#include <string>

#include "llama-grammar.h"

namespace fireside {

struct GrammarLimits {
    static constexpr size_t max_bytes = 65536;           // grammar text
    static constexpr size_t max_nesting = 64;            // ( ... ) inside one another
    static constexpr size_t max_repetition = 10000;      // n and m of x{n,m}
    static constexpr size_t max_expansion = 1000000;     // sum of count x item size over all x{n,m}
    static constexpr size_t max_branching = 256;         // parse states one position can open
    static constexpr size_t max_states = 256;            // parse states tracked at once (run time)
    static constexpr size_t max_checks = 1 << 20;        // (token, parse state) checks per token
};

// An empty string when `grammar`'s text is within the limits above, else why not (naming
// the limit): too large, nested too deeply, a repetition count too large or inverted.
std::string check_grammar_text(const std::string& grammar);

// An empty string when the parser's rules cannot open more than max_branching parse
// states at one position (counted the way llama.cpp expands a rule reference: every
// alternative, and through rules that may match nothing), else why not. Also reports
// left recursion, which llama.cpp cannot run.
std::string check_grammar_rules(const llama_grammar_parser& parser);

}  // namespace fireside
