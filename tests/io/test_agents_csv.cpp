#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "io/agents_csv.hpp"
#include "sim/error.hpp"

namespace {
std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = std::string(HERDSIM_TEST_TMP) + "/" + name;
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST_SUITE("io.agents_csv") {
  TEST_CASE("reads alpha, x0 and a sparse theta matrix") {
    const auto path = write_temp("agents_ok.csv",
                                 "# a leader and two followers\n"
                                 "alpha,x0,theta_0,theta_1,theta_2\n"
                                 "0.2,10,0,0,0\n"
                                 "0.5,12,1e-8,0,2e-8\n"
                                 "\n"
                                 "0.7,8,1e-7,0,0\n");
    const auto game = herdsim::io::read_agents_csv(path);
    REQUIRE(game.alpha.size() == 3);
    CHECK(game.alpha[1] == 0.5);
    CHECK(game.x0[2] == 8.0);
    CHECK(game.theta.nonZeros() == 3);
    CHECK(game.theta.coeff(1, 2) == 2e-8);
    CHECK(game.theta.coeff(0, 1) == 0.0);
  }

  TEST_CASE("lottery probabilities and dependence scores are mapped") {
    const auto path =
        write_temp("agents_map.csv", "lottery_prob,x0,score_0,score_1\n0.9,10,0,10\n0.4,10,5,0\n");
    const auto game = herdsim::io::read_agents_csv(path);
    CHECK(game.alpha[0] == doctest::Approx(0.76611910840262).epsilon(1e-12));
    CHECK(game.theta.coeff(0, 1) == doctest::Approx(1e-7));
    CHECK(game.theta.coeff(1, 0) == doctest::Approx(5e-8));
  }

  TEST_CASE("every problem is reported at once with its line number") {
    const auto path =
        write_temp("agents_bad.csv", "alpha,x0,theta_0,theta_1\n-1,10,0,x\n0.3,0,1e-8,0\n0.3,1,2\n");
    // Three agent rows but two theta columns: a header problem is reported first.
    CHECK_THROWS_WITH_AS((void)herdsim::io::read_agents_csv(path), doctest::Contains("theta columns"),
                         herdsim::InputError);
    const auto path2 = write_temp("agents_bad2.csv", "alpha,x0,theta_0,theta_1\n-1,10,0,x\n0.3,0,1e-8,0\n");
    try {
      (void)herdsim::io::read_agents_csv(path2);
      FAIL("expected InputError");
    } catch (const herdsim::InputError& e) {
      const std::string msg = e.what();
      CHECK(msg.find("line 2: alpha must be > 0") != std::string::npos);
      CHECK(msg.find("line 2: theta_1") != std::string::npos);
      CHECK(msg.find("line 3: x0") != std::string::npos);
    }
  }

  TEST_CASE("a non-zero weight on oneself is rejected") {
    const auto path = write_temp("agents_diag.csv", "alpha,x0,theta_0,theta_1\n0.3,10,1e-8,0\n0.4,10,0,0\n");
    CHECK_THROWS_WITH_AS((void)herdsim::io::read_agents_csv(path), doctest::Contains("itself"),
                         herdsim::InputError);
  }

  TEST_CASE("a missing file is an IoError") {
    CHECK_THROWS_AS((void)herdsim::io::read_agents_csv("/nonexistent/agents.csv"), herdsim::IoError);
  }
}
