#include "tools/cli/compare_command.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "io/compare.hpp"
#include "io/output_file.hpp"
#include "io/run_file.hpp"
#include "sim/error.hpp"

#ifndef HERDSIM_VERSION
#define HERDSIM_VERSION "unknown"
#endif

namespace herdsim::cli {

namespace {

struct CompareFlags {
  std::vector<std::string> files;
  std::string format = "markdown";
  std::string output;
  bool sidecar = true;
  bool quiet = false;
  io::CompareOptions options;
  double memory_mib = 2048;
  std::string lsv_trade = "proportion";
};

int run_compare(const CompareFlags& f) {
  try {
    io::CompareOptions opt = f.options;
    opt.memory_budget = static_cast<std::size_t>(f.memory_mib * 1024.0 * 1024.0);
    opt.lsv_trade = f.lsv_trade == "shares" ? analysis::LsvTrade::shares : analysis::LsvTrade::proportion;
    const bool show = !f.quiet && isatty(STDERR_FILENO) != 0;
    // Every output is checked (and -o claimed) before any analysis: a bad path fails now, not after it.
    const bool to_stdout = f.output.empty() || f.output == "-";
    std::unique_ptr<io::OutputFile> out;
    if (!to_stdout)
      out = std::make_unique<io::OutputFile>(f.output, io::OutputFile::OnFailure::remove, "-o", f.files);
    if (f.sidecar) {
      for (const auto& file : f.files) {
        io::check_output_path(io::analysis_sidecar_path(file), "side file (--no-sidecar skips it)", {file});
      }
    }
    std::vector<io::Comparison> all;
    for (const auto& file : f.files) {
      all.push_back(io::compare_run(file, opt, HERDSIM_VERSION, [&](const std::string& what) {
        if (show)
          std::cerr << fmt::format("\rherdsim compare: {}: analysing {}\x1b[K", file, what) << std::flush;
      }));
      if (show) std::cerr << "\r\x1b[K" << std::flush;
      if (f.sidecar) {
        io::write_output_text(io::analysis_sidecar_path(file), io::comparison_json(all.back()),
                              "side file (--no-sidecar skips it)", {file});
      }
    }
    std::string text;
    if (all.size() == 1)
      text = f.format == "json" ? io::comparison_json(all.front()) : io::comparison_markdown(all.front());
    else
      text = f.format == "json" ? io::comparisons_json(all) : io::comparisons_markdown(all);
    if (to_stdout) {
      std::cout << text;
    } else {
      out->write(text.data(), text.size());
      out->commit();
      if (!f.quiet) std::cerr << fmt::format("herdsim compare: wrote {}\n", f.output);
    }
    return 0;
  } catch (const Error& e) {
    std::cerr << "herdsim compare: error: " << e.what() << '\n';
    return 2;
  }
}

}  // namespace

void add_compare_command(CLI::App& app) {
  auto flags = std::make_shared<CompareFlags>();
  CLI::App* cmd = app.add_subcommand(
      "compare",
      "compare every population of a run file with theory: decision error, CE gap, h, w(t), LSV, "
      "CSSD/CSAD, investor metrics (docs/analysis.md)");
  cmd->add_option(
         "RUN", flags->files,
         "run file written by herdsim run (HDF5); several: side by side (e.g. base vs fine-tuned model)")
      ->required();
  cmd->add_option("--format", flags->format, "markdown (default) or json")
      ->check(CLI::IsMember({"markdown", "json"}));
  cmd->add_option("-o,--output", flags->output, "write here instead of standard output");
  cmd->add_flag("!--no-sidecar", flags->sidecar, "do not write RUN.analysis.json next to the run file");
  cmd->add_flag("-q,--quiet", flags->quiet, "no progress or messages on standard error");
  cmd->add_option("--lsv-min-traders", flags->options.lsv_min_traders,
                  "LSV: minimum traders per market-period")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option(
         "--lsv-trade", flags->lsv_trade,
         "LSV buyer: 'proportion' (raises its proportion of wealth in the stock; default) or 'shares' "
         "(holds more shares)")
      ->check(CLI::IsMember({"proportion", "shares"}));
  cmd->add_option("--cssd-quantile", flags->options.cssd_quantile,
                  "Christie–Huang tail fraction q, 0 < q < 0.5")
      ->check(CLI::Range(1e-6, 0.499999));
  cmd->add_option("--newey-west-lag", flags->options.newey_west_lag,
                  "Newey–West lag (-1: floor(4 (n/100)^(2/9)); 0: classical standard errors)")
      ->check(CLI::Range(-1, 1000000));
  cmd->add_option("--significance", flags->options.significance, "level of the two-sided tests")
      ->check(CLI::Range(1e-9, 0.5));
  cmd->add_option("--confidence", flags->options.confidence,
                  "level of the CE gap interval and of the by-type and paired intervals")
      ->check(CLI::Range(0.5, 0.999999));
  cmd->add_option("--per-agent-limit", flags->options.per_agent_limit,
                  "per-agent arrays in the JSON: at most this many agents")
      ->check(CLI::Range(0, 100000000));
  cmd->add_option("--by", flags->options.by,
                  "tabulate every per-agent measure by these per-agent parameters (investor types), with a "
                  "trend test: lottery_prob, score, alpha, theta, wealth0 or any recorded parameter")
      ->delimiter(',');
  cmd->add_option(
         "--at", flags->options.at_years,
         "times in years (within the run's horizon): each agent's opinion w at the recorded decision "
         "step nearest each becomes a per-agent measure of the --by and paired tables "
         "(w_simulated_at_t=T, w_theory_at_t=T)")
      ->delimiter(',');
  cmd->add_flag("--counterfactual,!--no-counterfactual", flags->options.counterfactual,
                "herd populations: LSV and CSSD/CSAD also for the same investors with theta = 0 on the same "
                "paths (from theory), and the difference, the part attributable to herding (the default; "
                "--no-counterfactual skips it)");
  cmd->add_option("--memory-mib", flags->memory_mib,
                  "memory for per-(agent, path) state; more agents are cut")
      ->check(CLI::Range(1.0, 1e7));
  cmd->callback([flags] {
    const int code = run_compare(*flags);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace herdsim::cli
