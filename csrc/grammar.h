// A GBNF grammar sampler stage whose work is bounded (GrammarLimits in grammar_check.h).
//
// It runs llama.cpp's grammar matcher, but accepts a token one character and one parse
// state at a time, so a grammar that would track more than max_states parse states stops
// with an error before it does the work, instead of doubling its states with each token.
// Nothing here touches Python: it is built and run without the GIL.
#pragma once

#include "llama.h"

#include <stdexcept>
#include <string>

namespace fireside {

// A grammar that cannot go on: over a limit, or at a dead end. Thrown from a stage's
// accept (through llama.cpp's sampler chain); the binding turns it into GrammarError.
class GrammarFailure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Check, parse and build a bounded grammar stage. Returns nullptr with `error` set when
// the grammar is refused (a limit, a syntax error, no `root` rule, left recursion).
// llama.cpp's parser explains syntax errors in its log: the caller captures it.
llama_sampler* init_bounded_grammar(const llama_vocab* vocab, const std::string& grammar, const std::string& root,
                                    std::string& error);

}  // namespace fireside
