// Grammar masks over the vocabulary's prefix tree (grammar_masks.hpp).
#include "grammar_masks.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "plugin_shim.hpp"

namespace herdsim::llama {

GrammarMasks::GrammarMasks(const llama_vocab* vocab, llama_token eog, bool check)
    : vocab_(vocab), n_vocab_(llama_vocab_n_tokens(vocab)), eog_(eog), check_(check) {}

bool GrammarMasks::admits(llama_sampler* grammar, llama_token token) {
  llama_token_data one{token, 0.0F, 0.0F};
  llama_token_data_array arr{&one, 1, -1, false};
  llama_sampler_apply(grammar, &arr);
  return arr.data[0].logit != -INFINITY;
}

void GrammarMasks::build_prefix_tree() {
  if (!admitted_.empty()) return;
  const auto n = static_cast<std::size_t>(n_vocab_);
  std::vector<std::string> pieces(n);
  std::vector<char> buf(256);
  for (std::size_t t = 0; t < n; ++t) {
    const auto id = static_cast<llama_token>(t);
    // The text llama.cpp's grammar matches: the piece with special tokens rendered (its cache).
    int32_t len = llama_token_to_piece(vocab_, id, buf.data(), static_cast<int32_t>(buf.size()), 0, true);
    if (len < 0) {
      buf.resize(static_cast<std::size_t>(-len));
      len = llama_token_to_piece(vocab_, id, buf.data(), static_cast<int32_t>(buf.size()), 0, true);
    }
    if (len > 0) pieces[t].assign(buf.data(), static_cast<std::size_t>(len));
  }
  std::unordered_map<std::string_view, llama_token> by_piece;
  by_piece.reserve(n);
  for (std::size_t t = 0; t < n; ++t) {
    if (!pieces[t].empty()) by_piece.emplace(pieces[t], static_cast<llama_token>(t));
  }
  std::vector<llama_token> parent(n, -1);
  std::vector<int32_t> n_children(n + 1, 0);
  for (std::size_t t = 0; t < n; ++t) {
    const auto id = static_cast<llama_token>(t);
    const std::string& p = pieces[t];
    if (llama_vocab_is_eog(vocab_, id)) {
      eog_tokens_.push_back(id);
      continue;
    }
    if (p.empty() || p[0] == '\0') continue;  // never admitted by llama.cpp's grammar
    for (std::size_t k = p.size() - 1; k > 0; --k) {
      const auto it = by_piece.find(std::string_view(p).substr(0, k));
      if (it != by_piece.end() && !llama_vocab_is_eog(vocab_, it->second)) {
        parent[t] = it->second;
        break;
      }
    }
    if (parent[t] < 0) {
      roots_.push_back(id);
    } else {
      ++n_children[static_cast<std::size_t>(parent[t])];
    }
  }
  child_begin_.assign(n + 1, 0);
  for (std::size_t t = 0; t < n; ++t) child_begin_[t + 1] = child_begin_[t] + n_children[t];
  children_.resize(static_cast<std::size_t>(child_begin_[n]));
  std::vector<int32_t> fill = child_begin_;
  for (std::size_t t = 0; t < n; ++t) {
    if (parent[t] >= 0)
      children_[static_cast<std::size_t>(fill[static_cast<std::size_t>(parent[t])]++)] =
          static_cast<llama_token>(t);
  }
  admitted_.assign(n, 0);
}

/// Runs the grammar over `ids`; keeps the admitted ones in admitted_ and, when `next` is given, appends
/// their children to it. Returns whether any was admitted.
bool GrammarMasks::pass(llama_sampler* grammar, const std::vector<llama_token>& ids,
                        std::vector<llama_token>* next) {
  level_.clear();
  for (const llama_token id : ids) level_.push_back({id, 0.0F, 0.0F});
  llama_token_data_array arr{level_.data(), level_.size(), -1, false};
  llama_sampler_apply(grammar, &arr);
  bool any = false;
  for (const llama_token_data& c : level_) {
    if (c.logit == -INFINITY) continue;
    any = true;
    const auto t = static_cast<std::size_t>(c.id);
    admitted_[t] = 1;
    if (next != nullptr)
      next->insert(next->end(), children_.begin() + child_begin_[t], children_.begin() + child_begin_[t + 1]);
  }
  return any;
}

const std::vector<std::uint8_t>& GrammarMasks::mask(llama_sampler* grammar) {
  build_prefix_tree();
  std::fill(admitted_.begin(), admitted_.end(), std::uint8_t{0});
  level_ids_ = roots_;
  while (!level_ids_.empty()) {
    next_ids_.clear();
    pass(grammar, level_ids_, &next_ids_);
    std::swap(level_ids_, next_ids_);
  }
  const std::uint8_t eog_ok = eog_ != LLAMA_TOKEN_NULL && admits(grammar, eog_) ? 1 : 0;
  for (const llama_token t : eog_tokens_) admitted_[static_cast<std::size_t>(t)] = eog_ok;
  if (check_) check_mask(grammar);
  return admitted_;
}

/// The tree walk against llama.cpp's pass over the whole vocabulary.
void GrammarMasks::check_mask(llama_sampler* grammar) {
  std::vector<llama_token_data> all(static_cast<std::size_t>(n_vocab_));
  for (int32_t t = 0; t < n_vocab_; ++t) all[static_cast<std::size_t>(t)] = {t, 0.0F, 0.0F};
  llama_token_data_array arr{all.data(), all.size(), -1, false};
  llama_sampler_apply(grammar, &arr);
  for (const llama_token_data& c : all) {
    const bool full = c.logit != -INFINITY;
    if (full != (admitted_[static_cast<std::size_t>(c.id)] != 0))
      plugin::fail(HERDSIM_ERR_INTERNAL, "grammar mask check: token " + std::to_string(c.id) + " is " +
                                             (full ? "admitted" : "rejected") +
                                             " by llama.cpp but not by the prefix tree");
  }
  ++checked_;
}

std::optional<llama_token> GrammarMasks::forced(llama_sampler* grammar) {
  if (eog_ != LLAMA_TOKEN_NULL && admits(grammar, eog_)) return std::nullopt;
  build_prefix_tree();
  std::optional<llama_token> only;
  level_ids_ = roots_;
  while (!level_ids_.empty()) {
    level_.clear();
    for (const llama_token id : level_ids_) level_.push_back({id, 0.0F, 0.0F});
    llama_token_data_array arr{level_.data(), level_.size(), -1, false};
    llama_sampler_apply(grammar, &arr);
    next_ids_.clear();
    for (const llama_token_data& c : level_) {
      if (c.logit == -INFINITY) continue;
      if (only) return std::nullopt;  // a second admitted token
      only = c.id;
      const auto t = static_cast<std::size_t>(c.id);
      next_ids_.assign(children_.begin() + child_begin_[t], children_.begin() + child_begin_[t + 1]);
    }
    std::swap(level_ids_, next_ids_);
  }
  return only;
}

bool GrammarMasks::finished(llama_sampler* grammar) {
  if (eog_ == LLAMA_TOKEN_NULL || !admits(grammar, eog_)) return false;
  build_prefix_tree();
  return !pass(grammar, roots_, nullptr);
}

}  // namespace herdsim::llama
