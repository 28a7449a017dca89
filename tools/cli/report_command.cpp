#include "tools/cli/report_command.hpp"

#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "io/output_file.hpp"
#include "io/run_file.hpp"
#include "sim/error.hpp"

extern char** environ;  // POSIX: the environment, passed on to the child processes unchanged

// Set by tools/CMakeLists.txt to the script in the source tree.
#ifndef HERDSIM_REPORT_SCRIPT
#define HERDSIM_REPORT_SCRIPT ""
#endif

namespace herdsim::cli {

namespace {

namespace fs = std::filesystem;

constexpr int kExitBadInput = 2;
constexpr int kExitMissingPython = 3;  // the script's own code for a missing Python package

struct ReportFlags {
  std::vector<std::string> run_files;  ///< one, or several for one report across files
  std::string output_dir;
  std::string python;
  bool sidecar = true;
};

/// How a child process ended: spawn_error is the errno of a failed launch (0 when it ran).
struct ChildResult {
  int spawn_error = 0;
  int exit_code = 0;
  int signal = 0;  ///< the signal that ended it, 0 for a normal exit
};

/// Runs args[0] with args (PATH searched when args[0] has no '/') and waits for it. No shell, so
/// file names need no quoting; stdout and stderr are inherited, so the child's messages reach the user.
ChildResult run_child(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);  // keep our lines before the child's in a shared pipe
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  if (rc != 0) return {rc, 127, 0};
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return {errno, 1, 0};
  }
  if (WIFSIGNALED(status)) return {0, 128 + WTERMSIG(status), WTERMSIG(status)};
  return {0, WEXITSTATUS(status), 0};
}

/// The command as one line, for messages.
std::string join_command(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += (out.empty() ? "" : " ") + a;
  return out;
}

/// This executable, to run `herdsim compare` with the very same build.
std::string self_executable(const std::string& argv0) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? argv0 : exe.string();
}

/// --python, else $HERDSIM_PYTHON, else Debian's interpreter (the one with python3-h5py & co.),
/// else python3 on PATH.
std::string find_python(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("HERDSIM_PYTHON"); env != nullptr && *env != '\0') return env;
  if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
  return "python3";
}

/// $HERDSIM_REPORT_SCRIPT, else the script of the source tree this executable was built from.
std::string find_script() {
  if (const char* env = std::getenv("HERDSIM_REPORT_SCRIPT"); env != nullptr && *env != '\0') return env;
  return HERDSIM_REPORT_SCRIPT;
}

int fail(const std::string& message, int code) {
  std::cerr << "herdsim report: error: " << message << '\n';
  return code;
}

