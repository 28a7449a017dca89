// The llama.cpp inference plugin: libherdsim_backend_llama.so (CPU) and, built with HERDSIM_LLAMA_CUDA=1,
// libherdsim_backend_llama_cuda.so (CUDA); the shared C shim (backends/shim) turns LlamaEngine into the
// ABI of herdsim_inference.h. docs/adding-a-backend.md and docs/investagents.md ("The llama.cpp
// backend") describe the behaviour.
#include <memory>

#include "build_flags.hpp"
#include "llama_config.hpp"
#include "llama_engine.hpp"
#include "llama_log.hpp"
#include "plugin_shim.hpp"

const herdsim::plugin::Definition& herdsim::plugin::plugin_definition() {
  static const Definition definition{
      llama::cuda_build ? "llama-cuda" : "llama-cpu", [](const char* config_json) -> std::unique_ptr<Engine> {
        llama::init_llama_once();
        return std::make_unique<llama::LlamaEngine>(llama::parse_config(config_json));
      }};
  return definition;
}
