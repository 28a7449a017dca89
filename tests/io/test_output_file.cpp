// io::OutputFile and io::OutputDirectory: the rules every writing command follows (docs/output-files.md).
#include "io/output_file.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "sim/error.hpp"

namespace fs = std::filesystem;
using herdsim::InputError;
using herdsim::io::OutputDirectory;
using herdsim::io::OutputFile;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(HERDSIM_TEST_TMP) / "output_file" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

/// The InputError message of `f()`, or "" when it does not throw one.
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("io/output_file") {
  TEST_CASE("commit renames PATH.partial onto PATH; until then PATH is untouched") {
    const fs::path dir = fresh_dir("commit");
    const fs::path path = dir / "out.txt";
    write_text(path, "old");
    OutputFile out(path.string());
    CHECK(out.partial_path() == path.string() + ".partial");
    out.write("new text", 8);
    CHECK(read_text(path) == "old");
    out.commit();
    CHECK(read_text(path) == "new text");
    CHECK(out.bytes_written() == 8);
    CHECK_FALSE(fs::exists(out.partial_path()));
  }

  TEST_CASE("without commit the partial is removed or kept, as asked") {
    const fs::path dir = fresh_dir("failure");
    { OutputFile out((dir / "a").string(), OutputFile::OnFailure::remove); }
    CHECK_FALSE(fs::exists(dir / "a.partial"));
    { OutputFile out((dir / "b").string(), OutputFile::OnFailure::keep); }
    CHECK(fs::exists(dir / "b.partial"));
    CHECK_FALSE(fs::exists(dir / "b"));
  }

  TEST_CASE("a second writer of the same output is refused before it touches the first one's file") {
    const fs::path dir = fresh_dir("second");
    const fs::path path = dir / "run.h5";
    OutputFile first(path.string());
    first.write("first", 5);
    const std::string message = input_error([&] { OutputFile second(path.string()); });
    CHECK(message.find("being written by another process") != std::string::npos);
    CHECK(message.find(path.string()) != std::string::npos);
    CHECK(read_text(first.partial_path()) == "first");
    first.commit();
    CHECK(read_text(path) == "first");
    OutputFile third(path.string());  // free again once committed
    CHECK(read_text(third.partial_path()).empty());
  }

  TEST_CASE("a stale partial of a killed run is taken over and emptied") {
    const fs::path dir = fresh_dir("stale");
    write_text(dir / "x.partial", "garbage from a killed run");
    OutputFile out((dir / "x").string());
    CHECK(fs::file_size(out.partial_path()) == 0);
  }

  TEST_CASE("special files, missing folders and inputs are refused up front and left untouched") {
    const fs::path dir = fresh_dir("special");
    CHECK(input_error([&] { OutputFile out(dir.string()); }).find("is a directory") != std::string::npos);
    const fs::path fifo = dir / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK(input_error([&] { OutputFile out(fifo.string()); }).find("is a FIFO") != std::string::npos);
    CHECK(fs::is_fifo(fifo));
    CHECK(input_error([&] { OutputFile out("/dev/null"); }).find("character device") != std::string::npos);
    CHECK(fs::is_character_file("/dev/null"));
    CHECK(input_error([&] { OutputFile out((dir / "none" / "x").string()); }).find("does not exist") !=
          std::string::npos);
    write_text(dir / "file", "x");
    CHECK(input_error([&] { OutputFile out((dir / "file" / "x").string()); }).find("is not a folder") !=
          std::string::npos);
    write_text(dir / "input.h5", "data");
    const std::string message = input_error([&] {
      OutputFile out((dir / "input.h5").string(), OutputFile::OnFailure::remove, "-o",
                     {(dir / "input.h5").string()});
    });
    CHECK(message.find("would be overwritten") != std::string::npos);
    CHECK(read_text(dir / "input.h5") == "data");
    CHECK_FALSE(fs::exists(dir / "input.h5.partial"));
    CHECK(input_error([&] { OutputFile out(""); }).find("empty") != std::string::npos);
  }

  TEST_CASE("a symlink means its target, which the commit replaces; the link stays") {
    const fs::path dir = fresh_dir("symlink");
    fs::create_directories(dir / "store");
    fs::create_symlink("store/data.txt", dir / "link.txt");  // relative and dangling
    {
      OutputFile out((dir / "link.txt").string());
      CHECK(out.path() == (dir / "store" / "data.txt").string());
      out.write("one", 3);
      out.commit();
    }
    CHECK(fs::is_symlink(dir / "link.txt"));
    CHECK(read_text(dir / "link.txt") == "one");
    herdsim::io::write_output_text((dir / "link.txt").string(), "two");
    CHECK(fs::is_symlink(dir / "link.txt"));
    CHECK(read_text(dir / "store" / "data.txt") == "two");
    fs::create_symlink(dir / "loop_b", dir / "loop_a");
    fs::create_symlink(dir / "loop_a", dir / "loop_b");
    CHECK(input_error([&] { OutputFile out((dir / "loop_a").string()); }).find("loop") != std::string::npos);
    fs::create_symlink(dir / "store", dir / "to_folder");
    CHECK(input_error([&] { OutputFile out((dir / "to_folder").string()); }).find("is a directory") !=
          std::string::npos);
  }

  TEST_CASE("an output folder is staged and published whole, the files in `last` after the others") {
    const fs::path dir = fresh_dir("folder");
    const fs::path out_dir = dir / "report";
    {
      OutputDirectory out(out_dir.string());
      CHECK_FALSE(fs::exists(out_dir));  // created at the commit only
      CHECK(out.staging() == fs::path(out_dir.string() + ".partial"));
      write_text(out.staging() / "a.png", "a");
      write_text(out.staging() / "index.html", "index 1");
      out.commit({"index.html"});
    }
    CHECK(read_text(out_dir / "index.html") == "index 1");
    CHECK(read_text(out_dir / "a.png") == "a");
    CHECK_FALSE(fs::exists(out_dir.string() + ".partial"));
    // Again into the same folder: files replaced, others left alone.
    write_text(out_dir / "notes.txt", "mine");
    {
      OutputDirectory out((out_dir.string() + "/"));
      write_text(out.staging() / "a.png", "a2");
      write_text(out.staging() / "index.html", "index 2");
      out.commit({"index.html"});
    }
    CHECK(read_text(out_dir / "a.png") == "a2");
    CHECK(read_text(out_dir / "index.html") == "index 2");
    CHECK(read_text(out_dir / "notes.txt") == "mine");
  }

  TEST_CASE("a failed folder output leaves nothing; a concurrent one is refused") {
    const fs::path dir = fresh_dir("folder_failure");
    const fs::path out_dir = dir / "ds";
    {
      OutputDirectory out(out_dir.string());
      write_text(out.staging() / "train.jsonl", "half");
      const std::string message = input_error([&] { OutputDirectory second(out_dir.string()); });
      CHECK(message.find("being written by another process") != std::string::npos);
      CHECK(read_text(out.staging() / "train.jsonl") == "half");
    }
    CHECK_FALSE(fs::exists(out_dir));
    CHECK_FALSE(fs::exists(out_dir.string() + ".partial"));
    // A stale staging folder (a killed command) is taken over and emptied.
    fs::create_directories(out_dir.string() + ".partial");
    write_text(fs::path(out_dir.string() + ".partial") / "old.png", "stale");
    OutputDirectory out(out_dir.string());
    CHECK_FALSE(fs::exists(out.staging() / "old.png"));
    write_text(dir / "plain", "x");
    CHECK(input_error([&] { OutputDirectory bad((dir / "plain").string()); }).find("not a folder") !=
          std::string::npos);
  }
}
