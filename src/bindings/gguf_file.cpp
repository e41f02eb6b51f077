// GGUF files without loading weights: read metadata and tensor infos, split a model into
// shards (the layout llama.cpp's loader expects: <prefix>-0000k-of-0000n.gguf, split.no,
// split.count, split.tensors.count in every shard, all other metadata in the first), and
// merge shards back into one file.
//
// Values are read only after checking their GGUF type: gguf.h's typed getters abort the
// process on a type mismatch, and a file is untrusted input.
#include "common.hpp"

#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "gguf.h"

namespace llamahost {
namespace {

namespace fs = std::filesystem;

constexpr const char *kSplitNo = "split.no";
constexpr const char *kSplitCount = "split.count";
constexpr const char *kSplitTensors = "split.tensors.count";

struct GgufFile {
    gguf_context *gguf = nullptr;
    ggml_context *tensors = nullptr;  // tensor metadata only (no_alloc)
    std::string path;

    GgufFile() = default;
    GgufFile(const GgufFile &) = delete;
    GgufFile &operator=(const GgufFile &) = delete;
    GgufFile(GgufFile &&o) noexcept : gguf(o.gguf), tensors(o.tensors), path(std::move(o.path)) {
        o.gguf = nullptr;
        o.tensors = nullptr;
    }
    ~GgufFile() {
        if (gguf != nullptr) gguf_free(gguf);
        if (tensors != nullptr) ggml_free(tensors);
    }
};

// Opens a GGUF file; GGUFError (with gguf's own reason) if it is not one.
GgufFile open_gguf(const std::string &path, bool with_tensors, const char *error_class = "GGUFError") {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) raise(error_class, "no such GGUF file: '" + path + "'");
    GgufFile f;
    f.path = path;
    std::string reason;
    {
        LogCapture capture;
        gguf_init_params params{/*no_alloc=*/true, with_tensors ? &f.tensors : nullptr};
        f.gguf = gguf_init_from_file(path.c_str(), params);
        if (f.gguf == nullptr) reason = capture.reason();
    }
    if (f.gguf == nullptr) {
        raise(error_class, "'" + path + "' is not a readable GGUF file" +
                               (reason.empty() ? std::string() : ": " + reason));
    }
    return f;
}

py::object scalar_value(enum gguf_type type, const void *data) {
    switch (type) {
        case GGUF_TYPE_UINT8: return py::int_(*static_cast<const uint8_t *>(data));
        case GGUF_TYPE_INT8: return py::int_(*static_cast<const int8_t *>(data));
        case GGUF_TYPE_UINT16: return py::int_(*static_cast<const uint16_t *>(data));
        case GGUF_TYPE_INT16: return py::int_(*static_cast<const int16_t *>(data));
        case GGUF_TYPE_UINT32: return py::int_(*static_cast<const uint32_t *>(data));
        case GGUF_TYPE_INT32: return py::int_(*static_cast<const int32_t *>(data));
        case GGUF_TYPE_UINT64: return py::int_(*static_cast<const uint64_t *>(data));
        case GGUF_TYPE_INT64: return py::int_(*static_cast<const int64_t *>(data));
        case GGUF_TYPE_FLOAT32: return py::float_(*static_cast<const float *>(data));
        case GGUF_TYPE_FLOAT64: return py::float_(*static_cast<const double *>(data));
        case GGUF_TYPE_BOOL: return py::bool_(*static_cast<const int8_t *>(data) != 0);
        default: return py::none();
    }
}

size_t scalar_size(enum gguf_type type) {
    switch (type) {
        case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
        case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
        case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
        case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
        default: return 0;
    }
}

py::object kv_value(const gguf_context *g, int64_t id) {
    const enum gguf_type type = gguf_get_kv_type(g, id);
    if (type == GGUF_TYPE_STRING) {
        const char *s = gguf_get_val_str(g, id);
        return utf8_str(s, std::strlen(s));
    }
    if (type != GGUF_TYPE_ARRAY) {
        if (scalar_size(type) == 0) return py::none();
        return scalar_value(type, gguf_get_val_data(g, id));
    }
    const enum gguf_type item = gguf_get_arr_type(g, id);
    const size_t n = gguf_get_arr_n(g, id);
    py::list out(n);
    if (item == GGUF_TYPE_STRING) {
        for (size_t i = 0; i < n; ++i) {
            const char *s = gguf_get_arr_str(g, id, i);
            out[i] = utf8_str(s, std::strlen(s));
        }
        return std::move(out);
    }
    const size_t size = scalar_size(item);
    if (size == 0) return py::none();  // nested arrays: not used by any model format we read
    const auto *data = static_cast<const char *>(gguf_get_arr_data(g, id));
    for (size_t i = 0; i < n; ++i) out[i] = scalar_value(item, data + i * size);
    return std::move(out);
}

// The integer value of `key`, or -1 if absent; GGUFError if it is not an integer.
int64_t int_value(const GgufFile &f, const char *key) {
    const int64_t id = gguf_find_key(f.gguf, key);
    if (id < 0) return -1;
    const enum gguf_type type = gguf_get_kv_type(f.gguf, id);
    switch (type) {
        case GGUF_TYPE_UINT8: return gguf_get_val_u8(f.gguf, id);
        case GGUF_TYPE_UINT16: return gguf_get_val_u16(f.gguf, id);
        case GGUF_TYPE_INT16: return gguf_get_val_i16(f.gguf, id);
        case GGUF_TYPE_UINT32: return gguf_get_val_u32(f.gguf, id);
        case GGUF_TYPE_INT32: return gguf_get_val_i32(f.gguf, id);
        case GGUF_TYPE_UINT64: return static_cast<int64_t>(gguf_get_val_u64(f.gguf, id));
        case GGUF_TYPE_INT64: return gguf_get_val_i64(f.gguf, id);
        default:
            raise("GGUFError", "'" + f.path + "': `" + key + "` must be an integer, it is a " +
                                   gguf_type_name(type));
    }
}

py::dict read_gguf(const std::string &path, int64_t max_array_length) {
    GgufFile f = open_gguf(path, /*with_tensors=*/false);
    const gguf_context *g = f.gguf;
    py::dict metadata, omitted;
    const int64_t n_kv = gguf_get_n_kv(g);
    for (int64_t i = 0; i < n_kv; ++i) {
        const char *key = gguf_get_key(g, i);
        if (gguf_get_kv_type(g, i) == GGUF_TYPE_ARRAY && max_array_length >= 0 &&
            gguf_get_arr_n(g, i) > static_cast<size_t>(max_array_length)) {
            omitted[py::str(key)] =
                py::make_tuple(gguf_type_name(gguf_get_arr_type(g, i)), gguf_get_arr_n(g, i));
            continue;
        }
        metadata[utf8_str(key, std::strlen(key))] = kv_value(g, i);
    }
    const size_t data_offset = gguf_get_data_offset(g);
    py::list tensors;
    const int64_t n_tensors = gguf_get_n_tensors(g);
    for (int64_t i = 0; i < n_tensors; ++i) {
        const int64_t *ne = gguf_get_tensor_ne(g, i);
        int n_dims = GGML_MAX_DIMS;
        while (n_dims > 1 && ne[n_dims - 1] == 1) --n_dims;
        py::list shape;
        for (int d = 0; d < n_dims; ++d) shape.append(ne[d]);
        py::dict t;
        t["name"] = py::str(gguf_get_tensor_name(g, i));
        t["type"] = py::str(ggml_type_name(gguf_get_tensor_type(g, i)));
        t["shape"] = shape;
        t["offset"] = data_offset + gguf_get_tensor_offset(g, i);
        t["size"] = gguf_get_tensor_size(g, i);
        tensors.append(t);
    }
    py::dict out;
    out["path"] = path;
    out["version"] = gguf_get_version(g);
    out["alignment"] = gguf_get_alignment(g);
    out["data_offset"] = data_offset;
    out["metadata"] = metadata;
    out["omitted_arrays"] = omitted;
    out["tensors"] = tensors;
    return out;
}

// <prefix>-0000k-of-0000n.gguf for 0-based shard index `no` (llama_split_path adds 1).
std::string split_path(const std::string &prefix, int no, int count) {
    char buf[4096];
    const int n = llama_split_path(buf, sizeof(buf), prefix.c_str(), no, count);
    if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf)) {
        raise("OptionError", "shard path prefix is too long: '" + prefix + "'");
    }
    return std::string(buf, static_cast<size_t>(n));
}

