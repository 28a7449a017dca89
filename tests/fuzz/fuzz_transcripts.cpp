// Fuzz harness: what `replay` does with a run file's transcripts (io/replay_backend.hpp) once they are read
// (the HDF5 bytes themselves are not fuzzed: the HDF5 library reads them).
//
// The fuzz bytes give a few prompts and a list of transcript records: which prompt (or an unrelated hash),
// seed, the recorded output text, token counts and time. Properties: a request is answered with exactly the
// recorded text and counts when one output was recorded for its (prompt hash, seed), and refused with a
// BackendError naming it when none or two different ones were; the answers parse (parse_answer, as the
// investagent population does) to the same bits every time, so a replayed run reproduces the recorded one.
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_support.hpp"
#include "io/replay_backend.hpp"
#include "io/run_file.hpp"
#include "sim/error.hpp"
#include "sim/investalign/answer.hpp"

namespace {

namespace ia = herdsim::investalign;
using herdsim::fuzz::FuzzInput;

struct Expected {
  std::string text;
  int prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  double time_ms = 0.0;
  bool ambiguous = false;
};

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

void check_parses_alike(const std::string& text) {
  for (const auto& schema :
       {ia::proportion_sequence_schema(10), ia::change_sequence_schema(10), ia::single_proportion_schema()}) {
    const std::vector<double> fallback(static_cast<std::size_t>(schema.length), 0.3);
    const auto a = ia::parse_answer(text, schema, fallback);
    const auto b = ia::parse_answer(text, schema, fallback);
    FUZZ_CHECK(a.values.size() == fallback.size() && a.status == b.status && a.valid == b.valid, text);
    for (std::size_t i = 0; i < a.values.size(); ++i) FUZZ_CHECK(same_bits(a.values[i], b.values[i]), text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  constexpr int int_min = std::numeric_limits<int>::min();
  constexpr int int_max = std::numeric_limits<int>::max();

  // The prompts the requests are made from.
  std::vector<herdsim::inference::Request> prompts(static_cast<std::size_t>(in.integer(1, 4)));
  for (auto& r : prompts) {
    r.system = in.text(48);
    r.user = in.text(96);
  }

  // The recorded transcripts, in one or two populations.
  std::vector<herdsim::io::Transcripts> populations(static_cast<std::size_t>(in.integer(1, 2)));
  std::map<std::pair<std::uint64_t, std::uint64_t>, Expected> expected;
  const auto records = in.integer(0, 24);
  for (std::int64_t i = 0; i < records; ++i) {
    auto& t = populations[static_cast<std::size_t>(
        in.integer(0, static_cast<std::int64_t>(populations.size()) - 1))];
    const auto which = static_cast<std::size_t>(in.integer(0, static_cast<std::int64_t>(prompts.size())));
    const std::uint64_t hash = which < prompts.size()
                                   ? herdsim::io::ReplayBackend::prompt_hash(prompts[which])
                                   : static_cast<std::uint64_t>(in.integer(0, INT64_MAX));
    const auto seed = static_cast<std::uint64_t>(in.integer(0, 3));
    Expected e;
    e.text = in.text(400);
    e.prompt_tokens = static_cast<int>(in.integer(int_min, int_max));
    e.cached_tokens = static_cast<int>(in.integer(int_min, int_max));
    e.completion_tokens = static_cast<int>(in.integer(int_min, int_max));
    e.time_ms = in.raw_double();
    t.step.push_back(0);
    t.path.push_back(0);
    t.agent.push_back(static_cast<int>(i));
    t.stage.push_back(0);
    t.prompt_hash.push_back(hash);
    t.seed.push_back(seed);
    t.output.push_back(e.text);
    t.status.emplace_back("ok");
    t.valid.push_back(1);
    t.prompt_tokens.push_back(e.prompt_tokens);
    t.cached_tokens.push_back(e.cached_tokens);
    t.completion_tokens.push_back(e.completion_tokens);
    t.time_ms.push_back(e.time_ms);
  }
  // What replay must answer: the first record of a key, population by population, unless two differ.
  for (auto& t : populations) {
    t.values.resize(1, static_cast<Eigen::Index>(t.size()));
    for (std::size_t i = 0; i < t.size(); ++i) {
      const Expected e{
          t.output[i], t.prompt_tokens[i], t.cached_tokens[i], t.completion_tokens[i], t.time_ms[i], false};
      const auto [it, fresh] = expected.emplace(std::make_pair(t.prompt_hash[i], t.seed[i]), e);
      if (!fresh && it->second.text != e.text) it->second.ambiguous = true;
    }
  }

  herdsim::io::ReplayBackend replay("fuzz.h5", populations);
  auto* backend = &replay;
  FUZZ_CHECK(backend->size() == expected.size(), "distinct keys");
  const auto description = nlohmann::json::parse(backend->describe(), nullptr, false);
  FUZZ_CHECK(!description.is_discarded() && description["answers"] == expected.size(), backend->describe());

  // Every prompt with every seed, one request at a time.
  for (const auto& prompt : prompts) {
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
      herdsim::inference::Request r = prompt;
      r.seed = seed;
      const auto it = expected.find({herdsim::io::ReplayBackend::prompt_hash(r), seed});
      try {
        const auto out = backend->generate({r});
        FUZZ_CHECK(it != expected.end() && !it->second.ambiguous,
                   "answered a request without one recorded answer");
        FUZZ_CHECK(out.size() == 1 && out[0].ok(), "one response");
        const Expected& e = it->second;
        FUZZ_CHECK(out[0].text == e.text && out[0].prompt_tokens == e.prompt_tokens &&
                       out[0].cached_tokens == e.cached_tokens &&
                       out[0].completion_tokens == e.completion_tokens &&
                       same_bits(out[0].time_ms, e.time_ms),
                   "the response differs from the recorded one");
        check_parses_alike(out[0].text);
      } catch (const herdsim::BackendError& err) {
        FUZZ_CHECK(it == expected.end() || it->second.ambiguous, err.what());
        FUZZ_CHECK(std::string(err.what()).find("fuzz.h5") != std::string::npos, err.what());
      }
    }
  }
  return 0;
}
