// Token sampling, per request (sampling.hpp).
#include "sampling.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace herdsim::llama {

double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11U) * 0x1.0p-53;
}

Sampler::Sampler(std::int32_t n_vocab, GrammarMasks& masks)
    : n_vocab_(n_vocab), masks_(masks), cumulative_(static_cast<std::size_t>(n_vocab)) {}

std::optional<llama_token> Sampler::greedy(llama_sampler* grammar, const float* logits) {
  llama_token best = 0;
  for (int32_t t = 1; t < n_vocab_; ++t) {
    if (logits[t] > logits[best]) best = t;
  }
  if (grammar == nullptr || GrammarMasks::admits(grammar, best)) return best;
  const std::vector<std::uint8_t>& admitted = masks_.mask(grammar);
  std::optional<llama_token> out;
  for (int32_t t = 0; t < n_vocab_; ++t) {
    if (admitted[static_cast<std::size_t>(t)] != 0 && (!out || logits[t] > logits[*out])) out = t;
  }
  return out;
}

std::optional<llama_token> Sampler::draw(llama_sampler* grammar, float temperature, std::mt19937_64& rng,
                                         const float* logits) {
  const float inv_t = 1.0F / temperature;
  const auto n = static_cast<std::size_t>(n_vocab_);
  // cumulative_ = running sums of exp((l - max) / T) over the tokens `keep` admits.
  auto fill = [&](float max_l, auto keep) {
    double total = 0.0;
    for (std::size_t t = 0; t < n; ++t) {
      if (keep(t) && logits[t] != -INFINITY)
        total += static_cast<double>(std::exp((logits[t] - max_l) * inv_t));
      cumulative_[t] = total;
    }
    return total;
  };
  auto pick = [&](double total) {
    const double u = uniform01(rng) * total;
    const auto at = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
    return static_cast<llama_token>(std::min<std::ptrdiff_t>(at - cumulative_.begin(), n_vocab_ - 1));
  };
  const float max_l = *std::max_element(logits, logits + n_vocab_);
  const double total = fill(max_l, [](std::size_t) { return true; });
  if (grammar == nullptr) return pick(total);
  for (int k = 0; k < draws_tried; ++k) {
    const llama_token t = pick(total);
    if (GrammarMasks::admits(grammar, t)) return t;
  }
  const std::vector<std::uint8_t>& admitted = masks_.mask(grammar);
  float max_admitted = -INFINITY;
  for (std::size_t t = 0; t < n; ++t) {
    if (admitted[t] != 0) max_admitted = std::max(max_admitted, logits[t]);
  }
  if (max_admitted == -INFINITY) return std::nullopt;
  return pick(fill(max_admitted, [&](std::size_t t) { return admitted[t] != 0; }));
}

}  // namespace herdsim::llama
