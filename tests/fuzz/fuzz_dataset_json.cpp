// Fuzz harness: the InvestAlign dataset's JSON records (io/dataset_jsonl.hpp, docs/investagents.md) from
// fuzzed attributes. No C++ code reads a dataset back (fine-tuning tools and the Python tests do), so the
// harness reads every record it makes back and checks it.
//
// The fuzz bytes give the task settings and one agent's prompt inputs (the numbers a scenario or the dataset
// generator supplies: NaN, infinities and extremes included), and a target answer's explanation and values.
// Properties: render_prompt gives a prompt or an InputError; a prompt's hash is the key replay matches; the
// target answer (format_answer) is refused with an InputError or is admitted by the answer's grammar and
// parses back to the values and explanation written; the chat line is JSON that reads back to the prompt and
// answer.
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "io/dataset_jsonl.hpp"
#include "io/replay_backend.hpp"
#include "sim/error.hpp"
#include "sim/investalign/answer.hpp"
#include "sim/investalign/prompt.hpp"
#include "support/gbnf.hpp"

namespace {

namespace ia = herdsim::investalign;
using herdsim::fuzz::FuzzInput;

ia::InvestorProfile profile(FuzzInput& in) {
  ia::InvestorProfile p;
  p.lottery_prob = in.number(0.3, 1.0);
  p.alpha = in.number(0.0, 5.0);
  p.score = in.number(0.0, 10.0);
  p.theta = in.number(0.0, 1e-6);
  p.budget = in.number(0.0, 100.0);
  return p;
}

std::vector<double> fractions(FuzzInput& in, std::size_t n, double lo, double hi) {
  std::vector<double> out(n);
  for (auto& v : out) v = in.number(lo, hi);
  return out;
}

/// The inputs of one prompt; lengths are mostly right, sometimes not.
ia::PromptInputs inputs(FuzzInput& in, ia::TaskKind kind, int horizon) {
  const auto T = static_cast<std::size_t>(horizon < 0 ? 0 : horizon);
  const auto length = [&](std::size_t right) {
    return in.boolean() ? right : static_cast<std::size_t>(in.integer(0, 12));
  };
  ia::PromptInputs p;
  p.investor = profile(in);
  if (kind != ia::TaskKind::step) p.advisor = fractions(in, length(T), 0.0, 1.0);
  if (kind == ia::TaskKind::relative || in.byte() == 0) p.first_year_proportion = in.number(0.0, 1.0);
  if (kind == ia::TaskKind::mutual || in.byte() == 0) p.peer = profile(in);
  if (kind == ia::TaskKind::step || in.byte() == 0) {
    ia::StepState st;
    st.year = static_cast<int>(in.integer(-1, 12));
    st.wealth = in.number(0.0, 1000.0);
    if (in.boolean()) st.own_last = in.number(0.0, 1.0);
    if (in.boolean()) st.leader_last = in.number(0.0, 1.0);
    st.peers_last = fractions(in, static_cast<std::size_t>(in.integer(0, 4)), 0.0, 1.0);
    p.step = st;
  }
  if (in.byte() < 0x40) {
    ia::TrainingHint hint;
    hint.ln_eta = in.number(-800.0, 800.0);
    hint.values = fractions(in, length(kind == ia::TaskKind::relative && T > 0 ? T - 1 : T), -1.0, 1.0);
    p.hint = hint;
  }
  return p;
}

const herdsim::test::Gbnf& grammar_of(ia::TaskKind kind, int horizon, const ia::AnswerSchema& schema) {
  static const herdsim::test::Gbnf* grammars[4][11] = {};
  auto*& g = grammars[static_cast<int>(kind)][horizon];
  if (g == nullptr) g = new herdsim::test::Gbnf(ia::answer_gbnf(schema));  // kept for the process
  return *g;
}

/// The target answer: nullopt when format_answer refuses the explanation or values (with an InputError).
std::optional<std::string> target_answer(FuzzInput& in, ia::TaskKind kind, int horizon) {
  const ia::AnswerSchema schema = ia::answer_schema(kind, horizon);
  const std::string explanation = in.text(500);
  const std::vector<double> values =
      fractions(in, static_cast<std::size_t>(schema.length), schema.min_percent / 100.0 - 0.1,
                schema.max_percent / 100.0 + 0.1);
  std::string text;
  try {
    text = ia::format_answer(schema, explanation, values);
  } catch (const herdsim::InputError&) {
    return std::nullopt;
  }
  FUZZ_CHECK(grammar_of(kind, horizon, schema).accepts(text), "a target answer outside the grammar: " + text);
  const std::vector<double> fallback(values.size(), 0.5);
  const auto a = ia::parse_answer(text, schema, fallback);
  FUZZ_CHECK(a.status == ia::AnswerStatus::ok, std::string(ia::answer_status_name(a.status)) + ": " + text);
  for (std::size_t i = 0; i < values.size(); ++i) {
    // As written: the value rounded to hundredths of a percent.
    const double shown = std::stod(ia::format_percent(values[i])) / 100.0;
    FUZZ_CHECK(a.values[i] == shown, "value " + std::to_string(i) + " of " + text);
  }
  FUZZ_CHECK(a.explanation && *a.explanation == explanation, text);
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  const auto kind = static_cast<ia::TaskKind>(in.integer(0, 3));
  ia::TaskSettings settings;
  settings.horizon_years = static_cast<int>(in.integer(0, 10));
  settings.market = {in.number(-0.5, 0.5), in.number(-0.5, 0.5), in.number(0.0, 1.0)};
  settings.alpha_leader = in.number(0.0, 5.0);
  settings.lottery =
      in.boolean() ? herdsim::theory::lottery_win10_sure3 : herdsim::theory::lottery_win20_sure6;
  const ia::PromptInputs prompt_inputs = inputs(in, kind, settings.horizon_years);
  const int min_horizon = kind == ia::TaskKind::relative ? 2 : 1;

  ia::Sample sample;
  try {
    const ia::PromptTemplate tpl = ia::make_prompt_template(kind, settings);
    FUZZ_CHECK(settings.horizon_years >= min_horizon, "a template for a horizon its task refuses");
    sample.prompt = ia::render_prompt(tpl, prompt_inputs);
  } catch (const herdsim::InputError& e) {
    FUZZ_CHECK(std::string(e.what()).rfind("prompt", 0) == 0, e.what());
    return 0;
  }
  // Replay finds an answer by the hash of the request made from the prompt.
  herdsim::inference::Request request;
  request.system = sample.prompt.system;
  request.user = sample.prompt.user();
  FUZZ_CHECK(herdsim::io::ReplayBackend::prompt_hash(request) == sample.prompt.hash(), "prompt hash");

  if (const auto answer = target_answer(in, kind, settings.horizon_years)) sample.answer = *answer;
  const std::string line = herdsim::io::chat_line(sample);
  FUZZ_CHECK(line.find('\n') == std::string::npos, "a chat line with a newline");
  const auto j = nlohmann::json::parse(line);
  const auto& messages = j.at("messages");
  FUZZ_CHECK(messages.size() == 3, line);
  FUZZ_CHECK(messages[0].at("role") == "system" && messages[0].at("content") == sample.prompt.system, line);
  FUZZ_CHECK(messages[1].at("role") == "user" && messages[1].at("content") == sample.prompt.user(), line);
  FUZZ_CHECK(messages[2].at("role") == "assistant" && messages[2].at("content") == sample.answer, line);
  return 0;
}
