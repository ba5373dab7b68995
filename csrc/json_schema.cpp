#include "json_schema.h"

#include "errors.h"
#include "json-schema-to-grammar.h"
#include "json.h"
#include "logging.h"

#include <exception>
#include <string>

namespace fireside {

namespace {

// llama.cpp's messages span lines ("JSON schema conversion failed:\n..."): one line here,
// without that heading (the caller says what failed).
std::string one_line(std::string text) {
    for (const char* heading : {"JSON schema conversion failed:", "JSON schema conversion was incomplete:"}) {
        while (text.rfind(heading, 0) == 0) text.erase(0, std::string(heading).size() + 1);
    }
    for (char& c : text)
        if (c == '\n' || c == '\r') c = ' ';
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text;
}

std::string convert(const std::string& schema_json) {
    std::string grammar, error, incomplete;
    {
        // Large schemas take a while: without the GIL. The converter logs (through
        // vendor/patches/log-not-stderr.patch) only when it had to loosen the schema.
        py::gil_scoped_release release;
        LogCapture capture;
        try {
            grammar = json_schema_to_grammar(common_json::parse(schema_json), /* force_gbnf = */ true);
        } catch (const std::exception& e) {
            error = e.what();
        }
        incomplete = capture.reason();
    }
    flush_logs();
    if (!error.empty()) raise_error("GrammarError", "invalid JSON schema: " + one_line(error));
    if (!incomplete.empty()) {
        // llama-server would go on with a looser grammar ("accepting any string"); fireside
        // refuses, so that every output validates against the schema.
        const std::string loosened = ", accepting any string";
        size_t at = incomplete.find(loosened);
        if (at != std::string::npos) incomplete.erase(at, loosened.size());
        raise_error("GrammarError", "the JSON schema cannot be enforced: " + one_line(incomplete));
    }
    return grammar;
}

}  // namespace

void register_json_schema(py::module_& m) {
    m.def("json_schema_to_grammar", &convert, py::arg("schema_json"),
          R"pbdoc(GBNF (root rule ``root``) for a JSON schema given as JSON text, by llama.cpp's own
converter (the one llama-server uses). Raises GrammarError with llama.cpp's reason when the
schema is invalid or outside what the converter supports, and when it could enforce the schema
only in part (an unsupported ``pattern``). Runs without the GIL.)pbdoc");
}

}  // namespace fireside
