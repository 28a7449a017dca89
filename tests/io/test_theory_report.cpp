#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/theory_report.hpp"

using herdsim::io::TheoryReport;

namespace {
TheoryReport sample() {
  TheoryReport r;
  r.settings = {{"problem", "absolute"}};
  r.scalars = {{"eta", 9.99124e-6}, {"zeta", std::numeric_limits<double>::infinity()}};
  r.vectors = {{"alpha", {0.1, 0.2}}};
  r.columns = {"t", "amount"};
  r.rows = {{0.0, 1.0 / 3.0}, {1.0, 2.5}};
  return r;
}
}  // namespace

TEST_SUITE("io.theory_report") {
  TEST_CASE("csv has a header and round-trips doubles exactly") {
    std::ostringstream out;
    herdsim::io::write_csv(out, sample());
    std::istringstream in(out.str());
    std::string line;
    std::getline(in, line);
    CHECK(line == "t,amount");
    std::getline(in, line);
    const double back = std::strtod(line.substr(line.find(',') + 1).c_str(), nullptr);
    CHECK(back == 1.0 / 3.0);
  }

  TEST_CASE("json is one object with scalars, vectors and column arrays; non-finite becomes null") {
    std::ostringstream out;
    herdsim::io::write_json(out, sample());
    const auto doc = nlohmann::json::parse(out.str());
    CHECK(doc["problem"] == "absolute");
    CHECK(doc["eta"].get<double>() == 9.99124e-6);
    CHECK(doc["zeta"].is_null());
    CHECK(doc["alpha"].size() == 2);
    CHECK(doc["amount"][1].get<double>() == 2.5);
    CHECK(doc["t"].size() == 2);
  }

  TEST_CASE("table shows settings, scalars and column headers") {
    std::ostringstream out;
    herdsim::io::write_table(out, sample());
    CHECK(out.str().find("problem") != std::string::npos);
    CHECK(out.str().find("eta") != std::string::npos);
    CHECK(out.str().find("amount") != std::string::npos);
  }
}
