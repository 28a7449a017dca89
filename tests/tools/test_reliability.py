#!/usr/bin/env python3
"""End-to-end reliability of herdsim's outputs (docs/output-files.md, docs/hdf5-schema.md):
signals, killed runs, concurrent writers of one output, special files and symlinks, inputs that would be
overwritten, and the same rules for every command that writes (run, compare and its side file, export,
report, dataset).

Usage: test_reliability.py PATH_TO_HERDSIM SCENARIO_DIR
"""
import shutil
import hashlib
import os
import signal
import stat
import subprocess
import sys
import time

import h5py
import numpy as np

import support
from support import herdsim, start

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
    """{name: bytes digest} of every dataset in a run file (strings: their UTF-8 text)."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                if h5py.check_string_dtype(obj.dtype) is not None:  # the text, not the pointers to it
                    data = "\0".join(str(v) for v in np.asarray(obj.asstr()[()], dtype=object).reshape(-1)).encode()
                else:
                    data = np.ascontiguousarray(obj[()]).tobytes()
                out[name] = hashlib.sha256(data).hexdigest()
        f.visititems(visit)
    return out


class Base(support.TempDirTest):
    def setUp(self):
        super().setUp()
        self.long = self.scenario(LONG, "long.toml")
        self.short = self.scenario(SHORT, "short.toml")

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


class FullDisk(Base):
    def test_a_write_that_fails_is_exit_1_with_one_message_and_an_incomplete_file(self):
        # A file-size limit of 256 KiB stands in for a full disk: with SIGXFSZ ignored, a write past it
        # fails with EFBIG, as one on a full disk fails with ENOSPC (both reach herdsim as a failed H5Dwrite).
        import resource

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

        out = self.path("full.h5")
        res = subprocess.run([support.HERDSIM, "run", "-q", self.long, "-o", out], capture_output=True, text=True,
                             errors="replace", timeout=300, preexec_fn=limit)
        self.assertEqual(res.returncode, 1, res.stderr)  # a failed computation, not a crash at exit (-11)
        self.assertIn("herdsim run: failed: HDF5 H5", res.stderr)
        self.assertIn("File too large", res.stderr)
        self.assertEqual(len(res.stderr.strip().splitlines()), 2, res.stderr)  # one message (HDF5 puts a newline in it)
        # Nothing looks complete: no OUT, only OUT.partial (cut at the limit: HDF5 may not open it, and if it
        # does it says complete = 0).
        self.assertFalse(os.path.exists(out))
        self.assertTrue(os.path.exists(out + ".partial"))
        try:
            with h5py.File(out + ".partial", "r") as f:
                self.assertEqual(int(f.attrs["complete"]), 0)
        except OSError as e:
            self.assertIn("truncated file", str(e))


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


LOADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "herdsim_load.py")


class TamperedFiles(Base):
    """Readers trust nothing: attributes that contradict the data, missing or reshaped datasets and
    truncated files are refused with one line and exit 2 by compare, export and the Python loader."""

    def setUp(self):
        super().setUp()
        self.good = self.path("good.h5")
        res = herdsim("run", self.short, "-o", self.good, "-q")
        self.assertEqual(res.returncode, 0, res.stderr)

    def tampered(self, name, edit):
        path = self.path(name + ".h5")
        shutil.copy(self.good, path)
        with h5py.File(path, "r+") as f:
            edit(f)
        return path

    def assert_refused_by_every_reader(self, path, reason):
        for args in (["compare", path, "--no-sidecar"], ["export", path, "--population", "noise"]):
            with self.subTest(command=args[0]):
                res = herdsim(*args)
                self.assertEqual(res.returncode, 2, res.stderr)
                lines = res.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, res.stderr)
                self.assertIn(reason, lines[0])
        with self.subTest(command="herdsim_load.py"):
            res = subprocess.run([sys.executable, LOADER, path], capture_output=True, text=True, timeout=60)
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertNotIn("Traceback", res.stderr)
            lines = res.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, res.stderr)
            self.assertIn(reason, lines[0])

    def test_the_untouched_file_reads(self):
        res = subprocess.run([sys.executable, LOADER, self.good], capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(herdsim("compare", self.good, "--no-sidecar").returncode, 0)

    def test_recorded_agents_larger_or_smaller_than_the_data(self):
        for value in (999999, 1, -3):
            with self.subTest(recorded_agents=value):
                path = self.tampered(f"agents{value}",
                                     lambda f: f["populations/noise"].attrs.modify("recorded_agents", value))
                self.assert_refused_by_every_reader(path, "recorded_agents" if value < 0 or value > 50
                                                    else "populations/noise/wealth has shape")

    def test_paths_attribute_that_contradicts_the_data(self):
        cases = {"fewer": np.array([0, 1], dtype=np.int32), "outside": np.array([0, 1, 2, 3, 4, 5, 6, 99]),
                 "unsorted": np.array([1, 0, 2, 3, 4, 5, 6, 7])}
        for name, paths in cases.items():
            with self.subTest(paths=name):
                path = self.tampered("paths_" + name, lambda f: f.attrs.__setitem__("paths", paths.astype(np.int32)))
                self.assert_refused_by_every_reader(path, "paths")

    def test_steps_every_and_time_axis(self):
        edits = {
            "steps": (lambda f: f.attrs.modify("steps", np.int32(10**9)), "time/step"),
            "every": (lambda f: f.attrs.modify("every", np.int32(0)), "every = 0"),
            "time": (lambda f: f["time/step"].__setitem__(1, 7), "time/step"),
        }
        for name, (edit, reason) in edits.items():
            with self.subTest(edit=name):
                self.assert_refused_by_every_reader(self.tampered(name, edit), reason)

    def test_missing_or_reshaped_datasets(self):
        def reshape(f):
            data = f["market/shock"][()]
            del f["market/shock"]
            f["market/shock"] = data[:, :3]
        self.assert_refused_by_every_reader(self.tampered("reshaped", reshape), "market/shock has shape")
        self.assert_refused_by_every_reader(
            self.tampered("missing", lambda f: f.__delitem__("populations/noise/amount")), "amount")

    def test_truncated_and_garbage_files(self):
        with open(self.good, "rb") as f:
            data = f.read()
        for name, content in (("half", data[:len(data) // 2]), ("head", data[:600]), ("zero", b"")):
            path = self.path(name + ".h5")
            with open(path, "wb") as f:
                f.write(content)
            with self.subTest(file=name):
                for args in (["compare", path, "--no-sidecar"], ["export", path, "--population", "noise"]):
                    res = herdsim(*args)
                    self.assertEqual(res.returncode, 2, res.stderr)
                    self.assertEqual(len(res.stderr.strip().splitlines()), 1, res.stderr)
                res = subprocess.run([sys.executable, LOADER, path], capture_output=True, text=True, timeout=60)
                self.assertEqual(res.returncode, 2, res.stderr)
                self.assertNotIn("Traceback", res.stderr)


if __name__ == "__main__":
    support.main(scenarios=True)