int run_report(const ReportFlags& f, const std::string& argv0) {
  std::error_code ec;
  for (const auto& run_file : f.run_files) {
    if (!fs::is_regular_file(run_file, ec)) {
      const bool partial = fs::exists(run_file + ".partial", ec);
      return fail(fmt::format("run file '{}' does not exist{}", run_file,
                              partial ? " (a .partial file is there: that run did not finish)" : ""),
                  kExitBadInput);
    }
  }
  const std::string& first = f.run_files.front();
  // Several files: FIRST_and_N_more_report, so that reports of different sets do not collide by default.
  const std::string default_dir =
      fs::path(first).stem().string() +
      (f.run_files.size() > 1 ? fmt::format("_and_{}_more", f.run_files.size() - 1) : "") + "_report";
  const std::string dir_name = f.output_dir.empty() ? default_dir : f.output_dir;
  // Staged in DIR.partial and moved in when everything is drawn (io::OutputDirectory): a failed report
  // leaves neither an empty folder nor a mix of old and new figures; a concurrent one is refused.
  std::unique_ptr<io::OutputDirectory> out;
  try {
    out = std::make_unique<io::OutputDirectory>(dir_name, "-o");
    if (f.sidecar) {
      for (const auto& run_file : f.run_files) {
        io::check_output_path(io::analysis_sidecar_path(run_file), "side file (--no-sidecar skips it)",
                              f.run_files);
      }
    }
  } catch (const InputError& e) {
    return fail(e.what(), kExitBadInput);
  } catch (const Error& e) {
    return fail(e.what(), 1);
  }
  const fs::path& dir = out->staging();
  const std::string script = find_script();
  if (script.empty() || !fs::is_regular_file(script, ec)) {
    return fail(fmt::format("cannot find the report script '{}'; set HERDSIM_REPORT_SCRIPT to the path of "
                            "tools/report/herdsim_report.py",
                            script),
                kExitBadInput);
  }

  // 1. The analysis, by this same executable, so the report always matches the build.
  const std::string analysis = (dir / "analysis.json").string();
  // Several files: one analysis set with the tables across files (docs/analysis.md).
  std::vector<std::string> compare = {self_executable(argv0), "compare"};
  compare.insert(compare.end(), f.run_files.begin(), f.run_files.end());
  compare.insert(compare.end(), {"--format", "json", "-o", analysis});
  if (!f.sidecar) compare.emplace_back("--no-sidecar");
  const ChildResult analysed = run_child(compare);
  if (analysed.spawn_error != 0) {
    return fail(
        fmt::format("cannot run '{}': {}", join_command(compare), std::strerror(analysed.spawn_error)), 1);
  }
  if (analysed.exit_code != 0) {
    return fail(fmt::format("the analysis failed ({} exited with code {}); no report was written",
                            join_command(compare), analysed.exit_code),
                analysed.exit_code);
  }

  // 2. The figures and index.html.
  const std::string python = find_python(f.python);
  std::vector<std::string> draw = {python, script};
  draw.insert(draw.end(), f.run_files.begin(), f.run_files.end());
  draw.insert(draw.end(),
              {"-o", dir.string(), "--analysis", analysis, "--publish-dir", out->path().string()});
  const ChildResult drawn = run_child(draw);
  if (drawn.spawn_error != 0) {
    return fail(fmt::format("cannot run the Python interpreter '{}': {}; install Debian's python3 with "
                            "python3-h5py, python3-numpy and python3-matplotlib, or pass --python PATH",
                            python, std::strerror(drawn.spawn_error)),
                kExitMissingPython);
  }
  if (drawn.signal != 0) {
    return fail(
        fmt::format("the report script was killed by signal {} ({})", drawn.signal, join_command(draw)),
        drawn.exit_code);
  }
  // The script has already printed its message (exit 3: the missing packages; 2: bad input).
  if (drawn.exit_code != 0) return drawn.exit_code;
  try {
    out->commit({"index.html"});
  } catch (const Error& e) {
    return fail(e.what(), 1);
  }
  return 0;
}

}  // namespace

void add_report_command(CLI::App& app, const char* argv0) {
  auto flags = std::make_shared<ReportFlags>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Analyse one or several run files (herdsim compare) and write PNG figures and an index.html");
  cmd->add_option(
         "RUN", flags->run_files,
         "run file(s) written by herdsim run (HDF5); several get one section each and figures across "
         "the files")
      ->required();
  cmd->add_option("-o,--output", flags->output_dir,
                  "output directory, created if needed (default: the first run file's name with _report, or "
                  "with _and_N_more_report for several files, here)");
  cmd->add_flag("!--no-sidecar", flags->sidecar,
                "do not write RUN.analysis.json next to each run file (e.g. a read-only run folder)");
  cmd->add_option("--python", flags->python,
                  "Python interpreter with h5py, numpy and matplotlib (default: $HERDSIM_PYTHON, else "
                  "/usr/bin/python3, else python3 on PATH)");
  cmd->footer(
      "Writes DIR/analysis.json (herdsim compare --format json; a set for several files), DIR/*.png and "
      "DIR/index.html.\n"
      "Exit codes: 0 done, 2 bad input, 3 Python or one of its packages missing.\n"
      "The script is tools/report/herdsim_report.py (override with $HERDSIM_REPORT_SCRIPT).");
  const std::string self = argv0 != nullptr ? argv0 : "herdsim";
  cmd->callback([flags, self]() {
    const int code = run_report(*flags, self);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace herdsim::cli
