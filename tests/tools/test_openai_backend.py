#!/usr/bin/python3
"""The openai inference backend against a real OpenAI-compatible server on loopback.

usage: test_openai_backend.py OPENAI_DRIVER PLUGIN LLAMA_SERVER MAKE_TINY_GGUF

Writes a tiny random Qwen2-architecture model (tools/make_tiny_gguf.py), starts llama.cpp's own
llama-server with it on a free loopback port (with --api-key), and drives the plugin through
tests/backends/openai_driver (herdsim::inference::load_plugin). Concurrency and retries are observed
through a small counting proxy between the plugin and the server.
"""
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

DRIVER, PLUGIN, SERVER, MAKE_GGUF = sys.argv[1:5]
del sys.argv[1:5]

KEY = "herdsim-test-key-7f3a9c1e5b"  # a test key: it must never appear in any output
WRONG_KEY = "herdsim-wrong-key-0d2e4f6a8c"
TMP = None
MODEL = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_driver(config, requests, env_key=KEY, env_name="OPENAI_API_KEY"):
    """Runs the driver; returns (exit code, parsed JSON output, raw stdout + stderr)."""
    path = os.path.join(TMP, "requests.json")
    with open(path, "w") as f:
        json.dump(requests, f)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "HERDSIM_TEST_KEY")}
    if env_key is not None:
        env[env_name] = env_key
    p = subprocess.run([DRIVER, PLUGIN, json.dumps(config), path], capture_output=True, text=True, env=env,
                       timeout=300)
    raw = p.stdout + p.stderr
    try:
        out = json.loads(p.stdout)
    except json.JSONDecodeError:
        out = None
    return p.returncode, out, raw


class CountingProxy:
    """HTTP proxy to the server that records requests in flight and can fail the first POSTs with 503."""

    def __init__(self, upstream_port, delay_s=0.0, fail_first=0):
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self.fail_first = fail_first
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.posts = []  # (Authorization header, body) per POST
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def forward(self, method):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                    if method == "POST":
                        proxy.posts.append((self.headers.get("Authorization"), json.loads(body)))
                        fail = len(proxy.posts) <= proxy.fail_first
                    else:
                        fail = False
                try:
                    time.sleep(proxy.delay_s)
                    if fail:
                        status, data = 503, b'{"error": {"message": "busy, try again"}}'
                    else:
                        conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                        headers = {k: v for k, v in self.headers.items()
                                   if k.lower() in ("authorization", "content-type", "accept")}
                        conn.request(method, self.path, body=body, headers=headers)
                        r = conn.getresponse()
                        status, data = r.status, r.read()
                        conn.close()
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.forward("GET")

            def do_POST(self):
                self.forward("POST")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def setUpModule():
    global TMP, MODEL
    TMP = tempfile.mkdtemp(prefix="herdsim_openai_")
    MODEL = os.path.join(TMP, "tiny-qwen2.gguf")
    subprocess.run(["/usr/bin/python3", MAKE_GGUF, "--arch", "qwen2", MODEL], check=True, capture_output=True,
                   timeout=300)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


class OpenAIBackendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.log = open(os.path.join(TMP, "llama-server.log"), "w")
        cls.server = subprocess.Popen(
            [SERVER, "-m", MODEL, "--host", "127.0.0.1", "--port", str(cls.port), "-t", "1", "-c", "4096",
             "-np", "4", "--no-webui", "--api-key", KEY],
            stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:  # /health is public and answers 200 once the model is loaded
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{cls.port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if cls.server.poll() is not None or time.monotonic() > deadline:
                cls.log.close()
                with open(os.path.join(TMP, "llama-server.log")) as f:
                    tail = f.read()[-3000:]
                cls.server.kill()
                raise RuntimeError("llama-server did not become ready:\n" + tail)
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        try:
            cls.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            cls.server.wait()
        cls.log.close()

    def config(self, port=None, **extra):
        c = {"base_url": f"http://127.0.0.1:{port or self.port}/v1", "model": "tiny", "timeout_s": 120}
        c.update(extra)
        return c

    def assert_no_key(self, raw):
        self.assertNotIn(KEY, raw)
        self.assertNotIn(WRONG_KEY, raw)

    def test_answers_and_token_counts(self):
        requests = [{"system": "You are an investor.", "user": f"Question {i}: how much do you invest?",
                     "max_tokens": 8, "temperature": 0.7, "seed": 1000 + i} for i in range(4)]
        rc, out, raw = run_driver(self.config(), requests)
        self.assertEqual(rc, 0, raw)
        self.assert_no_key(raw)
        self.assertEqual(out["name"], "openai")
        self.assertEqual(len(out["responses"]), 4)
        for r in out["responses"]:
            self.assertEqual(r["status"], 0, r["error"])
            self.assertEqual(r["error"], "")
            self.assertGreater(r["prompt_tokens"], 0)
            self.assertGreater(r["completion_tokens"], 0)
            self.assertLessEqual(r["completion_tokens"], 8)
            self.assertGreater(r["time_ms"], 0.0)
        describe = json.loads(out["describe"])
        self.assertEqual(describe["backend"], "openai")
        self.assertEqual(describe["api_key_env"], "OPENAI_API_KEY")
        self.assertTrue(describe["api_key_set"])
        self.assertEqual(describe["grammar_field"], "grammar")

    def test_same_seed_same_answer(self):
        request = {"user": "Pick a number.", "max_tokens": 12, "temperature": 1.0, "seed": 42}
        rc, out, raw = run_driver(self.config(max_concurrency=1), [request, dict(request, seed=42)])
        self.assertEqual(rc, 0, raw)
        a, b = out["responses"]
        self.assertEqual((a["status"], b["status"]), (0, 0), raw)
        self.assertEqual(a["text"], b["text"])

    def test_small_grammar_constrains_output(self):
        grammar = 'root ::= ("yes" | "no") " " [0-9] [0-9]?'
        requests = [{"user": "Invest?", "max_tokens": 8, "temperature": 1.0, "seed": s, "grammar": grammar}
                    for s in range(6)]
        rc, out, raw = run_driver(self.config(), requests)
        self.assertEqual(rc, 0, raw)
        for r in out["responses"]:
            self.assertEqual(r["status"], 0, r["error"])
            word, _, digits = r["text"].partition(" ")
            self.assertIn(word, ("yes", "no"), r["text"])
            self.assertTrue(digits.isdigit() and 1 <= len(digits) <= 2, r["text"])

    def test_investalign_grammar_answers_parse(self):
        requests = [{"system": "Answer in JSON.", "user": "Plan your investment for 3 years.", "max_tokens": 400,
                     "temperature": 1.0, "seed": s, "investalign": {"years": 3, "max_explanation_chars": 30}}
                    for s in range(4)]
        rc, out, raw = run_driver(self.config(), requests)
        self.assertEqual(rc, 0, raw)
        for r in out["responses"]:
            self.assertEqual(r["status"], 0, r["error"])
            self.assertTrue(r["answer_valid"], f'{r["answer_status"]}: {r["text"]}')
            answer = json.loads(r["text"])
            self.assertEqual(len(answer["Investment Proportion Sequence"]), 3)

    def test_grammar_field_none_drops_constraint(self):
        rc, out, raw = run_driver(self.config(grammar_field="none"),
                                  [{"user": "Invest?", "max_tokens": 4, "grammar": 'root ::= "yes"'}])
        self.assertEqual(rc, 0, raw)
        self.assertEqual(out["responses"][0]["status"], 0)
        self.assertEqual(json.loads(out["describe"])["grammar_field"], "none")

    def test_bounded_concurrency(self):
        proxy = CountingProxy(self.port, delay_s=0.05)
        try:
            requests = [{"user": f"Agent {i}", "max_tokens": 4, "seed": i,
                         "grammar": 'root ::= [a-z]+' if i % 2 else ""} for i in range(20)]
            rc, out, raw = run_driver(self.config(proxy.port, max_concurrency=3), requests)
        finally:
            proxy.close()
        self.assertEqual(rc, 0, raw)
        self.assertTrue(all(r["status"] == 0 for r in out["responses"]), raw)
        self.assertEqual(len(proxy.posts), 20)
        self.assertEqual(proxy.max_in_flight, 3)  # never more than max_concurrency, and it is used
        for auth, body in proxy.posts:
            self.assertEqual(auth, "Bearer " + KEY)  # the key from the environment is sent
            self.assertIn("seed", body)
            self.assertEqual(body["model"], "tiny")
        seeds = sorted(body["seed"] for _, body in proxy.posts)
        self.assertEqual(seeds, list(range(20)))
        with_grammar = [body for _, body in proxy.posts if "grammar" in body]
        self.assertEqual(len(with_grammar), 10)

    def test_retries_with_backoff(self):
        proxy = CountingProxy(self.port, fail_first=2)
        try:
            requests = [{"user": f"Agent {i}", "max_tokens": 4, "seed": i} for i in range(3)]
            rc, out, raw = run_driver(self.config(proxy.port, retries=2, retry_backoff_s=0.05, max_concurrency=1),
                                      requests)
            self.assertEqual(rc, 0, raw)
            self.assertTrue(all(r["status"] == 0 for r in out["responses"]), raw)
            self.assertEqual(len(proxy.posts), 5)
        finally:
            proxy.close()
        proxy = CountingProxy(self.port, fail_first=1)
        try:
            rc, out, raw = run_driver(self.config(proxy.port, retries=0), [{"user": "x", "max_tokens": 2}])
        finally:
            proxy.close()
        self.assertEqual(rc, 0, raw)
        r = out["responses"][0]
        self.assertEqual(r["status_name"], "transport error")
        self.assertIn("HTTP 503", r["error"])
        self.assertIn("busy, try again", r["error"])  # the server's own message

    def test_key_from_named_variable(self):
        rc, out, raw = run_driver(self.config(api_key_env="HERDSIM_TEST_KEY"), [{"user": "hi", "max_tokens": 2}],
                                  env_name="HERDSIM_TEST_KEY")
        self.assertEqual(rc, 0, raw)
        self.assertEqual(out["responses"][0]["status"], 0, raw)
        self.assertEqual(json.loads(out["describe"])["api_key_env"], "HERDSIM_TEST_KEY")
        self.assert_no_key(raw)

    def test_wrong_key_fails_at_create(self):
        rc, out, raw = run_driver(self.config(), [{"user": "hi"}], env_key=WRONG_KEY)
        self.assertEqual(rc, 3, raw)
        self.assertIn("HTTP 401", out["error"])
        self.assertIn("OPENAI_API_KEY", out["error"])
        self.assert_no_key(raw)

    def test_wrong_or_missing_key_fails_each_request(self):
        for env_key in (WRONG_KEY, None):
            rc, out, raw = run_driver(self.config(check_server=False), [{"user": "hi"}, {"user": "ho"}],
                                      env_key=env_key)
            self.assertEqual(rc, 0, raw)
            self.assert_no_key(raw)
            for r in out["responses"]:
                self.assertEqual(r["status_name"], "transport error")
                self.assertIn("HTTP 401", r["error"])
                self.assertIn("Invalid API Key", r["error"])
                self.assertIn("OPENAI_API_KEY", r["error"])
                if env_key is None:
                    self.assertIn("not set", r["error"])
            self.assertEqual(json.loads(out["describe"])["api_key_set"], env_key is not None)

    def test_missing_key_fails_at_create(self):
        rc, out, raw = run_driver(self.config(), [{"user": "hi"}], env_key=None)
        self.assertEqual(rc, 3, raw)
        self.assertIn("not set", out["error"])

    def test_unreachable_server_fails_at_create(self):
        port = free_port()  # nothing listens there
        start = time.monotonic()
        rc, out, raw = run_driver(self.config(port), [{"user": "hi"}])
        self.assertEqual(rc, 3, raw)
        self.assertLess(time.monotonic() - start, 30)
        self.assertIn("cannot reach", out["error"])
        self.assertIn(f"127.0.0.1:{port}/v1/models", out["error"])
        self.assert_no_key(raw)

    def test_key_in_config_is_refused(self):
        rc, out, raw = run_driver(dict(self.config(), api_key=KEY), [{"user": "hi"}])
        self.assertEqual(rc, 3, raw)
        self.assertIn("api_key_env", out["error"])
        self.assert_no_key(raw)

    def test_bad_config_names_the_key(self):
        rc, out, raw = run_driver(self.config(max_concurrency=0, grammar_field="json"), [{"user": "hi"}])
        self.assertEqual(rc, 3, raw)
        self.assertIn("max_concurrency", out["error"])
        self.assertIn("grammar_field", out["error"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
