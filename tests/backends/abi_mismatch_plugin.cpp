// A plugin built for another ABI version (999): the loader must refuse it with a message naming both
// versions, before calling anything in its table (test_llama_backend.cpp, "bad input").
#include "herdsim_inference.h"

namespace {

const herdsim_inference_plugin table = {999U, "abi-999", nullptr, nullptr, nullptr, nullptr, nullptr};

}  // namespace

extern "C" const herdsim_inference_plugin* herdsim_inference_plugin_entry(uint32_t /*host_abi_version*/) {
  return &table;
}
