#include "model.h"

#include "errors.h"
#include "logging.h"
#include "remote.h"
#include "lora.h"
#include "text.h"

#include <pybind11/stl.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <sys/stat.h>
#include <vector>

namespace fireside {

namespace {

// Read a metadata string through a llama.cpp getter that reports the needed length.
template <typename Getter>
std::string read_meta(Getter get) {
    std::vector<char> buf(256);
    int32_t n = get(buf.data(), buf.size());
    if (n < 0) return "";
    if (static_cast<size_t>(n) >= buf.size()) {
        buf.resize(static_cast<size_t>(n) + 1);
        n = get(buf.data(), buf.size());
    }
    return std::string(buf.data(), static_cast<size_t>(n));
}

// Reject what llama.cpp would only describe in its log: missing, empty, or not GGUF.
void check_model_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) raise_os_error(PyExc_FileNotFoundError, ENOENT, path);
    if (S_ISDIR(st.st_mode)) raise_os_error(PyExc_IsADirectoryError, EISDIR, path);
    py::dict info;
    info["path"] = path;
    if (st.st_size == 0) {
        info["reason"] = "the file is empty";
        raise_error("ModelLoadError", "cannot load " + path + ": the file is empty", info);
    }
    char magic[4] = {};
    std::ifstream in(path, std::ios::binary);
    in.read(magic, sizeof magic);
    if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return;
    uint32_t value = 0;
    std::memcpy(&value, magic, sizeof value);
    // Magics of the GGML, GGMF and GGJT formats that GGUF replaced in 2023.
    if (value == 0x67676d6cu || value == 0x67676d66u || value == 0x67676a74u) {
        info["reason"] = "old GGML format";
        raise_error("ModelLoadError",
                    "cannot load " + path +
                        ": this is an old GGML (v1-v3, .bin) model; llama.cpp now requires GGUF files. "
                        "Download the GGUF version of this model (or convert it with llama.cpp's tools).",
                    info);
    }
    info["reason"] = "not a GGUF file";
    raise_error("ModelLoadError", "cannot load " + path + ": not a GGUF file (bad magic bytes)", info);
}

struct KvOverrides {
    std::vector<llama_model_kv_override> items;

    explicit KvOverrides(const py::object& overrides) {
        if (overrides.is_none()) return;
        for (auto item : overrides.cast<py::dict>()) {
            std::string key = py::str(item.first);
            py::handle value = item.second;
            llama_model_kv_override o{};
            if (key.empty() || key.size() >= sizeof o.key)
                throw py::value_error("kv_overrides key must be 1 to 127 characters: " + key);
            std::strncpy(o.key, key.c_str(), sizeof o.key - 1);
            if (py::isinstance<py::bool_>(value)) {
                o.tag = LLAMA_KV_OVERRIDE_TYPE_BOOL;
                o.val_bool = value.cast<bool>();
            } else if (py::isinstance<py::int_>(value)) {
                o.tag = LLAMA_KV_OVERRIDE_TYPE_INT;
                o.val_i64 = value.cast<int64_t>();
            } else if (py::isinstance<py::float_>(value)) {
                o.tag = LLAMA_KV_OVERRIDE_TYPE_FLOAT;
                o.val_f64 = value.cast<double>();
            } else if (py::isinstance<py::str>(value)) {
                std::string s = value.cast<std::string>();
                if (s.size() >= sizeof o.val_str)
                    throw py::value_error("kv_overrides value for " + key + " is longer than 127 bytes");
                o.tag = LLAMA_KV_OVERRIDE_TYPE_STR;
                std::strncpy(o.val_str, s.c_str(), sizeof o.val_str - 1);
            } else {
                throw py::type_error("kv_overrides value for " + key + " must be bool, int, float or str");
            }
            items.push_back(o);
        }
        if (!items.empty()) items.push_back(llama_model_kv_override{});  // empty key ends the list
    }
    const llama_model_kv_override* data() const { return items.empty() ? nullptr : items.data(); }
};

struct Progress {
    py::object callback;
    bool cancelled = false;
    std::optional<py::error_already_set> error;

    static bool call(float fraction, void* self_ptr) {
        auto* self = static_cast<Progress*>(self_ptr);
        py::gil_scoped_acquire acquire;
        try {
            py::object result = self->callback(fraction);
            if (!result.is_none() && !py::bool_(result)) {
                self->cancelled = true;
                return false;
            }
            return true;
        } catch (py::error_already_set& e) {
            self->error = std::move(e);
            return false;
        }
    }
};

