#include "io/dataset_jsonl.hpp"

#include <fmt/format.h>
#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>
#include <vector>

#include "io/output_file.hpp"
#include "sim/error.hpp"

namespace herdsim::io {

namespace {

namespace fs = std::filesystem;
namespace ia = herdsim::investalign;
using Json = nlohmann::ordered_json;  // keeps members in the written order

constexpr std::array<ia::Problem, 3> all_problems{ia::Problem::absolute, ia::Problem::relative,
                                                  ia::Problem::mutual};

Json profile_json(const ia::InvestorProfile& p) {
  return Json{{"lottery_prob", p.lottery_prob},
              {"alpha", p.alpha},
              {"score", p.score},
              {"theta", p.theta},
              {"budget", p.budget}};
}

Json sample_json(const ia::Sample& s, const ia::Cell& cell, std::int64_t line) {
  Json j;
  j["id"] = s.id;
  j["split"] = ia::split_name(s.split);
  j["line"] = line;
  j["problem"] = ia::problem_name(s.problem);
  j["cell"] = s.cell;
  j["cell_lottery_prob"] = cell.lottery_prob;
  j["cell_score"] = cell.score;
  j["investor"] = profile_json(s.investor);
  j["peer"] = s.peer ? profile_json(*s.peer) : Json(nullptr);
  j["ln_eta"] = s.ln_eta;
  j["reference_budgets"] = s.budgets;
  j["advisor_proportions"] = s.advisor;
  j["amounts"] = s.amounts;
  j["proportions"] = s.proportions;
  j["target"] = s.target;
  j["clamped"] = s.clamped;
  j["prompt_fnv1a64"] = ia::hash_hex(s.prompt.hash());
  return j;
}

/// One file of the dataset, written into the staging folder; its content hash and size are tracked as
/// lines go out.
class DatasetFile {
 public:
  explicit DatasetFile(fs::path path) : path_(std::move(path)) {
    out_.open(path_, std::ios::binary | std::ios::trunc);
    if (!out_) throw IoError(fmt::format("cannot create '{}'", path_.string()));
  }
  void write(const std::string& text) {
    out_.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out_) throw IoError(fmt::format("cannot write '{}'", path_.string()));
    hash_ = ia::fnv1a64(text, hash_);
    bytes_ += static_cast<std::int64_t>(text.size());
  }
  void line(const std::string& text) {
    write(text);
    write("\n");
    ++lines_;
  }
  void close() {
    out_.close();
    if (!out_) throw IoError(fmt::format("cannot close '{}'", path_.string()));
  }
  [[nodiscard]] Json summary() const {
    return Json{{"lines", lines_}, {"bytes", bytes_}, {"fnv1a64", ia::hash_hex(hash_)}};
  }
  [[nodiscard]] std::int64_t lines() const { return lines_; }

