#pragma once
// Reader and writer of the safetensors format, so checkpoints open in Python (safetensors, torch)
// without conversion:
//
//   [u64 little-endian N][N bytes of JSON header, space-padded to a multiple of 8][data section]
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data section) plus an optional "__metadata__" object of string -> string.
// Supported dtypes: F32, F64, I64. The host must be little-endian (checked at compile time), so
// tensor bytes are stored exactly as they lie in memory.
//
// Integrity: write_safetensors stamps metadata["ihlab.checksum"] with the FNV-1a 64-bit hash of
// the data section; read_safetensors verifies it when present, so a flipped bit is reported rather
// than silently trained on. Files from other writers (no checksum) are still accepted.
#include "core/tensor.h"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace ihlab {

struct RawTensor {
  std::string name;
  std::string dtype;  // "F32", "F64" or "I64"
  Shape shape;
  std::vector<uint8_t> bytes;  // numel * itemsize bytes, little-endian
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  // In file order: the order they were written by write_safetensors (the header's key order).
  std::vector<RawTensor> tensors;
  // nullptr when absent.
  const RawTensor* find(const std::string& name) const;
};

inline constexpr const char* kChecksumKey = "ihlab.checksum";

// Bytes per element of a supported dtype; throws ihlab::Error naming the dtype otherwise.
int64_t dtype_itemsize(const std::string& dtype);
// The safetensors dtype of T ("F32", "F64", "I64") and its human name ("float32", ...).
template <typename T>
constexpr const char* dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return "F32";
  else if constexpr (std::is_same_v<T, double>)
    return "F64";
  else if constexpr (std::is_same_v<T, int64_t>)
    return "I64";
  else
    static_assert(!sizeof(T), "safetensors: unsupported element type");
}
template <typename T>
constexpr const char* type_name_of() {
  if constexpr (std::is_same_v<T, float>)
    return "float32";
  else if constexpr (std::is_same_v<T, double>)
    return "float64";
  else if constexpr (std::is_same_v<T, int64_t>)
    return "int64";
  else
    static_assert(!sizeof(T), "safetensors: unsupported element type");
}

// FNV-1a 64-bit as 16 lowercase hex digits.
std::string fnv1a64_hex(const uint8_t* data, size_t size);

// Writes `bytes` to "<path>.tmp", fsyncs it, renames it over `path` and fsyncs the directory: a
// crash leaves either the old file or the complete new one, never a torn one. Throws ihlab::Error
// naming the path on any I/O failure (and removes the .tmp).
void write_file_atomic(const std::string& path, std::string_view bytes);

// Writes atomically (see write_file_atomic). Tensors are laid out in the given order. Adds
// metadata["ihlab.checksum"] (replacing any given value). Throws ihlab::Error on a duplicate or
// reserved name, an unsupported dtype, or bytes that do not match the shape.
void write_safetensors(const std::string& path, const SafetensorsFile& f);

// Validates everything and throws ihlab::Error naming the file and the problem: missing file,
// file shorter than 8 bytes, header length larger than the file, header not JSON (or not of the
// expected structure), duplicate tensor names, unknown dtype, data_offsets overlapping, leaving
// gaps, out of range or not matching numel * itemsize, trailing bytes, checksum mismatch.
SafetensorsFile read_safetensors(const std::string& path);

// Copies a tensor's elements into a RawTensor (T = float, double or int64_t).
template <typename T>
RawTensor to_raw(const std::string& name, const Tensor<T>& t);
// Copies a RawTensor into a new Tensor<T>; throws if the dtype is not T's
// ("tensor 'x' is F32 but float64 was expected") or the byte count does not match the shape.
template <typename T>
Tensor<T> from_raw(const RawTensor& raw);

}  // namespace ihlab