// llama.cpp's default (no device list) also offloads to every registered RPC worker, even
// one registered for another model, or one that is gone. Workers are used only when named;
// otherwise this machine's GPUs, as llama.cpp would pick them (iGPUs only without a GPU).
// Empty: no worker is registered, llama.cpp's own default applies.
std::vector<ggml_backend_dev_t> local_default_devices() {
    std::vector<ggml_backend_dev_t> gpus, igpus;
    bool any_remote = false;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
        if (reg != nullptr && std::string(ggml_backend_reg_name(reg)) == "RPC") {
            any_remote = true;
        } else if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU) {
            gpus.push_back(dev);
        } else if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_IGPU) {
            igpus.push_back(dev);
        }
    }
    if (!any_remote) return {};
    std::vector<ggml_backend_dev_t> chosen = gpus.empty() ? igpus : gpus;
    chosen.push_back(nullptr);
    return chosen;
}

}  // namespace

Model::Model(const std::string& path, int n_gpu_layers, int main_gpu, const py::object& devices, bool use_mmap,
             bool use_mlock, bool vocab_only, bool check_tensors, const py::object& kv_overrides,
             const py::object& progress)
    : path_(path), vocab_only_(vocab_only) {
    check_model_file(path);
    KvOverrides overrides(kv_overrides);

    std::vector<ggml_backend_dev_t> device_list;
    if (!devices.is_none()) {
        for (auto name : devices) {
            std::string n = py::str(name);
            ggml_backend_dev_t dev = ggml_backend_dev_by_name(n.c_str());
            if (dev == nullptr) throw py::value_error("unknown device: " + n + " (see fireside.devices())");
            device_list.push_back(dev);
        }
        device_list.push_back(nullptr);
    } else {
        device_list = local_default_devices();
    }

    llama_model_params params = llama_model_default_params();
    params.n_gpu_layers = n_gpu_layers;
    params.main_gpu = main_gpu;
    params.devices = device_list.empty() ? nullptr : device_list.data();
    params.load_mode = use_mmap ? (use_mlock ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MMAP)
                                : (use_mlock ? LLAMA_LOAD_MODE_MLOCK : LLAMA_LOAD_MODE_NONE);
    params.vocab_only = vocab_only;
    params.check_tensors = check_tensors;
    params.kv_overrides = overrides.data();
    Progress state{progress};
    if (!progress.is_none()) {
        params.progress_callback = &Progress::call;
        params.progress_callback_user_data = &state;
    }

    std::string reason;
    llama_model* raw = call_explained([&] { return llama_model_load_from_file(path.c_str(), params); }, reason);
    if (raw == nullptr) {
        if (state.error) throw *state.error;
        if (state.cancelled) raise_error("LoadCancelled", "loading " + path + " was cancelled by its progress callback");
        py::dict info;
        info["path"] = path;
        info["reason"] = reason.empty() ? py::object(py::none()) : py::object(py::str(reason));
        raise_error("ModelLoadError",
                    "cannot load " + path + ": " + (reason.empty() ? "llama.cpp could not load it" : reason), info);
    }
    model_ = ModelPtr(raw, QuietFree<llama_model_free>{});
}

const ModelPtr& Model::handle() const {
    if (!model_) raise_closed("Model");
    return model_;
}

void Model::check_token(llama_token token) const {
    int32_t n = llama_vocab_n_tokens(vocab());
    if (token < 0 || token >= n) {
        throw py::value_error("token id " + std::to_string(token) + " is out of range [0, " + std::to_string(n) + ")");
    }
}

namespace {

std::string vocab_type_name(enum llama_vocab_type t) {
    switch (t) {
        case LLAMA_VOCAB_TYPE_SPM: return "spm";
        case LLAMA_VOCAB_TYPE_BPE: return "bpe";
        case LLAMA_VOCAB_TYPE_WPM: return "wpm";
        case LLAMA_VOCAB_TYPE_UGM: return "ugm";
        case LLAMA_VOCAB_TYPE_RWKV: return "rwkv";
        case LLAMA_VOCAB_TYPE_PLAMO2: return "plamo2";
        default: return "none";
    }
}

py::dict metadata(const Model& self) {
    const llama_model* m = self.handle().get();
    py::dict out;
    for (int32_t i = 0; i < llama_model_meta_count(m); ++i) {
        std::string key = read_meta([&](char* b, size_t n) { return llama_model_meta_key_by_index(m, i, b, n); });
        std::string val = read_meta([&](char* b, size_t n) { return llama_model_meta_val_str_by_index(m, i, b, n); });
        out[py::str(key)] = py::str(PyUnicode_DecodeUTF8(val.data(), val.size(), "replace"));
    }
    return out;
}

std::string meta_value(const Model& self, const char* key) {
    const llama_model* m = self.handle().get();
    return read_meta([&](char* b, size_t n) { return llama_model_meta_val_str(m, key, b, n); });
}

}  // namespace

