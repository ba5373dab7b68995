// Text <-> tokens with llama.cpp's buffer-size protocol handled here, once.
#pragma once

#include <llama.h>

#include <string>
#include <vector>

namespace fireside {

// Releases the GIL for long texts; call with the GIL held.
std::vector<llama_token> tokenize(const llama_vocab* vocab, const std::string& text, bool add_special,
                                  bool parse_special);

std::string token_to_piece(const llama_vocab* vocab, llama_token token, bool special, int lstrip);

std::string detokenize(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool remove_special,
                       bool unparse_special);

}  // namespace fireside
