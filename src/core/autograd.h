#pragma once
// Reverse-mode autograd at tensor granularity.
//
// A Var is a node in a graph rebuilt every step: its value, its gradient (allocated on first use),
// its parents and a closure that *accumulates* (+=) its gradient into theirs. Parameters are leaf
// Vars that outlive the graph; their gradients are zeroed once per step by the optimizer loop.
// Nodes whose inputs need no gradient (frozen parameter groups, data) get no closure at all, so a
// frozen group costs nothing in backward.
#include "core/tensor.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ihlab {

template <typename T>
struct Node {
  Tensor<T> value;
  Tensor<T> grad;  // same shape as value once allocated
  bool requires_grad = false;
  const char* op = "leaf";
  std::vector<std::shared_ptr<Node>> parents;
  std::function<void(Node&)> backward;  // reads this->grad, accumulates into parents' grads

  Tensor<T>& grad_buffer() {
    if (!grad.defined()) grad = Tensor<T>(value.shape(), T(0));
    return grad;
  }
};

template <typename T>
class Var {
 public:
  Var() = default;
  explicit Var(std::shared_ptr<Node<T>> n) : n_(std::move(n)) {}
  // A constant (data) or, with requires_grad, a leaf parameter.
  static Var leaf(Tensor<T> value, bool requires_grad = false) {
    auto n = std::make_shared<Node<T>>();
    n->value = std::move(value);
    n->requires_grad = requires_grad;
    return Var(std::move(n));
  }

  bool defined() const { return n_ != nullptr; }
  const Tensor<T>& value() const { return n_->value; }
  Tensor<T>& value() { return n_->value; }
  const Shape& shape() const { return n_->value.shape(); }
  int64_t dim(int i) const { return n_->value.dim(i); }
  bool requires_grad() const { return n_->requires_grad; }
  void set_requires_grad(bool r) { n_->requires_grad = r; }
  Tensor<T>& grad() { return n_->grad_buffer(); }
  bool has_grad() const { return n_->grad.defined(); }
  T item() const { return n_->value.item(); }
  Node<T>* node() const { return n_.get(); }
  const std::shared_ptr<Node<T>>& ptr() const { return n_; }

 private:
  std::shared_ptr<Node<T>> n_;
};

// Builds the result node of an op. `fn` runs in backward only if some input needs a gradient.
template <typename T>
Var<T> make_result(const char* op, Tensor<T> value, std::vector<Var<T>> inputs, std::function<void(Node<T>&)> fn) {
  auto n = std::make_shared<Node<T>>();
  n->value = std::move(value);
  n->op = op;
  for (auto& v : inputs) {
    if (v.defined() && v.requires_grad()) n->requires_grad = true;
  }
  if (n->requires_grad) {
    for (auto& v : inputs) n->parents.push_back(v.ptr());
    n->backward = std::move(fn);
  }
  return Var<T>(std::move(n));
}

// Seeds d(root)/d(root) = 1 (root must be a scalar) and runs every closure in reverse topological
// order. Gradients accumulate into leaves; intermediate gradients are freed as the walk passes.
template <typename T>
void backward(const Var<T>& root);

}  // namespace ihlab
