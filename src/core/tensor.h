#pragma once
// Dense row-major tensors in float32 or float64.
//
// Tensor<T> owns its storage through a shared buffer (copies are shallow; clone() is deep).
// TensorView<T> is a non-owning (pointer, shape) pair used by kernels and checkpoints.
// Storage is always contiguous: ops that would need strides (transpose) copy instead, which keeps
// every kernel a plain loop and makes reductions run in one fixed order (bit-reproducibility).
#include "core/error.h"

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace ihlab {

using Shape = std::vector<int64_t>;

inline int64_t numel_of(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<int64_t>());
}
std::string shape_str(const Shape& s);

template <typename T>
struct TensorView {
  T* data = nullptr;
  Shape shape;
  int64_t numel() const { return numel_of(shape); }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  T& operator[](int64_t i) const { return data[i]; }
};

template <typename T>
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape, T fill = T(0))
      : shape_(std::move(shape)), buf_(std::make_shared<std::vector<T>>(numel_of(shape_), fill)) {
    for (auto d : shape_) IHLAB_CHECK(d >= 0, "tensor: negative dimension in shape {}", shape_str(shape_));
  }
  Tensor(Shape shape, std::vector<T> values) : shape_(std::move(shape)) {
    IHLAB_CHECK(int64_t(values.size()) == numel_of(shape_), "tensor: {} values given for shape {} ({} elements)",
                values.size(), shape_str(shape_), numel_of(shape_));
    buf_ = std::make_shared<std::vector<T>>(std::move(values));
  }
  static Tensor zeros(Shape s) { return Tensor(std::move(s), T(0)); }
  static Tensor scalar(T v) { return Tensor(Shape{}, v); }

  bool defined() const { return buf_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int64_t numel() const { return buf_ ? int64_t(buf_->size()) : 0; }

  T* data() { return buf_->data(); }
  const T* data() const { return buf_->data(); }
  T& operator[](int64_t i) { return (*buf_)[i]; }
  const T& operator[](int64_t i) const { return (*buf_)[i]; }
  T item() const {
    IHLAB_CHECK(numel() == 1, "tensor: item() on shape {}", shape_str(shape_));
    return (*buf_)[0];
  }
  std::span<T> span() { return {buf_->data(), buf_->size()}; }
  std::span<const T> span() const { return {buf_->data(), buf_->size()}; }
  TensorView<T> view() { return {data(), shape_}; }
  TensorView<const T> view() const { return {data(), shape_}; }

  // Same storage, new shape (element count must match).
  Tensor reshaped(Shape s) const {
    IHLAB_CHECK(numel_of(s) == numel(), "tensor: cannot reshape {} to {}", shape_str(shape_), shape_str(s));
    Tensor t = *this;
    t.shape_ = std::move(s);
    return t;
  }
  Tensor clone() const {
    Tensor t;
    t.shape_ = shape_;
    t.buf_ = std::make_shared<std::vector<T>>(*buf_);
    return t;
  }
  void fill(T v) { std::fill(buf_->begin(), buf_->end(), v); }
  void copy_from(const Tensor& o) {
    IHLAB_CHECK(o.shape_ == shape_, "tensor: copy from {} into {}", shape_str(o.shape_), shape_str(shape_));
    std::copy(o.buf_->begin(), o.buf_->end(), buf_->begin());
  }
  template <typename U>
  Tensor<U> cast() const {
    std::vector<U> v(buf_->begin(), buf_->end());
    return Tensor<U>(shape_, std::move(v));
  }

 private:
  Shape shape_;
  std::shared_ptr<std::vector<T>> buf_;
};

// Throws with the op name and both shapes when a and b differ.
void check_same_shape(const char* op, const Shape& a, const Shape& b);

}  // namespace ihlab
