#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "sim/error.hpp"
#include "sim/investalign/prompt.hpp"
#include "support/investalign.hpp"

using namespace herdsim::investalign;
using herdsim::test::worked_example;
using herdsim::test::worked_example_advisor;

namespace {

InvestorProfile other_investor() {
  InvestorProfile p;
  p.lottery_prob = 0.437;
  p.alpha = 0.2;
  p.score = 3;
  p.theta = 3e-8;
  p.budget = 20;
  return p;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool is_ascii(const std::string& text) {
  for (const char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80U) return false;
  }
  return true;
}

PromptInputs inputs_for(TaskKind kind, const InvestorProfile& investor) {
  PromptInputs in;
  in.investor = investor;
  in.advisor = worked_example_advisor();
  if (kind == TaskKind::relative) in.first_year_proportion = 0.1342;
  if (kind == TaskKind::mutual) in.peer = other_investor();
  if (kind == TaskKind::step) {
    StepState st;
    st.year = 3;
    st.wealth = 11.234;
    st.own_last = 0.35;
    st.leader_last = 0.3496;
    st.peers_last = {0.3, 0.4};
    in.step = st;
  }
  return in;
}

}  // namespace

TEST_SUITE("investalign.prompt") {
  TEST_CASE("FNV-1a 64 matches the reference vectors") {
    CHECK(fnv1a64("") == 0xcbf29ce484222325ULL);
    CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
    CHECK(fnv1a64("foobar") == 0x85944171f73967e8ULL);
    CHECK(fnv1a64("bar", fnv1a64("foo")) == fnv1a64("foobar"));
    CHECK(hash_hex(0xcbf29ce484222325ULL) == "cbf29ce484222325");
    CHECK(hash_hex(1) == "0000000000000001");
  }

  TEST_CASE("the shared prefix is identical for every agent; the suffix and the hash are not") {
    for (const TaskKind kind : {TaskKind::absolute, TaskKind::relative, TaskKind::mutual, TaskKind::step}) {
      CAPTURE(task_kind_name(kind));
      const auto tpl = make_prompt_template(kind);
      const Prompt a = render_prompt(tpl, inputs_for(kind, worked_example()));
      const Prompt b = render_prompt(tpl, inputs_for(kind, other_investor()));
      CHECK(a.system == b.system);
      CHECK(a.user_shared == b.user_shared);
      CHECK(a.shared_hash() == b.shared_hash());
      CHECK(a.user_agent != b.user_agent);
      CHECK(a.hash() != b.hash());
      CHECK(a.user() == a.user_shared + a.user_agent);
      // Stable: the same inputs give the same text and hash.
      const Prompt again = render_prompt(make_prompt_template(kind), inputs_for(kind, worked_example()));
      CHECK(again.user() == a.user());
      CHECK(again.hash() == a.hash());
      CHECK(is_ascii(a.system + a.user()));
      // The agent's attributes are not in the shared part.
      CHECK_FALSE(contains(a.user_shared, "0.766119"));
    }
  }

  TEST_CASE("the hash covers the system message and the boundary between the parts") {
    Prompt p{"sys", "ab", "c"};
    Prompt q{"sys", "a", "bc"};
    CHECK(p.hash() == q.hash());  // same full text: the split is not part of the identity
    Prompt r{"sysa", "b", "c"};
    CHECK(p.hash() != r.hash());  // the NUL separator keeps system and user apart
    Prompt s{"Sys", "ab", "c"};
    CHECK(p.hash() != s.hash());
  }

  TEST_CASE("absolute prompt: attributes, horizon, advisor and the answer format") {
    const Prompt p = render_prompt(make_prompt_template(TaskKind::absolute),
                                   inputs_for(TaskKind::absolute, worked_example()));
    const std::string user = p.user();
    CHECK(contains(user, "probability 0.9"));
    CHECK(contains(user, "winning 10 million dollars"));
    CHECK(contains(user, "3 million dollars for sure"));
    CHECK(contains(user, "alpha = 0.766119"));
    CHECK(contains(user, "0 (none) to 10 (strong)"));
    CHECK(contains(user, "Dependence on the advisor: 10 "));
    CHECK(contains(user, "theta = 1.0e-07"));
    CHECK(contains(user, "Initial budget: 10 million dollars"));
    CHECK(contains(user, "T = 10 years"));
    CHECK(contains(user,
                   "years 1 to 10: 36.21, 35.59, 34.96, 34.34, 33.73, 33.13, 32.53, 31.92, 31.34, 30.75."));
    CHECK(contains(user, "risk aversion 0.2"));
    CHECK(contains(user, "risk-free rate of 4.00%"));
    CHECK(contains(user, "expected return of 7.00%"));
    CHECK(contains(user, "volatility of 17.00%"));
    CHECK(contains(p.user_shared, "\"Decision Explanation\""));
    CHECK(contains(p.user_shared, "\"Investment Proportion Sequence\""));
    CHECK(contains(p.user_shared, "10 percentages for years 1 to 10"));
    CHECK(contains(p.user_shared, "at most 400 characters"));
    CHECK_FALSE(contains(user, "Reference solution"));
  }

  TEST_CASE("relative prompt: change sequence of T - 1 values after a fixed first year") {
    const Prompt p = render_prompt(make_prompt_template(TaskKind::relative),
                                   inputs_for(TaskKind::relative, worked_example()));
    const std::string user = p.user();
    CHECK(contains(p.user_shared, "\"Investment Proportion Change Sequence\""));
    CHECK(contains(p.user_shared, "9 changes in percentage points"));
    CHECK(contains(p.user_shared, "between -100 and 100"));
    CHECK(contains(user, "fixed at 13.42%"));
    CHECK(contains(user, "-0.62, -0.63, -0.62, -0.61, -0.60, -0.60, -0.61, -0.58, -0.59."));
  }

  TEST_CASE("mutual prompt: the peer's profile") {
    const Prompt p =
        render_prompt(make_prompt_template(TaskKind::mutual), inputs_for(TaskKind::mutual, worked_example()));
    const std::string user = p.user();
    CHECK(contains(p.user_shared, "influence each other"));
    CHECK(contains(user, "The peer investor's profile"));
    CHECK(contains(user, "probability 0.437"));
    CHECK(contains(user, "the peer's risk aversion is alpha = 0.200000"));
    CHECK(contains(user, "Initial budget: 20 million dollars"));
  }

  TEST_CASE("per-step prompt: the current state and a single proportion") {
    const Prompt p =
        render_prompt(make_prompt_template(TaskKind::step), inputs_for(TaskKind::step, worked_example()));
    const std::string user = p.user();
    CHECK(contains(p.user_shared,
                   "{\"Decision Explanation\": \"<your reasoning, at most 400 characters>\", "
                   "\"Investment Proportion\": <percentage"));
    CHECK(contains(user, "year 3 of 10"));
    CHECK(contains(user, "current wealth is 11.23 million dollars"));
    CHECK(contains(user, "you held 35.00%"));
    CHECK(contains(user, "follow held 34.96%"));
    CHECK(contains(user, "30.00, 40.00"));
    // Year 1: nothing to report about last year.
    PromptInputs first = inputs_for(TaskKind::step, worked_example());
    first.step = StepState{};
    const Prompt q = render_prompt(make_prompt_template(TaskKind::step), first);
    CHECK_FALSE(contains(q.user(), "Last year"));
    CHECK(answer_schema(TaskKind::step, 10).scalar);
  }

  TEST_CASE("training variant carries eta and the optimal values") {
    PromptInputs in = inputs_for(TaskKind::absolute, worked_example());
    in.hint = TrainingHint{std::log(9.99124e-6), std::vector<double>(10, 0.1342)};
    const Prompt p = render_prompt(make_prompt_template(TaskKind::absolute), in);
    CHECK(contains(p.user_agent, "Reference solution (training): eta = 9.991240e-06"));
    CHECK(contains(p.user_agent, "13.42, 13.42"));
    PromptInputs rel = inputs_for(TaskKind::relative, worked_example());
    rel.hint = TrainingHint{-12.0, std::vector<double>(9, -0.001)};
    CHECK(
        contains(render_prompt(make_prompt_template(TaskKind::relative), rel).user_agent, "optimal changes"));
    // The shared part does not change with the hint.
    CHECK(p.user_shared == render_prompt(make_prompt_template(TaskKind::absolute),
                                         inputs_for(TaskKind::absolute, worked_example()))
                               .user_shared);
  }

  TEST_CASE("settings change the shared part") {
    TaskSettings w20;
    w20.lottery = herdsim::theory::lottery_win20_sure6;
    const Prompt p = render_prompt(make_prompt_template(TaskKind::absolute, w20),
                                   inputs_for(TaskKind::absolute, worked_example()));
    CHECK(contains(p.user_agent, "winning 20 million dollars"));
    CHECK(contains(p.user_agent, "6 million dollars for sure"));
    TaskSettings five;
    five.horizon_years = 5;
    const auto tpl = make_prompt_template(TaskKind::absolute, five);
    CHECK(contains(tpl.task, "T = 5 years"));
    CHECK(tpl.task != make_prompt_template(TaskKind::absolute).task);
    PromptInputs in = inputs_for(TaskKind::absolute, worked_example());
    in.advisor.resize(5);
    CHECK_NOTHROW((void)render_prompt(tpl, in));
  }

  TEST_CASE("format_exp_of_ln prints from the logarithm") {
    CHECK(format_exp_of_ln(std::log(9.99124e-6), 3) == "9.991e-06");
    CHECK(format_exp_of_ln(std::log(9.99124e-6), 6) == "9.991240e-06");
    CHECK(format_exp_of_ln(std::log(9.99996), 3) == "1.000e+01");
    CHECK(format_exp_of_ln(0.0, 2) == "1.00e+00");
    CHECK(format_exp_of_ln(-2000.0 * std::log(10.0), 2) == "1.00e-2000");
    // Exponents beyond a long long (found by fuzzing: the cast overflowed) print as the limits.
    CHECK(format_exp_of_ln(-1e300, 3) == "0");
    CHECK(format_exp_of_ln(1e300, 3) == "inf");
    CHECK(format_exp_of_ln(-std::numeric_limits<double>::infinity(), 3) == "0");
  }

  TEST_CASE("bad inputs are refused with InputError") {
    const auto abs = make_prompt_template(TaskKind::absolute);
    PromptInputs in = inputs_for(TaskKind::absolute, worked_example());
    in.advisor.pop_back();
    CHECK_THROWS_AS((void)render_prompt(abs, in), herdsim::InputError);
    in = inputs_for(TaskKind::absolute, worked_example());
    in.investor.alpha = std::nan("");
    CHECK_THROWS_AS((void)render_prompt(abs, in), herdsim::InputError);
    in = inputs_for(TaskKind::absolute, worked_example());
    in.hint = TrainingHint{-1.0, std::vector<double>(9, 0.1)};
    CHECK_THROWS_AS((void)render_prompt(abs, in), herdsim::InputError);

    in = inputs_for(TaskKind::relative, worked_example());
    in.first_year_proportion.reset();
    CHECK_THROWS_AS((void)render_prompt(make_prompt_template(TaskKind::relative), in), herdsim::InputError);
    in = inputs_for(TaskKind::mutual, worked_example());
    in.peer.reset();
    CHECK_THROWS_AS((void)render_prompt(make_prompt_template(TaskKind::mutual), in), herdsim::InputError);
    in = inputs_for(TaskKind::step, worked_example());
    in.step.reset();
    CHECK_THROWS_AS((void)render_prompt(make_prompt_template(TaskKind::step), in), herdsim::InputError);
    in = inputs_for(TaskKind::step, worked_example());
    in.step->year = 11;
    CHECK_THROWS_AS((void)render_prompt(make_prompt_template(TaskKind::step), in), herdsim::InputError);
    TaskSettings one;
    one.horizon_years = 1;
    CHECK_THROWS_AS((void)make_prompt_template(TaskKind::relative, one), herdsim::InputError);
  }
}
