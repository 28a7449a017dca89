#pragma once
// llama.cpp's log and one-time initialisation: llama.cpp and ggml are silent unless HERDSIM_LLAMA_LOG
// is set; their error lines are kept so that a failure message can quote what llama.cpp said.
#include <string>

namespace herdsim::llama {

/// Initialises llama.cpp once per process: log callback, batch-invariance settings, backends.
void init_llama_once();

/// The error lines llama.cpp logged since the last call, on one line ("" when none).
std::string take_log_errors();

/// " (llama.cpp: ...)" with what llama.cpp logged since the last take_log_errors(), or a hint where to
/// look.
std::string llama_said();

}  // namespace herdsim::llama
