// Checks on GBNF text that llama.cpp's parser does not make before it allocates.
#pragma once

#include <string>

namespace fireside {

// An empty string when the repetition counts in `grammar` are sane, else why not:
// `x{3,1}` (inverted bounds) or counts so large that expanding them would exhaust memory.
std::string check_grammar_repetitions(const std::string& grammar);

}  // namespace fireside
