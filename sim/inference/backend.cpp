#include "sim/inference/backend.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "sim/error.hpp"
#include "sim/inference/herdsim_inference.h"

#ifndef HERDSIM_PLUGIN_DIR
#define HERDSIM_PLUGIN_DIR ""
#endif

namespace herdsim::inference {

namespace {

constexpr std::size_t kErrorBuffer = 2048;

std::string executable_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

/// A loaded plugin and one engine created by it; unloads in the right order.
class PluginBackend final : public Backend {
 public:
  PluginBackend(void* library, const herdsim_inference_plugin* table, void* engine, std::string path)
      : library_(library), table_(table), engine_(engine), path_(std::move(path)) {}
  ~PluginBackend() override {
    if (engine_ != nullptr) table_->destroy(engine_);
    // The library stays loaded: plugins may leave threads or atexit handlers (ggml does) that a
    // dlclose would pull the code from under.
  }

  std::vector<Response> generate(const std::vector<Request>& requests) override {
    std::vector<herdsim_request> in(requests.size());
    for (std::size_t i = 0; i < requests.size(); ++i) {
      const Request& r = requests[i];
      in[i] = {r.system.c_str(), r.user.c_str(),
               r.max_tokens,     static_cast<float>(r.temperature),
               r.seed,           r.grammar.empty() ? nullptr : r.grammar.c_str()};
    }
    std::vector<herdsim_response> out(requests.size());
    std::array<char, kErrorBuffer> err{};
    const int32_t status =
        table_->generate(engine_, in.data(), in.size(), out.data(), err.data(), err.size());
    // A failed call hands nothing over (herdsim_inference.h): there is nothing to release then.
    if (status != HERDSIM_OK)
      throw BackendError(
          fmt::format("{}: generate failed ({}): {}", table_->name, status_name(status), err.data()));
    // Released once, also when copying the answers fails.
    const auto release = [&](herdsim_response* p) { table_->release_responses(engine_, p, out.size()); };
    const std::unique_ptr<herdsim_response, decltype(release)> handed_over(out.data(), release);
    std::vector<Response> result(requests.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      const herdsim_response& o = out[i];
      result[i] = {o.status,        o.text ? o.text : "", o.error ? o.error : "",
                   o.prompt_tokens, o.cached_tokens,      o.completion_tokens,
                   o.time_ms};
    }
    return result;
  }

  std::string name() const override { return table_->name; }
  std::string describe() const override {
    const char* d = table_->describe(engine_);
    return d != nullptr ? d : "{}";
  }

