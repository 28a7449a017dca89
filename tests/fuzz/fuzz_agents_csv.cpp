// Fuzz harness: the mutual game's agents file (io/agents_csv.hpp, `herdsim theory --problem mutual
// --agents`).
//
// Input: the CSV text, read with both lottery conventions. It must give a game that theory::validate accepts
// (what the solver relies on) or an InputError naming the file; anything else is a finding.
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "io/agents_csv.hpp"
#include "sim/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto& lottery : {herdsim::theory::lottery_win10_sure3, herdsim::theory::lottery_win20_sure6}) {
    try {
      const herdsim::theory::MutualGame game = herdsim::io::parse_agents_csv(text, "fuzz.csv", lottery);
      const auto n = game.agents();
      FUZZ_CHECK(n >= 1, "a game without agents");
      FUZZ_CHECK(game.x0.size() == n && game.theta.rows() == n && game.theta.cols() == n, "shapes");
      try {
        herdsim::theory::validate(game);
      } catch (const herdsim::InputError& e) {
        FUZZ_CHECK(false, std::string("the reader accepted a game the solver refuses: ") + e.what());
      }
    } catch (const herdsim::InputError& e) {
      const std::string message = e.what();
      FUZZ_CHECK(message.rfind("fuzz.csv: ", 0) == 0, message);
    }
  }
  return 0;
}
