// The llama.cpp plugin's configuration (llama_config.hpp).
#include "llama_config.hpp"

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "plugin_shim.hpp"

namespace herdsim::llama {

namespace {

using nlohmann::json;
using plugin::fail;

constexpr const char* known_keys =
    "model, lora, n_ctx, batch, threads, prefix_sharing, prefix_min_tokens, mode, jump_forward, dedup, "
    "device";

bool bool_key(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_boolean())
    fail(HERDSIM_ERR_INVALID_ARGUMENT,
         std::string("config: '") + key + "' must be true or false, got " + v.dump());
  return v.get<bool>();
}

int int_key(const json& j, const char* key, int lo, int hi) {
  const json& v = j.at(key);
  if (!v.is_number_integer())
    fail(HERDSIM_ERR_INVALID_ARGUMENT,
         std::string("config: '") + key + "' must be an integer, got " + v.dump());
  const auto x = v.get<std::int64_t>();
  if (x < lo || x > hi)
    fail(HERDSIM_ERR_INVALID_ARGUMENT, std::string("config: '") + key + "' must be in [" +
                                           std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                                           std::to_string(x));
  return static_cast<int>(x);
}

}  // namespace

const char* mode_name(Mode m) {
  return m == Mode::fast ? "fast" : "batch_invariant";
}

Config parse_config(const char* text) {
  if (text == nullptr) fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: NULL configuration");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(HERDSIM_ERR_INVALID_ARGUMENT, std::string("config is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(HERDSIM_ERR_INVALID_ARGUMENT, "config must be a JSON object, got " + j.dump());
  Config c;
  for (const auto& [key, value] : j.items()) {
    if (key == "model") {
      if (!value.is_string() || value.get<std::string>().empty())
        fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: 'model' must be a non-empty path string");
      c.model = value.get<std::string>();
    } else if (key == "lora") {
      if (!value.is_array())
        fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: 'lora' must be a list of paths or {path, scale}");
      for (const json& item : value) {
        LoraSpec spec;
        if (item.is_string()) {
          spec.path = item.get<std::string>();
        } else if (item.is_object() && item.contains("path") && item.at("path").is_string()) {
          spec.path = item.at("path").get<std::string>();
          for (const auto& [k, v] : item.items()) {
            if (k == "scale") {
              if (!v.is_number() || !std::isfinite(v.get<double>()))
                fail(HERDSIM_ERR_INVALID_ARGUMENT,
                     "config: a LoRA 'scale' must be a finite number, got " + v.dump());
              spec.scale = v.get<float>();
            } else if (k != "path") {
              fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: unknown LoRA key '" + k + "' (known: path, scale)");
            }
          }
        } else {
          fail(
              HERDSIM_ERR_INVALID_ARGUMENT,
              "config: a 'lora' entry must be a path or {\"path\": ..., \"scale\": ...}, got " + item.dump());
        }
        if (spec.path.empty()) fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: a LoRA path is empty");
        c.lora.push_back(spec);
      }
    } else if (key == "n_ctx") {
      c.n_ctx = int_key(j, "n_ctx", 16, 1 << 20);
    } else if (key == "batch") {
      c.batch = int_key(j, "batch", 1, 256);  // llama.cpp's LLAMA_MAX_SEQ
    } else if (key == "threads") {
      c.threads = int_key(j, "threads", 1, 512);
    } else if (key == "prefix_sharing") {
      c.prefix_sharing = bool_key(j, "prefix_sharing");
    } else if (key == "jump_forward") {
      c.jump_forward = bool_key(j, "jump_forward");
    } else if (key == "dedup") {
      c.dedup = bool_key(j, "dedup");
    } else if (key == "mode") {
      if (value == "batch_invariant") {
        c.mode = Mode::batch_invariant;
      } else if (value == "fast") {
        c.mode = Mode::fast;
      } else {
        fail(HERDSIM_ERR_INVALID_ARGUMENT,
             "config: 'mode' must be \"batch_invariant\" or \"fast\", got " + value.dump());
      }
    } else if (key == "device") {
      c.device = int_key(j, "device", 0, 1 << 20);
    } else if (key == "prefix_min_tokens") {
      c.prefix_min_tokens = int_key(j, "prefix_min_tokens", 1, 1 << 20);
    } else {
      fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: unknown key '" + key + "' (known: " + known_keys + ")");
    }
  }
  if (c.model.empty())
    fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: 'model' (path of a GGUF file) is required");
  return c;
}

}  // namespace herdsim::llama
