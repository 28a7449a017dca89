#pragma once
// Grammar masks over the vocabulary's prefix tree: which tokens a llama.cpp grammar admits next, found
// by testing only the children of admitted tokens instead of the whole vocabulary.
//
// llama.cpp's grammar pass over all ~150k tokens takes 10-15 ms (it decodes each token's UTF-8 into a
// fresh vector), more than a decode step of a small model. What a grammar admits is closed under
// prefixes (it consumes text: a token it admits has every prefix admitted), so the vocabulary is walked
// as a prefix tree: a token's parent is the token spelling the longest proper prefix of its text, and
// only the children of admitted tokens are tested, one grammar pass per tree level. Where the grammar
// allows a few characters (keys, digits, punctuation) a mask costs a few hundred candidates instead of
// the whole vocabulary; the result is the same mask.
#include <llama.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace herdsim::llama {

/// The vocabulary's prefix tree (built at the first mask) and the scratch of one mask at a time.
class GrammarMasks {
 public:
  /// eog: the end-of-generation token the sampler emits (LLAMA_TOKEN_NULL: none); check: compare every
  /// mask with llama.cpp's pass over the whole vocabulary (HERDSIM_LLAMA_CHECK_MASKS=1, tests).
  GrammarMasks(const llama_vocab* vocab, llama_token eog, bool check);

  /// Whether the grammar admits `token` next (a one-candidate pass: cheap).
  static bool admits(llama_sampler* grammar, llama_token token);

  /// Element t: whether the grammar admits token t next, for the whole vocabulary. Valid until the next
  /// mask() or finished().
  const std::vector<std::uint8_t>& mask(llama_sampler* grammar);

  /// Whether the grammar is complete: it admits end of generation and nothing else (no root of the
  /// prefix tree, hence no token). Needs no logits, so a finished answer costs no further decode.
  bool finished(llama_sampler* grammar);

  /// The one token the grammar admits next, when it admits exactly one and not end of generation (the
  /// grammar forces it: greedy and sampling alike would pick it); nullopt otherwise. One grammar pass
  /// per tree level over the admitted tokens' children, stopping at the second admitted token.
  std::optional<llama_token> forced(llama_sampler* grammar);

  /// Masks compared with llama.cpp's full pass so far (when checking).
  [[nodiscard]] std::int64_t checked() const { return checked_; }

 private:
  void build_prefix_tree();
  bool pass(llama_sampler* grammar, const std::vector<llama_token>& ids, std::vector<llama_token>* next);
  void check_mask(llama_sampler* grammar);

  const llama_vocab* vocab_;
  std::int32_t n_vocab_;
  llama_token eog_;
  bool check_;
  std::int64_t checked_ = 0;
  std::vector<llama_token> roots_;
  std::vector<std::int32_t> child_begin_;
  std::vector<llama_token> children_;
  std::vector<llama_token> eog_tokens_;
  std::vector<std::uint8_t> admitted_;
  std::vector<llama_token_data> level_;
  std::vector<llama_token> level_ids_;
  std::vector<llama_token> next_ids_;
};

}  // namespace herdsim::llama
