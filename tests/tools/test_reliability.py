#!/usr/bin/env python3
"""End-to-end reliability of herdsim's outputs (docs/output-files.md, docs/hdf5-schema.md):
signals, killed runs, concurrent writers of one output, special files and symlinks, inputs that would be
overwritten, and the same rules for every command that writes (run, compare and its side file, export,
report, dataset).

Usage: test_reliability.py PATH_TO_HERDSIM SCENARIO_DIR
"""
import hashlib
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

HERDSIM = None
SCENARIOS = None

# 5 * 10^8 agent-steps recorded for 100 agents (summaries over all): seconds of work and little output,
# long enough to be signalled, killed or raced while it records.
LONG = """
[run]
seed = 3
paths = 8
horizon = 50
steps_per_year = 12

[record]
max_agents = 100

[[population]]
name = "advisor"
kind = "merton"
alpha = 0.2
wealth = 10.0

[[population]]
name = "noise"
kind = "noise"
count = 100000
proportion = { dist = "uniform", low = 0.0, high = 0.8 }
wealth = 10.0
"""

SHORT = LONG.replace("horizon = 50", "horizon = 2").replace("count = 100000", "count = 50")


def herdsim(*args, timeout=300):
    return subprocess.run([HERDSIM, *args], capture_output=True, text=True, timeout=timeout)


