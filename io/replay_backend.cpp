#include "io/replay_backend.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>

#include "io/decision_cache.hpp"
#include "io/run_file.hpp"
#include "sim/error.hpp"
#include "sim/investalign/prompt.hpp"
#include "sim/investalign/reference.hpp"

namespace herdsim::io {

ReplayBackend::ReplayBackend(const std::string& path, const std::string& group, const std::string& population)
    : path_(path), group_(group), population_(population) {
  const RunFile file(path);
  std::size_t populations = 0;
  for (const auto& g : file.info().groups) {
    if (!group_.empty() && g != group_) continue;
    const RunGroupInfo info = file.group(g);
    for (const auto& pop : info.populations) {
      if (!pop.has_transcripts || (!population_.empty() && pop.name != population_)) continue;
      ++populations;
      if (std::find(recorded_backends_.begin(), recorded_backends_.end(), pop.backend) ==
          recorded_backends_.end())
        recorded_backends_.push_back(pop.backend);
      add(file.transcripts(g, pop.name));
    }
  }
  if (populations == 0) {
    throw BackendError(fmt::format("replay: {} holds no transcripts{}{}", path,
                                   group_.empty() ? "" : fmt::format(" in run group {}", group_),
                                   population_.empty() ? "" : fmt::format(" of population {}", population_)));
  }
}

ReplayBackend::ReplayBackend(const std::string& source, const std::vector<Transcripts>& transcripts)
    : path_(source) {
  if (transcripts.empty()) throw BackendError(fmt::format("replay: {} holds no transcripts", source));
  for (const auto& t : transcripts) add(t);
}

void ReplayBackend::add(const Transcripts& t) {
  for (std::size_t i = 0; i < t.size(); ++i) {
    Answer a{t.output[i], t.prompt_tokens[i], t.cached_tokens[i], t.completion_tokens[i], t.time_ms[i],
             false};
    const auto [it, fresh] = answers_.emplace(std::make_pair(t.prompt_hash[i], t.seed[i]), a);
    // The same request recorded twice (two populations or sweep points asking alike) is fine when the
    // answers agree; otherwise which one to replay is undecidable.
    if (!fresh && it->second.text != a.text) it->second.ambiguous = true;
  }
}

std::uint64_t ReplayBackend::prompt_hash(const inference::Request& request) {
  std::uint64_t h = investalign::fnv1a64(request.system);
  h = investalign::fnv1a64(std::string_view("\0", 1), h);
  return investalign::fnv1a64(request.user, h);
}

std::vector<inference::Response> ReplayBackend::generate(const std::vector<inference::Request>& requests) {
  std::vector<inference::Response> out;
  out.reserve(requests.size());
  for (const auto& r : requests) {
    const std::uint64_t hash = prompt_hash(r);
    const auto it = answers_.find({hash, r.seed});
    if (it == answers_.end()) {
      throw BackendError(
          fmt::format("replay: {} has no recorded answer for the request with prompt hash {} and "
                      "seed {} (the scenario, seed or protocol differs from the recorded run)",
                      path_, investalign::hash_hex(hash), r.seed));
    }
    if (it->second.ambiguous) {
      throw BackendError(
          fmt::format("replay: {} holds two different answers for prompt hash {} and seed {}; "
                      "choose one with inference.replay_group / replay_population",
                      path_, investalign::hash_hex(hash), r.seed));
    }
    const Answer& a = it->second;
    inference::Response resp;
    resp.text = a.text;
    resp.prompt_tokens = a.prompt_tokens;
    resp.cached_tokens = a.cached_tokens;
    resp.completion_tokens = a.completion_tokens;
    resp.time_ms = a.time_ms;
    out.push_back(std::move(resp));
  }
  return out;
}

std::string ReplayBackend::describe() const {
  const nlohmann::json j = {{"backend", "replay"},
                            {"file", path_},
                            {"group", group_},
                            {"population", population_},
                            {"answers", answers_.size()},
                            {"recorded_backends", recorded_backends_}};
  return j.dump();
}

std::string plugin_config_json(const sim::InferenceSpec& spec, int gpu_slot) {
  nlohmann::json j = {{"model", spec.model},
                      {"lora", spec.lora},
                      {"threads", spec.threads},
                      {"batch", spec.batch},
                      {"prefix_sharing", spec.prefix_sharing}};
  // Only when not the default: the configuration of existing scenarios stays as it was.
  if (spec.mode != "batch_invariant") j["mode"] = spec.mode;
  // Only the llama.cpp plugins know the key (other plugins refuse unknown keys).
  const bool llama = spec.backend == inference::auto_cpu_plugin ||
                     spec.backend == inference::auto_gpu_plugin || spec.backend == "auto";
  if (gpu_slot >= 0 && llama) j["device"] = gpu_slot;
  return j.dump();
}

inference::BackendFactory default_backend_factory(const std::string& decision_cache, int gpu_slot) {
  return [decision_cache, gpu_slot](const sim::InferenceSpec& spec) -> std::unique_ptr<inference::Backend> {
    if (spec.backend == "replay")
      return std::make_unique<ReplayBackend>(spec.replay, spec.replay_group, spec.replay_population);
    if (spec.backend == "reference") {
      const auto answerer = from_name<investalign::Answerer>(spec.answerer);
      if (!answerer)
        throw BackendError(fmt::format("reference: unknown answerer '{}'; one of {}", spec.answerer,
                                       quoted_names<investalign::Answerer>()));
      return std::make_unique<investalign::ReferenceBackend>(*answerer);
    }
    // A clear message before the plugin sees a path at all.
    std::error_code ec;
    if (!std::filesystem::is_regular_file(spec.model, ec))
      throw BackendError(
          fmt::format("{}: model file '{}' does not exist or is not a file", spec.backend, spec.model));
    for (const auto& lora : spec.lora) {
      if (!std::filesystem::is_regular_file(lora, ec))
        throw BackendError(
            fmt::format("{}: LoRA adapter '{}' does not exist or is not a file", spec.backend, lora));
    }
    auto plugin = inference::load_plugin(spec.backend, plugin_config_json(spec, gpu_slot));
    if (decision_cache.empty()) return plugin;
    return std::make_unique<CachedBackend>(std::move(plugin), spec, decision_cache);
  };
}

}  // namespace herdsim::io