struct FileCloser {
    void operator()(FILE *f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

File open_file(const std::string &path, const char *mode) {
    FILE *f = std::fopen(path.c_str(), mode);
    if (f == nullptr) raise("GGUFError", "cannot open '" + path + "': " + std::strerror(errno));
    return File(f);
}

// Appends one tensor's bytes from `src` (at its data offset) to `dst`, then pads to alignment.
void copy_tensor(FILE *dst, FILE *src, const GgufFile &from, int64_t tensor_id,
                 std::vector<char> &buf, size_t alignment) {
    const size_t offset = gguf_get_data_offset(from.gguf) + gguf_get_tensor_offset(from.gguf, tensor_id);
    const size_t size = gguf_get_tensor_size(from.gguf, tensor_id);
    if (fseeko(src, static_cast<off_t>(offset), SEEK_SET) != 0) {
        raise("GGUFError", "'" + from.path + "': cannot seek to tensor data");
    }
    size_t left = size;
    while (left > 0) {
        const size_t chunk = std::min(left, buf.size());
        if (std::fread(buf.data(), 1, chunk, src) != chunk) {
            raise("GGUFError", "'" + from.path + "': tensor '" +
                                   gguf_get_tensor_name(from.gguf, tensor_id) +
                                   "' data ends before the end of the file allows");
        }
        if (std::fwrite(buf.data(), 1, chunk, dst) != chunk) {
            raise("GGUFError", std::string("write failed: ") + std::strerror(errno));
        }
        left -= chunk;
    }
    const size_t padded = GGML_PAD(size, alignment);
    static const char zeros[64] = {};
    for (size_t pad = padded - size; pad > 0;) {
        const size_t n = std::min(pad, sizeof(zeros));
        if (std::fwrite(zeros, 1, n, dst) != n) raise("GGUFError", "write failed");
        pad -= n;
    }
}

// Writes `out`'s metadata then the listed tensors' data to `path` atomically.
void write_gguf(const gguf_context *out, const std::string &path,
                const std::vector<std::pair<const GgufFile *, int64_t>> &tensors) {
    const std::string tmp = path + ".partial";
    try {
        if (!gguf_write_to_file(out, tmp.c_str(), /*only_meta=*/true)) {
            raise("GGUFError", "cannot write '" + tmp + "'");
        }
        File dst = open_file(tmp, "ab");
        std::vector<char> buf(8 << 20);
        const size_t alignment = gguf_get_alignment(out);
        const GgufFile *open_src = nullptr;
        File src;
        for (const auto &[from, id] : tensors) {
            if (from != open_src) {
                src = open_file(from->path, "rb");
                open_src = from;
            }
            copy_tensor(dst.get(), src.get(), *from, id, buf, alignment);
        }
        if (std::fflush(dst.get()) != 0 || fsync(fileno(dst.get())) != 0) {
            raise("GGUFError", "cannot flush '" + tmp + "': " + std::strerror(errno));
        }
        dst.reset();
        fs::rename(tmp, path);
    } catch (...) {
        std::error_code ec;
        fs::remove(tmp, ec);
        throw;
    }
}

std::vector<std::string> split_gguf(const std::string &path, const std::string &out_prefix,
                                    int n_splits) {
    GgufFile src = open_gguf(path, /*with_tensors=*/true);
    const int64_t n_tensors = gguf_get_n_tensors(src.gguf);
    if (n_splits < 1 || n_splits > n_tensors || n_splits > 99999) {
        raise("OptionError", "`n_splits` must be in [1, " + std::to_string(std::min<int64_t>(n_tensors, 99999)) +
                                 "] for '" + path + "' (" + std::to_string(n_tensors) +
                                 " tensors), got " + std::to_string(n_splits));
    }
    if (int_value(src, kSplitCount) > 1) {
        raise("GGUFError", "'" + path + "' is already one shard of a split model; merge it first");
    }
    // Contiguous groups of tensors with about equal bytes, at least one tensor each.
    size_t total = 0;
    for (int64_t i = 0; i < n_tensors; ++i) total += gguf_get_tensor_size(src.gguf, i);
    std::vector<int64_t> first_of_split{0};
    size_t acc = 0;
    for (int64_t i = 0; i < n_tensors && static_cast<int>(first_of_split.size()) < n_splits; ++i) {
        acc += gguf_get_tensor_size(src.gguf, i);
        const auto k = static_cast<int64_t>(first_of_split.size());
        const int64_t remaining_tensors = n_tensors - (i + 1);
        const int64_t remaining_splits = n_splits - k;
        if ((acc >= total / static_cast<size_t>(n_splits) * static_cast<size_t>(k) &&
             remaining_tensors >= remaining_splits) ||
            remaining_tensors == remaining_splits) {
            first_of_split.push_back(i + 1);
        }
    }
    first_of_split.push_back(n_tensors);

    std::vector<std::string> paths;
    {
        py::gil_scoped_release release;
        const int64_t alignment_key = gguf_find_key(src.gguf, GGUF_KEY_GENERAL_ALIGNMENT);
        for (int k = 0; k < n_splits; ++k) {
            std::unique_ptr<gguf_context, decltype(&gguf_free)> out(gguf_init_empty(), gguf_free);
            if (k == 0) {
                gguf_set_kv(out.get(), src.gguf);
            } else if (alignment_key >= 0) {
                gguf_set_val_u32(out.get(), GGUF_KEY_GENERAL_ALIGNMENT,
                                 static_cast<uint32_t>(gguf_get_alignment(src.gguf)));
            }
            gguf_set_val_u16(out.get(), kSplitNo, static_cast<uint16_t>(k));
            gguf_set_val_u16(out.get(), kSplitCount, static_cast<uint16_t>(n_splits));
            gguf_set_val_i32(out.get(), kSplitTensors, static_cast<int32_t>(n_tensors));
            std::vector<std::pair<const GgufFile *, int64_t>> tensors;
            for (int64_t i = first_of_split[static_cast<size_t>(k)];
                 i < first_of_split[static_cast<size_t>(k) + 1]; ++i) {
                gguf_add_tensor(out.get(),
                                ggml_get_tensor(src.tensors, gguf_get_tensor_name(src.gguf, i)));
                tensors.emplace_back(&src, i);
            }
            paths.push_back(split_path(out_prefix, k, n_splits));
            write_gguf(out.get(), paths.back(), tensors);
        }
    }
    return paths;
}

std::string merge_gguf(const std::string &first_shard, const std::string &out_path) {
    std::vector<GgufFile> shards;
    shards.push_back(open_gguf(first_shard, /*with_tensors=*/true));
    const int64_t count = int_value(shards[0], kSplitCount);
    const int64_t first_no = int_value(shards[0], kSplitNo);
    if (count < 1 || first_no != 0) {
        raise("ShardError", "'" + first_shard + "' is not the first shard of a split model (" +
                                (count < 1 ? "it has no split.count" : "its split.no is " +
                                                                          std::to_string(first_no)) +
                                ")");
    }
    char prefix[4096];
    if (llama_split_prefix(prefix, sizeof(prefix), first_shard.c_str(), 0,
                           static_cast<int>(count)) <= 0) {
        raise("ShardError", "'" + first_shard +
                                "' is not named like the first of " + std::to_string(count) + " shards (" +
                                split_path("<prefix>", 0, static_cast<int>(count)) + ")");
    }
    for (int64_t k = 1; k < count; ++k) {
        const std::string p = split_path(prefix, static_cast<int>(k), static_cast<int>(count));
        shards.push_back(open_gguf(p, /*with_tensors=*/true, "ShardError"));
        const int64_t no = int_value(shards.back(), kSplitNo);
        const int64_t cnt = int_value(shards.back(), kSplitCount);
        if (no != k || cnt != count) {
            raise("ShardError", "'" + p + "' says it is shard " + std::to_string(no + 1) + " of " +
                                    std::to_string(cnt) + ", expected " + std::to_string(k + 1) +
                                    " of " + std::to_string(count));
        }
    }
    std::unique_ptr<gguf_context, decltype(&gguf_free)> out(gguf_init_empty(), gguf_free);
    gguf_set_kv(out.get(), shards[0].gguf);
    for (const char *key : {kSplitNo, kSplitCount, kSplitTensors}) gguf_remove_key(out.get(), key);
    std::vector<std::pair<const GgufFile *, int64_t>> tensors;
    for (const GgufFile &s : shards) {
        for (int64_t i = 0; i < gguf_get_n_tensors(s.gguf); ++i) {
            const char *name = gguf_get_tensor_name(s.gguf, i);
            if (gguf_find_tensor(out.get(), name) >= 0) {
                raise("ShardError", "tensor '" + std::string(name) + "' appears in two shards");
            }
            gguf_add_tensor(out.get(), ggml_get_tensor(s.tensors, name));
            tensors.emplace_back(&s, i);
        }
    }
    const int64_t expected = int_value(shards[0], kSplitTensors);
    if (expected >= 0 && expected != static_cast<int64_t>(tensors.size())) {
        raise("ShardError", "the shards hold " + std::to_string(tensors.size()) +
                                " tensors, split.tensors.count says " + std::to_string(expected));
    }
    {
        py::gil_scoped_release release;
        write_gguf(out.get(), out_path, tensors);
    }
    return out_path;
}

}  // namespace

void register_gguf(py::module_ &m) {
    m.def("read_gguf", &read_gguf, py::arg("path"), py::arg("max_array_length") = -1,
          R"doc(Read a GGUF file's header, metadata and tensor infos without loading weights.
Arrays longer than max_array_length (if >= 0) are left out and listed in
"omitted_arrays" as (item type, length). Raises GGUFError for anything that is not a
readable GGUF file.)doc");
    m.def("split_gguf", &split_gguf, py::arg("path"), py::arg("out_prefix"), py::arg("n_splits"),
          "Write <out_prefix>-0000k-of-0000n.gguf shards that llama.cpp loads as one model.");
    m.def("merge_gguf", &merge_gguf, py::arg("first_shard"), py::arg("out_path"),
          "Merge all shards of a split model, found from its first shard, into one file.");
}

}  // namespace llamahost