def start(*args):
    return subprocess.Popen([HERDSIM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_recording(partial, seconds, timeout=120.0):
    """Waits until the run has been recording for `seconds` (a live writer holds PATH.partial's lock, so
    HDF5 readers cannot open it until the run ends: its first flushed bytes say that it records)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(partial) and os.path.getsize(partial) > 0:
            time.sleep(seconds)
            return
        time.sleep(0.05)
    raise AssertionError(f"{partial} was not written in {timeout} s")


FLUSH_SECONDS = 2.0  # io::Hdf5Output::kFlushSeconds


def datasets(path):
    """{name: bytes digest} of every dataset in a run file."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = hashlib.sha256(np.ascontiguousarray(obj[()]).tobytes()).hexdigest()
        f.visititems(visit)
    return out


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.long = self.path("long.toml")
        self.short = self.path("short.toml")
        with open(self.long, "w") as f:
            f.write(LONG)
        with open(self.short, "w") as f:
            f.write(SHORT)

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def check_readable_incomplete(self, partial):
        """A .partial that h5py opens, marked complete = 0, with every series at the same recorded step."""
        with h5py.File(partial, "r") as f:
            self.assertEqual(int(f.attrs["complete"]), 0)
            steps = f["time/step"].shape[0]
            self.assertGreater(steps, 0)
            self.assertEqual(f["market/price"].shape[0], steps)
            self.assertEqual(f["populations/noise/wealth"].shape[0], steps)
            self.assertEqual(f["populations/noise/summary/wealth"].shape[0], steps)
            self.assertEqual(f["populations/noise/amount"].shape[0], f["time/decision_step"].shape[0])
            last = f["populations/noise/wealth"][steps - 1]
            self.assertTrue(np.all(np.isfinite(last)) and np.all(last > 0), "the last flushed row was written")
            return steps


class Signals(Base):
    def stop_with(self, sig):
        out = self.path("run.h5")
        p = start("run", self.long, "-o", out, "-q")
        wait_until_recording(out + ".partial", 1.0)
        t0 = time.monotonic()
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
        self.assertLess(time.monotonic() - t0, 5.0, "the run did not stop promptly")
        self.assertEqual(p.returncode, 128 + sig, err)
        self.assertIn("complete = 0", err)
        self.assertFalse(os.path.exists(out), "an interrupted run must not look complete")
        self.check_readable_incomplete(out + ".partial")

    def test_sigterm(self):
        self.stop_with(signal.SIGTERM)

    def test_sighup(self):
        self.stop_with(signal.SIGHUP)

    def test_sigint(self):
        self.stop_with(signal.SIGINT)

    def test_sigkill_leaves_a_readable_incomplete_file(self):
        out = self.path("run.h5")
        p = start("run", self.long, "-o", out, "-q")
        wait_until_recording(out + ".partial", FLUSH_SECONDS + 1.5)  # a periodic flush after some rows
        p.kill()
        p.communicate(timeout=30)
        self.assertFalse(os.path.exists(out))
        self.assertGreaterEqual(self.check_readable_incomplete(out + ".partial"), 2)
        self.assertNotEqual(p.returncode, 0)

    def test_a_stale_partial_is_taken_over(self):
        out = self.path("run.h5")
        with open(out + ".partial", "wb") as f:
            f.write(b"left by a killed run")
        res = herdsim("run", self.short, "-o", out, "-q")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertFalse(os.path.exists(out + ".partial"))
        with h5py.File(out, "r") as f:
            self.assertEqual(int(f.attrs["complete"]), 1)


class ConcurrentWriters(Base):
    def test_second_writer_fails_and_the_first_file_is_as_a_solo_run(self):
        solo = self.path("solo.h5")
        res = herdsim("run", self.long, "-o", solo, "-q", "--set", "run.horizon=10")
        self.assertEqual(res.returncode, 0, res.stderr)

        out = self.path("shared.h5")
        first = start("run", self.long, "-o", out, "-q", "--set", "run.horizon=10")
        wait_until_recording(out + ".partial", 0.2)
        self.assertIsNone(first.poll(), "the first run ended before the second started: make LONG longer")
        second = herdsim("run", self.long, "-o", out, "-q", "--set", "run.horizon=10")
        self.assertEqual(second.returncode, 2, second.stderr)
        self.assertIn("being written by another process", second.stderr)
        _, err = first.communicate(timeout=300)
        self.assertEqual(first.returncode, 0, err)
        self.assertEqual(datasets(out), datasets(solo))

    def test_every_writing_command_refuses_a_claimed_output(self):
        run = self.path("r.h5")
        self.assertEqual(herdsim("run", self.short, "-o", run, "-q").returncode, 0)
        # A live writer holds PATH.partial; another process's lock is what every command must respect.
        target = self.path("busy.out")
        holder = subprocess.Popen([sys.executable, "-c", (
            "import fcntl, sys, time\n"
            f"f = open({target + '.partial'!r}, 'w'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(holder.stdout.readline().strip(), "locked")
            for args in (["run", self.short, "-o", target, "-q"],
                         ["compare", run, "--no-sidecar", "-o", target],
                         ["export", run, "--population", "noise", "-o", target]):
                with self.subTest(command=args[0]):
                    res = herdsim(*args)
                    self.assertEqual(res.returncode, 2, res.stderr)
                    self.assertIn("being written by another process", res.stderr)
            self.assertEqual(os.path.getsize(target + ".partial"), 0)
        finally:
            holder.kill()
            holder.communicate()


class SpecialFiles(Base):
    def assert_refused(self, res, reason):
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn(reason, res.stderr)
        self.assertEqual(len(res.stderr.strip().splitlines()) <= 2, True, res.stderr)

    def test_run_refuses_directories_fifos_devices_up_front(self):
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        for target, reason in ((self.tmp.name, "is a directory"), (fifo, "is a FIFO"),
                               ("/dev/null", "is a character device")):
            with self.subTest(target=target):
                t0 = time.monotonic()
                self.assert_refused(herdsim("run", self.long, "-o", target, "-q"), reason)
                self.assertLess(time.monotonic() - t0, 5.0, "refused before the run, not after")
        self.assertTrue(stat.S_ISFIFO(os.stat(fifo).st_mode))
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null must stay a device")
        self.assertFalse(os.path.exists("/dev/null.partial"))

    def test_missing_folder_is_reported_before_the_run(self):
        t0 = time.monotonic()
        self.assert_refused(herdsim("run", self.long, "-o", self.path("no/such/dir/x.h5"), "-q"),
                            "does not exist")
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_unwritable_folder_is_reported_before_the_run(self):
        if os.geteuid() == 0:  # root writes anywhere but in sysfs
            target, reason = "/sys/herdsim_reliability_test.h5", "Permission denied"
        else:
            ro = self.path("ro")
            os.mkdir(ro, 0o555)
            target, reason = os.path.join(ro, "x.h5"), "cannot write"
        t0 = time.monotonic()
        self.assert_refused(herdsim("run", self.long, "-o", target, "-q"), reason)
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_a_symlink_means_its_target(self):
        target = self.path("data/target.h5")
        os.mkdir(self.path("data"))
        link = self.path("link.h5")
        os.symlink(target, link)  # dangling: the target is written
        res = herdsim("run", self.short, "-o", link, "-q")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(os.path.islink(link))
        self.assertTrue(os.path.isfile(target))
        self.assertFalse(os.path.exists(target + ".partial"))
        res = herdsim("run", self.short, "-o", link, "-q", "--set", "run.seed=4")  # and replaced
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(os.path.islink(link))
        with h5py.File(target, "r") as f:
            self.assertEqual(int(f.attrs["seed"]), 4)

    def test_symlink_loop_and_link_to_a_device(self):
        a, b = self.path("a"), self.path("b")
        os.symlink(b, a)
        os.symlink(a, b)
        self.assert_refused(herdsim("run", self.short, "-o", a, "-q"), "symlink")
        dev = self.path("dev")
        os.symlink("/dev/null", dev)
        self.assert_refused(herdsim("run", self.short, "-o", dev, "-q"), "character device")

    def test_compare_export_report_dataset_follow_the_same_rules(self):
        run = self.path("r.h5")
        self.assertEqual(herdsim("run", self.short, "-o", run, "-q").returncode, 0)
        with open(run, "rb") as f:
            before = f.read()
        cases = [
            (["compare", run, "-o", "/dev/null"], "character device"),
            (["compare", run, "-o", self.tmp.name], "is a directory"),
            (["compare", run, "--no-sidecar", "-o", run], "would be overwritten"),
            (["export", run, "--population", "noise", "-o", self.tmp.name], "is a directory"),
            (["export", run, "--population", "noise", "-o", run], "would be overwritten"),
            (["export", run, "--population", "noise", "-o", self.path("none/x.csv")], "does not exist"),
            (["report", run, "-o", run], "not a folder"),
            (["dataset", "-o", run], "not a folder"),
            (["dataset", "-o", self.path("none/sub")], "does not exist"),
        ]
        for args, reason in cases:
            with self.subTest(args=" ".join(args[:1] + args[2:])):
                self.assert_refused(herdsim(*args), reason)
        with open(run, "rb") as f:
            self.assertEqual(f.read(), before, "an input was changed")
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode))

    def test_a_failed_report_leaves_no_folder_and_a_failed_export_no_file(self):
        bad = self.path("bad.h5")
        with open(bad, "w") as f:
            f.write("not hdf5")
        out = self.path("rep")
        res = herdsim("report", bad, "-o", out)
        self.assertNotEqual(res.returncode, 0)
        self.assertFalse(os.path.exists(out), os.listdir(self.tmp.name))
        self.assertFalse(os.path.exists(out + ".partial"))
        res = herdsim("export", bad, "--population", "noise", "-o", self.path("x.csv"))
        self.assertEqual(res.returncode, 2)
        self.assertEqual([n for n in os.listdir(self.tmp.name) if n.startswith("x.csv")], [])

    def test_report_and_dataset_publish_whole_folders(self):
        run = self.path("r.h5")
        self.assertEqual(herdsim("run", self.short, "-o", run, "-q").returncode, 0)
        out = self.path("rep")
        res = herdsim("report", run, "-o", out, "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(os.path.join(out, "index.html"), res.stdout)
        self.assertTrue(os.path.isfile(os.path.join(out, "index.html")))
        self.assertFalse(os.path.exists(out + ".partial"))
        self.assertFalse(os.path.exists(run.replace(".h5", ".analysis.json")), "--no-sidecar")
        data = self.path("ds")
        res = herdsim("dataset", "-o", data, "--problem", "absolute", "--samples", "2")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(os.path.isfile(os.path.join(data, "dataset_card.json")))
        self.assertFalse(os.path.exists(data + ".partial"))


if __name__ == "__main__":
    HERDSIM = os.path.abspath(sys.argv.pop(1))
    SCENARIOS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
