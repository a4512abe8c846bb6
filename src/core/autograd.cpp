#include "core/autograd.h"

#include <unordered_set>

namespace ihlab {

template <typename T>
void backward(const Var<T>& root) {
  IHLAB_CHECK(root.value().numel() == 1, "backward: root must be a scalar, got shape {}", shape_str(root.shape()));
  if (!root.requires_grad()) return;

  // Iterative DFS post-order: deep graphs (long unrolled stages) must not overflow the stack.
  std::vector<Node<T>*> order;
  std::unordered_set<Node<T>*> seen;
  std::vector<std::pair<Node<T>*, size_t>> stack{{root.node(), 0}};
  seen.insert(root.node());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->parents.size()) {
      Node<T>* p = node->parents[next++].get();
      if (p && p->requires_grad && seen.insert(p).second) stack.push_back({p, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  root.node()->grad_buffer().fill(T(1));
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node<T>* n = *it;
    if (!n->backward || !n->grad.defined()) continue;
    n->backward(*n);
    if (!n->parents.empty()) n->grad = Tensor<T>();  // intermediate: no longer needed
  }
}

template void backward<float>(const Var<float>&);
template void backward<double>(const Var<double>&);

}  // namespace ihlab
