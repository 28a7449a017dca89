#pragma once
// The one wall-clock timestamp of the outputs (run files' `created`, compare's `created`).
#include <string>

namespace herdsim::io {

/// Now, in UTC, as ISO 8601 to the second: "2026-12-31T23:59:59Z".
[[nodiscard]] std::string utc_now_iso8601();

}  // namespace herdsim::io