 private:
  fs::path path_;
  std::ofstream out_;
  std::uint64_t hash_ = ia::fnv1a64_offset;
  std::int64_t bytes_ = 0;
  std::int64_t lines_ = 0;
};

Json card_json(const ia::Dataset& ds, const DatasetProvenance& provenance, const Json& files) {
  const ia::DatasetConfig& c = ds.config;
  Json problems = Json::array();
  for (const auto p : c.problems) problems.push_back(ia::problem_name(p));

  Json parameters;
  parameters["market"] = {{"mu", c.market.mu}, {"r", c.market.r}, {"sigma", c.market.sigma}};
  parameters["alpha_leader"] = c.alpha_leader;
  parameters["horizon_years"] = ia::dataset_horizon_years;
  parameters["time_model"] = "continuous";
  parameters["eta_formula"] = "correct";
  parameters["lottery_convention"] = {
      {"name", c.lottery_name}, {"win", c.lottery.win}, {"sure", c.lottery.sure}};
  parameters["lottery_probs"] = c.lottery_probs;
  parameters["scores"] = c.scores;
  parameters["theta_per_score"] = theory::defaults::theta_per_score;
  parameters["budgets"] = c.budgets;
  parameters["mode"] = c.samples == 0 ? "grid" : "sampled";
  parameters["samples_per_problem"] = c.samples;
  parameters["relative_bc"] = std::string(to_name(c.relative_bc));
  parameters["training_prompts"] = c.training_prompts;
  parameters["static_budget_list"] = ia::static_budget_list;
  parameters["mutual_group"] =
      "advisor (uninfluenced) + investor + one peer drawn from the grid; each influenced agent weighs both "
      "others "
      "with theta = its score * 1e-8; the peer has the investor's budget";

  Json conventions;
  conventions["proportion"] =
      "proportion for year j = 1..T is P(t = j) / B_j: the continuous-time optimal AMOUNT at t = j over the "
      "reference "
      "budget B_j = (budget / 10) * static_budget_list[j-1]; the advisor's recommendations use the same "
      "formula with "
      "its own Merton amount";
  conventions["answer_units"] =
      "percent with two decimals; JSON numbers in answers are percent (ints included)";
  conventions["relative_target"] =
      "T - 1 changes in percentage points between consecutive two-decimal target proportions; the prompt "
      "fixes the "
      "year-1 proportion to the target's";
  conventions["clamping"] = "target proportions outside [0, 100] % are clamped (no leverage, no short sales)";
  conventions["time_index"] =
      "year j = 1..T is read at t = j years (the advisor ratios' one-based convention)";

  Json split;
  split["rule"] =
      "cells = (lottery probability, score) pairs of the grid; each cell gets the key uniform(seed, stream "
      "parameters, "
      "path 0, step 0, index cell); the round(test_fraction * cells) cells with the smallest keys (at least "
      "1 when "
      "test_fraction > 0, at most cells - 1 when test_fraction < 1) are test, with every sample of every "
      "problem in "
      "them";
  split["test_fraction"] = c.test_fraction;
  split["cells"] = ds.cells.size();
  Json test_cells = Json::array();
  std::int64_t n_test_cells = 0;
  for (const auto& cell : ds.cells) {
    if (cell.split == ia::Split::test) {
      test_cells.push_back({{"lottery_prob", cell.lottery_prob}, {"score", cell.score}});
      ++n_test_cells;
    }
  }
  split["train_cells"] = static_cast<std::int64_t>(ds.cells.size()) - n_test_cells;
  split["test_cells"] = test_cells;

  std::map<std::string, std::int64_t> train;
  std::map<std::string, std::int64_t> test;
  std::map<std::string, std::int64_t> clamped;
  for (const auto& s : ds.samples) {
    (s.split == ia::Split::train ? train : test)[ia::problem_name(s.problem)] += 1;
    if (s.clamped) clamped[ia::problem_name(s.problem)] += 1;
  }
  Json counts;
  for (const auto& [name, table] :
       {std::pair{"train", &train}, std::pair{"test", &test}, std::pair{"clamped", &clamped}}) {
    Json per;
    std::int64_t total = 0;
    for (const auto p : c.problems) {
      const auto it = table->find(ia::problem_name(p));
      const std::int64_t n = it == table->end() ? 0 : it->second;
      per[ia::problem_name(p)] = n;
      total += n;
    }
    per["total"] = total;
    counts[name] = per;
  }

  Json prompts;
  for (const auto p : all_problems) {
    for (const auto& s : ds.samples) {
      if (s.problem != p) continue;
      const auto schema = ia::answer_schema(ia::task_of(p), ia::dataset_horizon_years);
      prompts[ia::problem_name(p)] = {{"shared_prefix_fnv1a64", ia::hash_hex(s.prompt.shared_hash())},
                                      {"answer_key", schema.key},
                                      {"answer_length", schema.length},
                                      {"answer_min_percent", schema.min_percent},
                                      {"answer_max_percent", schema.max_percent}};
      break;
    }
  }

  Json card;
  card["format"] = "herdsim-investalign-dataset";
  card["card_version"] = dataset_card_version;
  card["herdsim_version"] = provenance.herdsim_version;
  card["seed"] = c.seed;
  card["problems"] = problems;
  card["parameters"] = parameters;
  card["conventions"] = conventions;
  card["split"] = split;
  card["counts"] = counts;
  card["prompts"] = prompts;
  card["files"] = files;
  return card;
}

}  // namespace

std::string chat_line(const ia::Sample& sample) {
  const Json line = {{"messages",
                      {{{"role", "system"}, {"content", sample.prompt.system}},
                       {{"role", "user"}, {"content", sample.prompt.user()}},
                       {{"role", "assistant"}, {"content", sample.answer}}}}};
  return line.dump();
}

DatasetWriteSummary write_dataset(const ia::Dataset& dataset, OutputDirectory& out,
                                  const DatasetProvenance& provenance) {
  // Written into DIRECTORY.partial and moved in on success: a failed or concurrent run never leaves a
  // mix of files, and the card, which vouches for the others, moves in last.
  const fs::path& dir = out.staging();
  DatasetFile train(dir / "train.jsonl");
  DatasetFile test(dir / "test.jsonl");
  DatasetFile samples(dir / "samples.jsonl");
  // samples.jsonl lists train samples first, then test, each with its line in its chat file.
  for (const auto which : {ia::Split::train, ia::Split::test}) {
    DatasetFile& chat = which == ia::Split::train ? train : test;
    for (const auto& s : dataset.samples) {
      if (s.split != which) continue;
      samples.line(sample_json(s, dataset.cells.at(static_cast<std::size_t>(s.cell)), chat.lines()).dump());
      chat.line(chat_line(s));
    }
  }
  train.close();
  test.close();
  samples.close();
  const Json files = {
      {"train.jsonl", train.summary()}, {"test.jsonl", test.summary()}, {"samples.jsonl", samples.summary()}};
  DatasetFile card(dir / "dataset_card.json");
  card.write(card_json(dataset, provenance, files).dump(2));
  card.write("\n");
  card.close();
  out.commit({"dataset_card.json"});
  return {train.lines(), test.lines()};
}

}  // namespace herdsim::io
