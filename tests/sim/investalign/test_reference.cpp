// The reference answerers (sim/investalign/reference.hpp): their answer text parses with the same parser as
// a model's, to values computed here from docs/theory.md's formulas (Merton, the advisor's quoted values,
// the worked example of the P3 closed form), for every task; requests without a question are refused.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "sim/inference/herdsim_inference.h"
#include "sim/investalign/reference.hpp"
#include "support/investalign.hpp"

using namespace herdsim::investalign;
using herdsim::test::worked_example;
using herdsim::test::worked_example_advisor;

namespace {

constexpr double kV = 0.03, kSigma = 0.17, kR = 0.04;

Question question(TaskKind task, Problem problem) {
  Question q;
  q.problem = problem;
  q.task = task;
  q.inputs.investor = worked_example();
  q.inputs.advisor = worked_example_advisor();
  return q;
}

/// Merton's amount in continuous time (docs/theory.md §3.1), T = 10.
double merton(double alpha, double t) {
  return kV / (alpha * kSigma * kSigma) * std::exp(-kR * (10.0 - t));
}

double two_decimals(double fraction) {
  return std::round(fraction * 10000.0) / 10000.0;
}

std::vector<double> parse(const std::string& text, TaskKind task) {
  const AnswerSchema schema = answer_schema(task, 10);
  const std::vector<double> fallback(static_cast<std::size_t>(schema.length), -1.0);
  const ParsedAnswer a = parse_answer(text, schema, fallback);
  CHECK(a.status == AnswerStatus::ok);
  return a.values;
}

}  // namespace

TEST_CASE("reference answers parse to the answerer's proportions of the reference budgets") {
  const double budgets[] = {10.00, 10.59, 11.22, 11.89, 12.60, 13.35, 14.15, 15.01, 15.91, 16.88};
  const Question q = question(TaskKind::absolute, Problem::absolute);
  const auto merton_answer = parse(reference_answer(Answerer::merton, q), TaskKind::absolute);
  const auto advisor_answer = parse(reference_answer(Answerer::advisor, q), TaskKind::absolute);
  const auto p3_answer = parse(reference_answer(Answerer::p3_closed_form, q), TaskKind::absolute);
  for (int j = 1; j <= 10; ++j) {
    const auto k = static_cast<std::size_t>(j - 1);
    CHECK(merton_answer[k] ==
          doctest::Approx(two_decimals(merton(q.inputs.investor.alpha, j) / budgets[k])).epsilon(1e-12));
    CHECK(advisor_answer[k] == doctest::Approx(q.inputs.advisor[k]).epsilon(1e-12));
  }
  // The worked example (docs/theory.md §3.2): P*(10) = 2.54898 over B_10 = 16.88 -> 15.10 %.
  CHECK(p3_answer[9] == doctest::Approx(0.1510).epsilon(1e-12));
  // own_theory of P3 is the closed form.
  CHECK(reference_answer(Answerer::own_theory, q) !=
        reference_answer(Answerer::merton, q));  // theta > 0: herding moves the plan
  CHECK(parse(reference_answer(Answerer::own_theory, q), TaskKind::absolute) == p3_answer);
}

TEST_CASE("relative answers rebuild the answerer's proportions from the fixed year-1 proportion") {
  Question q = question(TaskKind::relative, Problem::relative);
  q.inputs.first_year_proportion = 0.25;  // not the advisor's 36.21 %: the first change starts from it
  const auto changes = parse(reference_answer(Answerer::advisor, q), TaskKind::relative);
  REQUIRE(changes.size() == 9);
  CHECK(changes[0] == doctest::Approx(0.3559 - 0.25).epsilon(1e-12));
  double pi = 0.25;
  for (std::size_t j = 0; j < 9; ++j) {
    pi += changes[j];
    CHECK(pi == doctest::Approx(q.inputs.advisor[j + 1]).epsilon(1e-9));
  }
}

TEST_CASE("step answers are the path's amount over the current wealth, clamped") {
  Question q = question(TaskKind::step, Problem::absolute);
  q.inputs.advisor.clear();
  q.inputs.step = StepState{};
  q.inputs.step->year = 3;
  q.inputs.step->wealth = 12.0;
  CHECK(parse(reference_answer(Answerer::merton, q), TaskKind::step)[0] ==
        doctest::Approx(two_decimals(merton(q.inputs.investor.alpha, 3) / 12.0)).epsilon(1e-12));
  q.inputs.step->wealth = 0.5;  // the amount exceeds the wealth: 100 %
  CHECK(parse(reference_answer(Answerer::advisor, q), TaskKind::step)[0] == 1.0);
  q.inputs.step->wealth = -1.0;
  CHECK(parse(reference_answer(Answerer::advisor, q), TaskKind::step)[0] == 0.0);
}

TEST_CASE("the reference backend answers questions and refuses requests without one") {
  ReferenceBackend backend(Answerer::own_theory);
  std::vector<herdsim::inference::Request> requests(3);
  requests[0].question = question(TaskKind::absolute, Problem::absolute);
  requests[2].question = question(TaskKind::mutual, Problem::mutual);  // no peer
  const auto out = backend.generate(requests);
  REQUIRE(out.size() == 3);
  CHECK(out[0].ok());
  CHECK(out[0].text ==
        reference_answer(Answerer::own_theory, question(TaskKind::absolute, Problem::absolute)));
  CHECK(out[1].status == HERDSIM_ERR_INVALID_ARGUMENT);
  CHECK(out[1].error.find("no question") != std::string::npos);
  CHECK(out[2].status == HERDSIM_ERR_INVALID_ARGUMENT);
  CHECK(out[2].error.find("peer") != std::string::npos);
  CHECK(backend.name() == "reference");
  CHECK(backend.describe() == R"({"answerer":"own_theory","backend":"reference"})");
}
