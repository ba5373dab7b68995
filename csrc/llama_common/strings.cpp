// The three string helpers of llama.cpp's common.h that its JSON Schema converter uses.
//
// They live in llama.cpp's common.cpp, which would bring in its logger, samplers and CPU
// setup; fireside builds only the converter's files (CMakeLists.txt), so it defines these
// few here, with the same declarations (common.h) and behaviour.
#include "common.h"

#include <string>
#include <vector>

std::string string_join(const std::vector<std::string>& values, const std::string& separator) {
    std::string out;
    for (size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += separator;
        out += values[i];
    }
    return out;
}

// Every part between delimiters, empty ones included; one part when there is none.
std::vector<std::string> string_split(const std::string& str, const std::string& delimiter) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t at; (at = str.find(delimiter, start)) != std::string::npos; start = at + delimiter.size())
        parts.push_back(str.substr(start, at - start));
    parts.push_back(str.substr(start));
    return parts;
}

std::string string_repeat(const std::string& str, size_t n) {
    std::string out;
    out.reserve(str.size() * n);
    for (size_t i = 0; i < n; ++i) out += str;
    return out;
}