void register_model(py::module_& m) {
    m.attr("TOKEN_ATTR_UNKNOWN") = static_cast<int>(LLAMA_TOKEN_ATTR_UNKNOWN);
    m.attr("TOKEN_ATTR_UNUSED") = static_cast<int>(LLAMA_TOKEN_ATTR_UNUSED);
    m.attr("TOKEN_ATTR_NORMAL") = static_cast<int>(LLAMA_TOKEN_ATTR_NORMAL);
    m.attr("TOKEN_ATTR_CONTROL") = static_cast<int>(LLAMA_TOKEN_ATTR_CONTROL);
    m.attr("TOKEN_ATTR_USER_DEFINED") = static_cast<int>(LLAMA_TOKEN_ATTR_USER_DEFINED);
    m.attr("TOKEN_ATTR_BYTE") = static_cast<int>(LLAMA_TOKEN_ATTR_BYTE);

    py::class_<Model>(m, "Model", "A loaded GGUF model: weights (unless vocab_only), vocabulary and metadata.")
        .def(py::init([](const py::object& path, int n_gpu_layers, int main_gpu, const py::object& devices,
                         bool use_mmap, bool use_mlock, bool vocab_only, bool check_tensors,
                         const py::object& kv_overrides, const py::object& progress) {
                 std::string p = py::str(py::module_::import("os").attr("fspath")(path));
                 return new Model(p, n_gpu_layers, main_gpu, devices, use_mmap, use_mlock, vocab_only,
                                  check_tensors, kv_overrides, progress);
             }),
             py::arg("path"), py::kw_only(), py::arg("n_gpu_layers") = 0, py::arg("main_gpu") = 0,
             py::arg("devices") = py::none(), py::arg("use_mmap") = true, py::arg("use_mlock") = false,
             py::arg("vocab_only") = false, py::arg("check_tensors") = false, py::arg("kv_overrides") = py::none(),
             py::arg("progress") = py::none(),
             R"pbdoc(Load ``path`` (the first file of a split model loads all its parts).

``progress(fraction)`` is called during the load; returning ``False`` cancels it and raises
LoadCancelled. Raises FileNotFoundError, IsADirectoryError or ModelLoadError (with llama.cpp's reason).)pbdoc")
        .def("close", &Model::close, "Release this handle; memory is freed once no Context or Sampler uses it.")
        .def("__enter__", [](Model& self) -> Model& { return self; }, py::return_value_policy::reference)
        .def("__exit__", [](Model& self, const py::args&) { self.close(); })
        .def_property_readonly("closed", &Model::closed)
        .def_property_readonly("path", &Model::path)
        .def_property_readonly("vocab_only", &Model::vocab_only)
        .def_property_readonly("metadata", &metadata, "All GGUF key/values (arrays are summarised by llama.cpp).")
        .def(
            "chat_template",
            [](const Model& self, const std::optional<std::string>& name) -> std::optional<std::string> {
                const char* t = llama_model_chat_template(self.handle().get(), name ? name->c_str() : nullptr);
                if (t == nullptr) return std::nullopt;
                return std::string(t);
            },
            py::arg("name") = py::none(), "The model's (or the named variant's) Jinja chat template, or None.")
        .def_property_readonly("architecture", [](const Model& s) { return meta_value(s, "general.architecture"); })
        .def_property_readonly("description", [](const Model& s) {
            return read_meta([&](char* b, size_t n) { return llama_model_desc(s.handle().get(), b, n); });
        })
        .def_property_readonly("n_ctx_train", [](const Model& s) { return llama_model_n_ctx_train(s.handle().get()); })
        .def_property_readonly("n_embd", [](const Model& s) { return llama_model_n_embd(s.handle().get()); })
        .def_property_readonly("n_embd_out", [](const Model& s) { return llama_model_n_embd_out(s.handle().get()); })
        .def_property_readonly("n_layer", [](const Model& s) { return llama_model_n_layer(s.handle().get()); })
        .def_property_readonly("n_head", [](const Model& s) { return llama_model_n_head(s.handle().get()); })
        .def_property_readonly("n_head_kv", [](const Model& s) { return llama_model_n_head_kv(s.handle().get()); })
        .def_property_readonly("n_params", [](const Model& s) { return llama_model_n_params(s.handle().get()); })
        .def_property_readonly("size", [](const Model& s) { return llama_model_size(s.handle().get()); },
                               "Total size of the weights in bytes.")
        .def_property_readonly("has_encoder", [](const Model& s) { return llama_model_has_encoder(s.handle().get()); })
        .def_property_readonly("has_decoder", [](const Model& s) { return llama_model_has_decoder(s.handle().get()); })
        // vocabulary
        .def_property_readonly("n_vocab", [](const Model& s) { return llama_vocab_n_tokens(s.vocab()); })
        .def_property_readonly("vocab_type", [](const Model& s) { return vocab_type_name(llama_vocab_type(s.vocab())); })
        .def_property_readonly("bos", [](const Model& s) { return llama_vocab_bos(s.vocab()); },
                               "Token id, or -1 when the vocabulary has none.")
        .def_property_readonly("eos", [](const Model& s) { return llama_vocab_eos(s.vocab()); })
        .def_property_readonly("eot", [](const Model& s) { return llama_vocab_eot(s.vocab()); })
        .def_property_readonly("pad", [](const Model& s) { return llama_vocab_pad(s.vocab()); })
        .def_property_readonly("sep", [](const Model& s) { return llama_vocab_sep(s.vocab()); })
        .def_property_readonly("nl", [](const Model& s) { return llama_vocab_nl(s.vocab()); })
        .def_property_readonly("add_bos", [](const Model& s) { return llama_vocab_get_add_bos(s.vocab()); })
        .def_property_readonly("add_eos", [](const Model& s) { return llama_vocab_get_add_eos(s.vocab()); })
        .def_property_readonly(
            "eog_tokens",
            [](const Model& s) {
                std::vector<llama_token> out;
                const llama_vocab* v = s.vocab();
                const int32_t n = llama_vocab_n_tokens(v);
                for (llama_token t = 0; t < n; ++t) {
                    if (llama_vocab_is_eog(v, t)) out.push_back(t);
                }
                return out;
            },
            "Every end-of-generation token id (eos, eot and similar), in order.")
        .def(
            "is_eog",
            [](const Model& s, llama_token t) { s.check_token(t); return llama_vocab_is_eog(s.vocab(), t); },
            py::arg("token"), "End of generation (eos, eot and similar).")
        .def(
            "is_control",
            [](const Model& s, llama_token t) { s.check_token(t); return llama_vocab_is_control(s.vocab(), t); },
            py::arg("token"))
        .def(
            "token_text",
            [](const Model& s, llama_token t) {
                s.check_token(t);
                const char* text = llama_vocab_get_text(s.vocab(), t);
                return py::str(PyUnicode_DecodeUTF8(text, std::strlen(text), "replace"));
            },
            py::arg("token"))
        .def(
            "token_score",
            [](const Model& s, llama_token t) { s.check_token(t); return llama_vocab_get_score(s.vocab(), t); },
            py::arg("token"))
        .def(
            "token_attr",
            [](const Model& s, llama_token t) {
                s.check_token(t);
                return static_cast<int>(llama_vocab_get_attr(s.vocab(), t));
            },
            py::arg("token"), "Bit flags, see the TOKEN_ATTR_* constants.")
        .def(
            "token_to_piece",
            [](const Model& s, llama_token t, bool special, int lstrip) {
                s.check_token(t);
                std::string piece = token_to_piece(s.vocab(), t, special, lstrip);
                return py::bytes(piece);
            },
            py::arg("token"), py::kw_only(), py::arg("special") = true, py::arg("lstrip") = 0,
            "The bytes of one token (may be part of a UTF-8 character).")
        .def(
            "tokenize",
            [](const Model& s, const py::object& text, bool add_special, bool parse_special) {
                std::string bytes;
                if (py::isinstance<py::str>(text) || py::isinstance<py::bytes>(text)) {
                    bytes = text.cast<std::string>();
                } else {
                    throw py::type_error("tokenize() needs str or bytes, not " +
                                         std::string(py::str(text.get_type().attr("__name__"))));
                }
                return tokenize(s.vocab(), bytes, add_special, parse_special);
            },
            py::arg("text"), py::kw_only(), py::arg("add_special") = true, py::arg("parse_special") = false,
            "Token ids of ``text``; ``add_special`` adds BOS/EOS as the model wants, "
            "``parse_special`` turns special-token text (like <|im_start|>) into its token.")
        .def(
            "detokenize",
            [](const Model& s, const std::vector<llama_token>& tokens, bool remove_special, bool unparse_special) {
                for (llama_token t : tokens) s.check_token(t);
                return py::bytes(detokenize(s.vocab(), tokens, remove_special, unparse_special));
            },
            py::arg("tokens"), py::kw_only(), py::arg("remove_special") = false, py::arg("unparse_special") = false,
            "The bytes of a token sequence (decode with errors='replace' for display).")
        .def(
            "load_lora", [](const Model& s, const py::object& path) {
                return LoraAdapter(s.handle(), py::str(py::module_::import("os").attr("fspath")(path)));
            },
            py::arg("path"), "Load a LoRA adapter for this model (apply it with Context.set_lora).")
        .def("__repr__", [](const Model& s) {
            if (s.closed()) return std::string("<fireside._core.Model closed>");
            return "<fireside._core.Model " + s.path() + ">";
        });
}

}  // namespace fireside
