"""What the end-to-end tests of the herdsim executable share (test_run.py, test_compare.py,
test_reliability.py, test_extreme_input.py, test_newcomer.py, test_assets.py,
test_research_question.py, test_reference_answerers.py, test_evaluate.py, test_decision_cache.py): the
executable and scenario folder ctest passes them (tests/CMakeLists.txt), `herdsim` run as a subprocess, and
scenarios written into a temporary folder.

A test module ends with ``support.main()`` and reads ``support.HERDSIM`` and ``support.SCENARIOS`` at run
time (they are set once the command line has been read). A script whose arguments come in another order
(test_evaluate.py, test_decision_cache.py) sets ``support.HERDSIM`` itself from its own command line.
"""
import os
import subprocess
import sys
import tempfile
import unittest

HERDSIM = None    # absolute path of the herdsim executable: the first argument
SCENARIOS = None  # the scenario library (scenarios/): the second argument, where the test takes one


def herdsim(*args, timeout=600, cwd=None, env=None):
    """`herdsim ARGS` to completion (in `cwd` and with the environment `env` when given): its CompletedProcess,
    stdout and stderr as text (bytes that are not UTF-8 replaced, so that a garbled message fails an
    assertion instead of the decoding)."""
    return subprocess.run([HERDSIM, *args], capture_output=True, text=True, errors="replace", timeout=timeout,
                          cwd=cwd, env=env)


def expect(code, *args, timeout=600, env=None):
    """`herdsim ARGS` as `herdsim` runs it, asserted to exit with `code`: a mismatch fails with the arguments,
    the exit status, stdout and stderr, so that the failure says what herdsim said."""
    p = herdsim(*args, timeout=timeout, env=env)
    assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
    return p


def start(*args, env=None):
    """`herdsim ARGS` started in the background (with the environment `env` when given), stdout and stderr
    piped as text."""
    return subprocess.Popen([HERDSIM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def write_scenario(directory, name, text):
    """Writes `text` to directory/name and returns the path."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class TempDirTest(unittest.TestCase):
    """A fresh temporary folder for each test, removed after it: self.dir, self.path(name) and
    self.scenario(text, name)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def scenario(self, text, name="s.toml"):
        return write_scenario(self.dir, name, text)


def main(scenarios=False):
    """Reads PATH_TO_HERDSIM (and SCENARIO_DIR when `scenarios`) from the command line, then runs the
    calling module's tests."""
    global HERDSIM, SCENARIOS
    HERDSIM = os.path.abspath(sys.argv.pop(1))
    if scenarios:
        SCENARIOS = os.path.abspath(sys.argv.pop(1))
    unittest.main(module="__main__", verbosity=2)
