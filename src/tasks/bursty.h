#pragma once
// Few-shot item-label classification with bursty contexts (Reddy 2023, "The mechanistic basis of
// data dependence and abrupt learning in an in-context classification task"; Chan et al. 2022):
// the generator. tasks/bursty_task.h turns it into the "bursty" Task.
//
// The world (fixed per seed, shared by training and evaluation): K classes with Zipf
// frequencies p(c) ~ (c + 1)^-zipf_exponent (class 0 the most frequent), each with a prototype
// mu_c ~ N(0, I_D / D) and a label in [0, L) (a random permutation of the classes dealt round
// robin, so every label has K/L classes, give or take one). An item of class c is
// mu_c + noise * eta with eta ~ N(0, I_D / D) drawn afresh for every occurrence (Reddy further
// divides by sqrt(1 + noise^2); at noise 0.1 that is a 0.5% rescaling, left out here).
//
// A sequence: N item-label pairs, then a query item whose label is the target.
//   training, bursty (probability p_bursty): N/B distinct classes drawn from the Zipf law without
//     replacement, B copies each, in random order (Reddy's convention: B = copies per class);
//     the query's class is one of them, uniformly.
//   training, otherwise: the N context classes and the query's class i.i.d. from the Zipf law.
//   eval "in-context": N/B NOVEL classes (fresh prototypes per sequence), each given a distinct
//     random label, B copies each; the query is one of them: only the context tells its label.
//   eval "in-weights": query's class from the Zipf law, the N context classes i.i.d. from the
//     Zipf law conditioned on differing from it: only the learned class -> label map helps.
#include <cstdint>
#include <string>
#include <vector>

#include "io/fields.h"
#include "core/rng.h"

namespace ihlab {

enum class BurstyTargets { Query, All };
constexpr auto enum_choices(BurstyTargets) {
  return std::array<EnumChoice<BurstyTargets>, 2>{{{BurstyTargets::Query, "query"}, {BurstyTargets::All, "all"}}};
}

struct BurstyConfig {
  int classes = 128;                             // K
  int labels = 32;                               // L
  int pairs = 8;                                 // N
  int dim = 63;                                  // D
  double noise = 0.1;                            // within-class noise scale
  int burstiness = 4;                            // B: copies of each class in a bursty context; divides N
  double p_bursty = 0.9;                         // fraction of bursty training sequences
  double zipf_exponent = 1;                      // 0 = uniform class frequencies
  BurstyTargets targets = BurstyTargets::Query;  // all: every item's label is a target, not only the query's

  void validate() const;  // throws ihlab::Error naming the key (task.pairs, ...)
  bool all_targets() const { return targets == BurstyTargets::All; }
  template <class V>
  void fields(V& v) {
    v("classes", classes, "K: item classes (Zipf frequencies)", in(2, 1 << 20));
    v("labels", labels, "L: labels (each class has a fixed one)", in(2, 1 << 20));
    v("pairs", pairs, "N: item-label pairs before the query", in(1, 4096));
    v("dim", dim, "D: item dimension", in(1, 65536));
    v("noise", noise, "within-class noise scale epsilon", in(0, 100));
    v("burstiness", burstiness, "B: copies of each class in a bursty context (divides pairs)", in(1, 4096));
    v("p_bursty", p_bursty, "fraction of bursty training sequences", in(0, 1));
    v("zipf_exponent", zipf_exponent, "class frequency ~ rank^-exponent (0 = uniform)", in(0, 16));
    v("targets", targets, "query: only the query's label; all: every item's label");
  }
  int length() const { return 2 * pairs + 1; }
  int item_token() const { return labels; }  // token id of a position holding an item
  // Squared distance below which the copy reference calls two items the same class: same-class
  // pairs sit near 2 noise^2, different classes near 2 + 2 noise^2 (chi-square spread ~ sqrt(8/D)).
  double match_threshold() const;
};

enum class BurstySet { Train, InContext, InWeights };

// "in-context" | "in-weights"; anything else fails listing the sets.
BurstySet parse_bursty_set(const std::string& s);

struct BurstyWorld {
  std::vector<double> prototypes;  // [classes, dim]
  std::vector<int32_t> label_of;   // [classes]
  std::vector<double> zipf_cdf;    // [classes]: cumulative, normalized Zipf probabilities
};

// Drawn from RandomStream(seed, Data, kWorldSubstream): the same world for every stream kind.
BurstyWorld make_world(const BurstyConfig& cfg, uint64_t seed);
inline constexpr uint64_t kWorldSubstream = ~uint64_t(0);  // never a training step

// One sequence before it is laid out in a Batch.
struct BurstySequence {
  std::vector<int> classes;     // [pairs + 1]; the last is the query's; novel classes are >= K
  std::vector<int32_t> labels;  // [pairs + 1]
  std::vector<float> items;     // [pairs + 1, dim]
  bool bursty = false;          // drawn from the bursty branch (always for the eval sets)
};

BurstySequence sample_bursty_sequence(const BurstyConfig& cfg, const BurstyWorld& world, BurstySet set,
                                      RandomStream& rs);

}  // namespace ihlab