 private:
  void* library_;
  const herdsim_inference_plugin* table_;
  void* engine_;
  std::string path_;
};

/// A plugin that is absent or unusable on this machine (not found, not loadable, no device): the
/// cases in which `auto` falls back to the CPU.
class PluginUnavailable : public BackendError {
 public:
  using BackendError::BackendError;
};

std::unique_ptr<Backend> open_plugin(const std::string& name_or_path, const std::string& config_json);

/// The device name in a backend's describe() JSON ("" when it has none); no JSON library in sim/.
std::string device_name_of(const std::string& describe) {
  const std::string key = "\"device_name\":\"";
  const auto at = describe.find(key);
  if (at == std::string::npos) return "";
  const auto begin = at + key.size();
  const auto end = describe.find('"', begin);
  return end == std::string::npos ? "" : describe.substr(begin, end - begin);
}

std::unique_ptr<Backend> open_auto(const std::string& config_json, const BackendNote& note) {
  const BackendNote say = note ? note : [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  try {
    auto gpu = open_plugin(auto_gpu_plugin, config_json);
    const std::string device = device_name_of(gpu->describe());
    say(fmt::format("backend auto: using CUDA device {} ({})", device.empty() ? "(unnamed)" : device,
                    gpu->name()));
    return gpu;
  } catch (const PluginUnavailable& e) {
    say(fmt::format("backend auto: CUDA unavailable, using the CPU plugin '{}': {}", auto_cpu_plugin,
                    e.what()));
  }
  return open_plugin(auto_cpu_plugin, config_json);
}

}  // namespace

const char* status_name(int status) {
  switch (status) {
    case HERDSIM_OK:
      return "ok";
    case HERDSIM_ERR_INVALID_ARGUMENT:
      return "invalid argument";
    case HERDSIM_ERR_MODEL:
      return "model error";
    case HERDSIM_ERR_GRAMMAR:
      return "grammar error";
    case HERDSIM_ERR_CONTEXT:
      return "context full";
    case HERDSIM_ERR_OUT_OF_MEMORY:
      return "out of memory";
    case HERDSIM_ERR_DEVICE:
      return "device unavailable";
    case HERDSIM_ERR_TRANSPORT:
      return "transport error";
    case HERDSIM_ERR_INTERNAL:
      return "internal error";
    default:
      return "unknown status";
  }
}

std::vector<std::string> plugin_candidates(const std::string& name) {
  if (name.find('/') != std::string::npos) return {name};
  const std::string file = fmt::format("libherdsim_backend_{}.so", name);
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("HERDSIM_PLUGIN_PATH"); env != nullptr) {
    std::string_view rest = env;
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      if (colon != 0) dirs.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  const std::string exe = executable_dir();
  if (!exe.empty()) {
    dirs.push_back(exe);
    dirs.push_back(exe + "/../lib/herdsim");
  }
  if (std::string(HERDSIM_PLUGIN_DIR).size() > 0) dirs.emplace_back(HERDSIM_PLUGIN_DIR);
  std::vector<std::string> out;
  for (const auto& d : dirs) out.push_back(d + "/" + file);
  return out;
}

std::unique_ptr<Backend> load_plugin(const std::string& name_or_path, const std::string& config_json,
                                     const BackendNote& note) {
  if (name_or_path == "auto") return open_auto(config_json, note);
  return open_plugin(name_or_path, config_json);
}

namespace {

std::unique_ptr<Backend> open_plugin(const std::string& name_or_path, const std::string& config_json) {
  std::string path;
  const auto candidates = plugin_candidates(name_or_path);
  for (const auto& c : candidates) {
    std::error_code ec;
    if (std::filesystem::exists(c, ec)) {
      path = c;
      break;
    }
  }
  if (path.empty()) {
    std::string where;
    for (const auto& c : candidates) where += "\n  " + c;
    throw PluginUnavailable(
        fmt::format("inference plugin '{}' not found; looked for:{}", name_or_path, where));
  }
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    const std::string why = err != nullptr ? err : "dlopen failed";
    // A CUDA plugin links libcuda.so.1, which only the NVIDIA driver installs.
    const std::string hint = why.find("libcuda.so") != std::string::npos
                                 ? " (the NVIDIA driver is not installed on this machine: no libcuda.so.1)"
                                 : "";
    throw PluginUnavailable(fmt::format("cannot load inference plugin {}: {}{}", path, why, hint));
  }
  auto* entry =
      reinterpret_cast<herdsim_inference_plugin_entry_fn>(dlsym(lib, "herdsim_inference_plugin_entry"));
  if (entry == nullptr) {
    dlclose(lib);
    throw BackendError(
        fmt::format("{} is not a herdsim inference plugin (no herdsim_inference_plugin_entry)", path));
  }
  const herdsim_inference_plugin* table = entry(HERDSIM_INFERENCE_ABI_VERSION);
  if (table == nullptr || table->abi_version != HERDSIM_INFERENCE_ABI_VERSION) {
    const unsigned got = table != nullptr ? table->abi_version : 0U;
    dlclose(lib);
    throw BackendError(
        fmt::format("inference plugin {} has ABI version {}, this herdsim needs version {}; rebuild the "
                    "plugin against this "
                    "herdsim's sim/inference/herdsim_inference.h",
                    path, got, HERDSIM_INFERENCE_ABI_VERSION));
  }
  void* engine = nullptr;
  std::array<char, kErrorBuffer> err{};
  const int32_t status = table->create(config_json.c_str(), &engine, err.data(), err.size());
  if (status != HERDSIM_OK || engine == nullptr) {
    const std::string msg = fmt::format("{} ({}): cannot create the engine ({}): {}", table->name, path,
                                        status_name(status), err.data());
    if (status == HERDSIM_ERR_DEVICE) throw PluginUnavailable(msg);
    throw BackendError(msg);
  }
  return std::make_unique<PluginBackend>(lib, table, engine, path);
}

}  // namespace

}  // namespace herdsim::inference
