// Drives an inference plugin from the command line for tests/tools/test_openai_backend.py:
//   openai_driver PLUGIN CONFIG_JSON REQUESTS_FILE
// loads PLUGIN (name or path) with CONFIG_JSON through herdsim::inference::load_plugin, runs the
// requests of REQUESTS_FILE (a JSON array of {system, user, max_tokens, temperature, seed, grammar,
// investalign}) as one batch, and prints one JSON object: name, describe, wall_ms and the responses.
// "investalign": {"years": T, "max_explanation_chars": N} sets the grammar to the InvestAlign answer
// grammar and adds the project parser's verdict on the text (answer_valid, answer_status).
// A plugin that cannot be loaded or created prints {"error": MESSAGE} and exits 3.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "sim/error.hpp"
#include "sim/inference/backend.hpp"
#include "sim/investalign/answer.hpp"

namespace {

using nlohmann::json;
namespace inference = herdsim::inference;
namespace investalign = herdsim::investalign;

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: openai_driver PLUGIN CONFIG_JSON REQUESTS_FILE\n";
    return 2;
  }
  std::ifstream in(argv[3]);
  std::stringstream text;
  text << in.rdbuf();
  const json spec = json::parse(text.str());

  std::vector<inference::Request> requests;
  std::vector<std::optional<investalign::AnswerSchema>> schemas;
  for (const json& r : spec) {
    inference::Request req;
    req.system = r.value("system", "");
    req.user = r.value("user", "");
    req.max_tokens = r.value("max_tokens", 16);
    req.temperature = r.value("temperature", 0.0);
    req.seed = r.value("seed", std::uint64_t{0});
    req.grammar = r.value("grammar", "");
    std::optional<investalign::AnswerSchema> schema;
    if (r.contains("investalign")) {
      schema = investalign::proportion_sequence_schema(r.at("investalign").at("years").get<int>());
      schema->max_explanation_chars = r.at("investalign").value("max_explanation_chars", 40);
      req.grammar = investalign::answer_gbnf(*schema);
    }
    requests.push_back(std::move(req));
    schemas.push_back(std::move(schema));
  }

  std::unique_ptr<inference::Backend> backend;
  try {
    backend = inference::load_plugin(argv[1], argv[2]);
  } catch (const herdsim::Error& e) {
    std::cout << json{{"error", e.what()}}.dump() << "\n";
    return 3;
  }

  const auto start = std::chrono::steady_clock::now();
  const std::vector<inference::Response> responses = backend->generate(requests);
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  json out = {{"name", backend->name()}, {"describe", backend->describe()}, {"wall_ms", wall_ms}};
  json list = json::array();
  for (std::size_t i = 0; i < responses.size(); ++i) {
    const inference::Response& r = responses[i];
    json item = {{"status", r.status},
                 {"status_name", inference::status_name(r.status)},
                 {"text", r.text},
                 {"error", r.error},
                 {"prompt_tokens", r.prompt_tokens},
                 {"cached_tokens", r.cached_tokens},
                 {"completion_tokens", r.completion_tokens},
                 {"time_ms", r.time_ms}};
    if (schemas[i] && r.ok()) {
      const std::vector<double> fallback(static_cast<std::size_t>(schemas[i]->length), 0.0);
      const investalign::ParsedAnswer parsed = investalign::parse_answer(r.text, *schemas[i], fallback);
      item["answer_valid"] = parsed.valid && parsed.status == investalign::AnswerStatus::ok;
      item["answer_status"] = investalign::answer_status_name(parsed.status);
    }
    list.push_back(std::move(item));
  }
  out["responses"] = std::move(list);
  std::cout << out.dump() << "\n";
  return 0;
}
