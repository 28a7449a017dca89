#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "io/dataset_jsonl.hpp"
#include "sim/error.hpp"
#include "sim/investalign/dataset.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"
#include "support/golden.hpp"

using namespace herdsim::investalign;
namespace th = herdsim::theory;

namespace {

DatasetConfig small_config() {
  DatasetConfig c;
  c.lottery_probs = {0.5, 0.9};
  c.scores = {0, 5, 10};
  return c;
}

/// The numbers after "years 1 to 10: " in a prompt, in percent.
std::vector<double> advisor_numbers_in(const std::string& user) {
  const std::string marker = "in the stock in years 1 to 10: ";
  const auto start = user.find(marker);
  REQUIRE(start != std::string::npos);
  std::stringstream ss(user.substr(start + marker.size()));
  std::vector<double> out;
  for (int i = 0; i < 10; ++i) {
    double v = 0.0;
    char sep = 0;
    ss >> v >> sep;
    out.push_back(v);
  }
  return out;
}

const Sample& find_sample(const Dataset& ds, Problem problem, double p, double score) {
  for (const auto& s : ds.samples) {
    if (s.problem == problem && s.investor.lottery_prob == p && s.investor.score == score) return s;
  }
  throw std::runtime_error("no such sample");
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_SUITE("investalign.dataset") {
  TEST_CASE("advisor ratios reproduce advisor_reference.csv through the prompt's code path") {
    const auto rows = herdsim::test::read_golden("advisor_reference.csv");
    REQUIRE(rows.size() == 10);
    const auto advisor = advisor_proportions(th::Market{}, th::defaults::alpha_leader, 10.0);
    const auto budgets = reference_budgets(10.0);
    DatasetConfig c;
    c.problems = {Problem::absolute};
    c.lottery_probs = {0.9};
    c.scores = {10};
    c.test_fraction = 0.0;
    const auto ds = build_dataset(c);
    REQUIRE(ds.samples.size() == 1);
    const auto shown = advisor_numbers_in(ds.samples[0].prompt.user());
    for (std::size_t j = 0; j < 10; ++j) {
      CAPTURE(j);
      CHECK(budgets[j] == doctest::Approx(rows[j].num("static_budget")).epsilon(1e-15));
      CHECK(herdsim::test::close_rel(100.0 * advisor[j], rows[j].num("ratio_pct_computed"), 1e-10));
      CHECK(std::abs(shown[j] - rows[j].num("ratio_pct_repo")) <= 0.011);
      CHECK(std::abs(100.0 * ds.samples[0].advisor[j] - rows[j].num("ratio_pct_repo")) <= 0.011);
    }
    // Budget scaling: twice the budget, half the proportion.
    const auto doubled = advisor_proportions(th::Market{}, th::defaults::alpha_leader, 20.0);
    CHECK(doubled[3] == doctest::Approx(advisor[3] / 2).epsilon(1e-14));
  }

  TEST_CASE("absolute targets are the P3 closed form with the correct eta, over the reference budgets") {
    const auto ds = build_dataset(small_config());
    const Sample& s = find_sample(ds, Problem::absolute, 0.9, 10);
    // docs/theory.md §3.2 worked example: eta = 9.99124e-6, P*(10) = 2.54898.
    CHECK(std::exp(s.ln_eta) == doctest::Approx(9.99124e-6).epsilon(1e-5));
    CHECK(s.amounts.back() == doctest::Approx(2.54898).epsilon(1e-5));
    th::HerdProblem p;
    p.alpha = th::alpha_from_lottery_prob(0.9);
    p.theta = 1e-7;
    const auto sol = th::solve_absolute_herd(p);
    const auto repo = th::solve_absolute_herd(p, th::EtaFormula::repo_precedence_bug);
    CHECK(s.ln_eta == doctest::Approx(sol.ln_eta()).epsilon(1e-14));
    CHECK(std::abs(s.ln_eta - repo.ln_eta()) > 1e-3);  // not the released code's eta
    for (int j = 1; j <= 10; ++j) {
      const auto k = static_cast<std::size_t>(j - 1);
      CHECK(s.amounts[k] == doctest::Approx(sol.amount(j)).epsilon(1e-14));
      CHECK(std::abs(s.proportions[k] - sol.amount(j) / s.budgets[k]) <=
            0.5e-4 + 1e-12);  // two decimals of %
      CHECK(s.target[k] == s.proportions[k]);
    }
    const auto parsed = parse_answer(s.answer, answer_schema(TaskKind::absolute, 10), s.advisor);
    CHECK(parsed.status == AnswerStatus::ok);
    for (std::size_t k = 0; k < 10; ++k)
      CHECK(parsed.values[k] == doctest::Approx(s.target[k]).epsilon(1e-14));
  }

  TEST_CASE("the proportion convention's limits: theta -> inf gives the advisor, theta = 0 the own Merton") {
    DatasetConfig c;
    c.problems = {Problem::absolute, Problem::mutual};
    c.lottery_probs = {0.6};
    c.scores = {0, 1e9};
    c.test_fraction = 0.0;
    const auto ds = build_dataset(c);
    const Sample& follower = find_sample(ds, Problem::absolute, 0.6, 1e9);
    CHECK(follower.proportions == follower.advisor);
    const Sample& rational = find_sample(ds, Problem::absolute, 0.6, 0);
    const th::Schedule sched(th::Market{}, 10, th::TimeModel::continuous());
    for (int j = 1; j <= 10; ++j) {
      const auto k = static_cast<std::size_t>(j - 1);
      CHECK(rational.amounts[k] ==
            doctest::Approx(th::merton_amount(sched, rational.investor.alpha, j)).epsilon(1e-12));
    }
    // An investor who weighs nobody plays its own Merton path in the mutual game too.
    const Sample& mutual_rational = find_sample(ds, Problem::mutual, 0.6, 0);
    for (std::size_t k = 0; k < 10; ++k) {
      CHECK(mutual_rational.amounts[k] == doctest::Approx(rational.amounts[k]).epsilon(1e-10));
    }
  }

  TEST_CASE("relative targets: P1 solution, changes that rebuild the proportions from the fixed first year") {
    const auto ds = build_dataset(small_config());
    const Sample& s = find_sample(ds, Problem::relative, 0.9, 10);
    th::HerdProblem p;
    p.alpha = th::alpha_from_lottery_prob(0.9);
    p.theta = 1e-7;
    const auto sol = th::solve_relative_herd(p);
    REQUIRE(s.target.size() == 9);
    for (int j = 1; j <= 10; ++j) {
      CHECK(s.amounts[static_cast<std::size_t>(j - 1)] == doctest::Approx(sol.amount(j)).epsilon(1e-12));
    }
    long long level = std::llround(s.proportions[0] * 10000.0);
    for (std::size_t k = 0; k < 9; ++k) {
      level += std::llround(s.target[k] * 10000.0);
      CHECK(level == std::llround(s.proportions[k + 1] * 10000.0));
    }
    CHECK(s.prompt.user().find("fixed at " + format_percent(s.proportions[0]) + "%") != std::string::npos);
    const auto parsed =
        parse_answer(s.answer, answer_schema(TaskKind::relative, 10), std::vector<double>(9, 0.0));
    CHECK(parsed.status == AnswerStatus::ok);
    CHECK(parsed.values[3] == doctest::Approx(s.target[3]).epsilon(1e-14));
  }

  TEST_CASE("mutual targets: the P2 equilibrium of advisor, investor and peer") {
    const auto ds = build_dataset(small_config());
    const Sample& s = find_sample(ds, Problem::mutual, 0.9, 10);
    REQUIRE(s.peer.has_value());
    th::MutualGame game;
    game.alpha = Eigen::Vector3d(0.2, s.investor.alpha, s.peer->alpha);
    game.x0 = Eigen::Vector3d(10, 10, 10);
    game.theta = th::ThetaMatrix(3, 3);
    game.theta.insert(1, 0) = s.investor.theta;
    game.theta.insert(1, 2) = s.investor.theta;
    game.theta.insert(2, 0) = s.peer->theta;
    game.theta.insert(2, 1) = s.peer->theta;
    const auto sol = th::solve_mutual_game(game);
    CHECK(s.ln_eta == doctest::Approx(sol.ln_eta()(1)).epsilon(1e-12));
    for (int j = 1; j <= 10; ++j) {
      CHECK(s.amounts[static_cast<std::size_t>(j - 1)] == doctest::Approx(sol.amount(1, j)).epsilon(1e-10));
    }
    CHECK(s.prompt.user().find("The peer investor's profile") != std::string::npos);
  }

  TEST_CASE("grid: counts, ids, every answer parses, ASCII only") {
    const auto ds = build_dataset(DatasetConfig{});
    CHECK(ds.cells.size() == 66);
    CHECK(ds.samples.size() == 3 * 66);
    std::set<std::string> ids;
    for (const auto& s : ds.samples) {
      ids.insert(s.id);
      const auto schema = answer_schema(task_of(s.problem), 10);
      const std::vector<double> fallback(static_cast<std::size_t>(schema.length), 0.0);
      const auto parsed = parse_answer(s.answer, schema, fallback);
      CHECK(parsed.status == AnswerStatus::ok);
      CHECK(parsed.explanation.value().size() <= 400);
      CHECK_FALSE(s.clamped);
      for (const char c : s.prompt.user() + s.answer) CHECK(static_cast<unsigned char>(c) < 0x80U);
    }
    CHECK(ids.size() == ds.samples.size());
  }

  TEST_CASE("the split holds out whole cells, deterministically for a seed") {
    DatasetConfig c;
    c.problems = {Problem::absolute, Problem::mutual};
    c.budgets = {10, 20};
    const auto a = build_dataset(c);
    const auto b = build_dataset(c);
    std::size_t test_cells = 0;
    for (const auto& cell : a.cells) test_cells += cell.split == Split::test ? 1 : 0;
    CHECK(test_cells == 13);  // round(0.2 * 66)
    std::map<int, std::set<Split>> splits;
    for (const auto& s : a.samples) {
      splits[s.cell].insert(s.split);
      CHECK(s.split == a.cells[static_cast<std::size_t>(s.cell)].split);
    }
    for (const auto& [cell, set] : splits) CHECK(set.size() == 1);
    REQUIRE(a.samples.size() == b.samples.size());
    for (std::size_t i = 0; i < a.samples.size(); ++i) {
      CHECK(a.samples[i].prompt.user() == b.samples[i].prompt.user());
      CHECK(a.samples[i].answer == b.samples[i].answer);
      CHECK(a.samples[i].split == b.samples[i].split);
    }
    c.seed = 7;
    const auto other = build_dataset(c);
    bool differs = false;
    for (std::size_t i = 0; i < a.cells.size(); ++i)
      differs = differs || a.cells[i].split != other.cells[i].split;
    CHECK(differs);

    c.test_fraction = 0.0;
    for (const auto& cell : build_dataset(c).cells) CHECK(cell.split == Split::train);
    c.test_fraction = 0.001;  // rounds to no cell, but a test set was asked for
    std::size_t n = 0;
    for (const auto& cell : build_dataset(c).cells) n += cell.split == Split::test ? 1 : 0;
    CHECK(n == 1);
  }

  TEST_CASE("sampling draws within cells, rounds p to three decimals, and is deterministic") {
    DatasetConfig c;
    c.problems = {Problem::absolute};
    c.samples = 200;
    c.budgets = {5, 10, 20};
    c.seed = 11;
    const auto ds = build_dataset(c);
    REQUIRE(ds.samples.size() == 200);
    std::set<double> budgets;
    std::set<int> cells;
    for (const auto& s : ds.samples) {
      const auto& cell = ds.cells[static_cast<std::size_t>(s.cell)];
      CHECK(std::abs(s.investor.lottery_prob - cell.lottery_prob) <= 0.05 + 1e-12);
      CHECK(std::abs(s.investor.lottery_prob * 1000 - std::round(s.investor.lottery_prob * 1000)) < 1e-9);
      CHECK(s.investor.score == cell.score);
      CHECK(s.investor.alpha == th::alpha_from_lottery_prob(s.investor.lottery_prob));
      budgets.insert(s.investor.budget);
      cells.insert(s.cell);
    }
    CHECK(budgets.size() == 3);
    CHECK(cells.size() > 40);
    const auto again = build_dataset(c);
    for (std::size_t i = 0; i < ds.samples.size(); ++i)
      CHECK(again.samples[i].answer == ds.samples[i].answer);
  }

  TEST_CASE("targets outside [0, 100] % are clamped and flagged") {
    DatasetConfig c;
    c.problems = {Problem::absolute};
    c.lottery_probs = {0.4};
    c.scores = {0};
    c.budgets = {5};
    c.test_fraction = 0.0;
    const auto ds = build_dataset(c);
    const Sample& s = ds.samples.at(0);
    CHECK(s.clamped);
    CHECK(s.amounts[0] / s.budgets[0] > 1.0);
    CHECK(s.proportions[0] == 1.0);
    CHECK(parse_answer(s.answer, answer_schema(TaskKind::absolute, 10), s.advisor).status ==
          AnswerStatus::ok);
  }

  TEST_CASE("training prompts carry eta and the targets") {
    DatasetConfig c = small_config();
    c.training_prompts = true;
    const auto ds = build_dataset(c);
    for (const auto& s : ds.samples) {
      const std::string user = s.prompt.user();
      CHECK(user.find("Reference solution (training): eta = " + format_exp_of_ln(s.ln_eta, 6)) !=
            std::string::npos);
    }
  }

  TEST_CASE("every configuration problem is reported at once") {
    DatasetConfig c;
    c.problems = {};
    c.lottery_probs = {0.2, 0.5, 1.0};
    c.scores = {-1, 3};
    c.budgets = {10, 10};
    c.samples = -1;
    c.test_fraction = 1.5;
    const auto problems = check_dataset_config(c);
    std::set<std::string> fields;
    for (const auto& p : problems) fields.insert(p.field);
    CHECK(fields == std::set<std::string>{"problems", "lottery_probs", "scores", "budgets", "samples",
                                          "test_fraction"});
    CHECK(problems.size() == 7);  // two bad probabilities
    CHECK_THROWS_AS((void)build_dataset(c), herdsim::InputError);
    CHECK(check_dataset_config(DatasetConfig{}).empty());
  }

  TEST_CASE("write_dataset: chat JSONL, aligned samples, and a card whose counts match") {
    const std::filesystem::path dir = std::filesystem::path(HERDSIM_TEST_TMP) / "investalign_dataset";
    std::filesystem::remove_all(dir);
    const auto ds = build_dataset(small_config());
    herdsim::io::OutputDirectory out(dir.string());
    const auto written = herdsim::io::write_dataset(ds, out, {"test"});
    CHECK_FALSE(std::filesystem::exists(dir.string() + ".partial"));
    CHECK(written.train_lines + written.test_lines == static_cast<std::int64_t>(ds.samples.size()));
    for (const char* name : {"train.jsonl", "test.jsonl", "samples.jsonl", "dataset_card.json"}) {
      CHECK(std::filesystem::exists(dir / name));
      CHECK_FALSE(std::filesystem::exists(dir / (std::string(name) + ".partial")));
    }
    const auto card = nlohmann::json::parse(read_file(dir / "dataset_card.json"));
    CHECK(card["format"] == "herdsim-investalign-dataset");
    CHECK(card["herdsim_version"] == "test");
    CHECK(card["counts"]["train"]["total"] == written.train_lines);
    CHECK(card["counts"]["test"]["total"] == written.test_lines);
    CHECK(card["files"]["train.jsonl"]["lines"] == written.train_lines);
    CHECK(card["files"]["train.jsonl"]["fnv1a64"] == hash_hex(fnv1a64(read_file(dir / "train.jsonl"))));
    std::istringstream train(read_file(dir / "train.jsonl"));
    std::string line;
    std::int64_t n = 0;
    while (std::getline(train, line)) {
      const auto j = nlohmann::json::parse(line);
      REQUIRE(j["messages"].size() == 3);
      CHECK(j["messages"][0]["role"] == "system");
      CHECK(j["messages"][1]["role"] == "user");
      CHECK(j["messages"][2]["role"] == "assistant");
      ++n;
    }
    CHECK(n == written.train_lines);

    // Writing again gives the same bytes.
    const std::string before = read_file(dir / "samples.jsonl");
    herdsim::io::OutputDirectory again(dir.string());
    herdsim::io::write_dataset(ds, again, {"test"});
    CHECK(read_file(dir / "samples.jsonl") == before);

    // A path under a file, or a file itself, is refused before anything is written.
    const std::filesystem::path blocker = std::filesystem::path(HERDSIM_TEST_TMP) / "investalign_blocker";
    std::filesystem::remove_all(blocker);
    std::ofstream(blocker) << "x";
    CHECK_THROWS_AS(herdsim::io::OutputDirectory((blocker / "sub").string()), herdsim::InputError);
    CHECK_THROWS_AS(herdsim::io::OutputDirectory(blocker.string()), herdsim::InputError);
  }
}
