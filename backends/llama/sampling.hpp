#pragma once
// Token sampling, per request: greedy, or a categorical draw at the request's temperature from its own
// random stream; the grammar (llama.cpp's) restricts both through GrammarMasks.
//
// The unconstrained choice is tried first (one candidate) and the mask built only when the grammar
// rejects it. Exact: greedy takes the best admitted token either way; for sampling, accepting an
// admitted draw and redrawing otherwise (finally from the masked distribution) gives each admitted
// token probability p / P(admitted), the masked distribution.
#include <llama.h>

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "grammar_masks.hpp"

namespace herdsim::llama {

/// A uniform double in [0, 1) from 53 random bits (the same on every platform, unlike
/// std::uniform_real_distribution).
double uniform01(std::mt19937_64& rng);

/// Unconstrained draws tried against the grammar before the masked distribution is built.
inline constexpr int draws_tried = 16;

/// Samples next tokens from logits over the whole vocabulary; keeps its scratch between calls.
class Sampler {
 public:
  /// masks: the engine's grammar masks (outlives the sampler).
  Sampler(std::int32_t n_vocab, GrammarMasks& masks);

  /// The greedy choice (the lowest id among equal logits); nullopt when the grammar (nullptr: none)
  /// admits no token.
  std::optional<llama_token> greedy(llama_sampler* grammar, const float* logits);

  /// A draw from softmax(logits / temperature) with rng, restricted to what the grammar (nullptr: none)
  /// admits; nullopt when it admits no token.
  std::optional<llama_token> draw(llama_sampler* grammar, float temperature, std::mt19937_64& rng,
                                  const float* logits);

 private:
  std::int32_t n_vocab_;
  GrammarMasks& masks_;
  std::vector<double> cumulative_;  ///< one entry per vocabulary token
};

}  // namespace herdsim::llama
