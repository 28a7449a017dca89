// The openai inference backend: HTTP POST to an OpenAI-compatible /v1/chat/completions endpoint (a
// llama.cpp llama-server, vLLM, or a hosted API), with a bounded number of requests in flight (curl
// multi, one thread), retries with exponential backoff for 429/5xx/transport errors, and the GBNF
// output constraint passed as llama.cpp's "grammar" extension when the server has it. The common shim
// (backends/shim/plugin_shim.hpp) turns OpenAiEngine into the C ABI of herdsim_inference.h.
//
// The API key comes from an environment variable named in the configuration (api_key_env, default
// OPENAI_API_KEY), read once at create(). It is never accepted in the configuration and never appears
// in describe(), in an error message (every message is scrubbed of it) or in any file; it is sent
// only in the Authorization header, and redirects are not followed (so it goes to base_url's host only).
//
// Configuration (JSON; unknown keys are an error):
//   base_url         "http://127.0.0.1:8080/v1" (required; the /v1 prefix is part of it)
//   model            model name sent with each request (default: the first one the server lists)
//   api_key_env      name of the environment variable holding the key (default OPENAI_API_KEY; an
//                    unset or empty variable sends no Authorization header)
//   max_concurrency  requests in flight at most (default 8)
//   timeout_s        per attempt, in seconds (default 120)
//   retries          further attempts after a 429, a 5xx or a transport error (default 3)
//   retry_backoff_s  first backoff, doubled on each retry, capped at 30 s (default 0.5)
//   grammar_field    "grammar" (llama.cpp server extension, default) or "none" (constraint dropped)
//   check_server     GET {base_url}/models at create() (default true)
#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "plugin_shim.hpp"

namespace {

using herdsim::plugin::Answer;
using herdsim::plugin::fail;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kBackendName = "openai";
constexpr double kMaxBackoffS = 30.0;
constexpr long kProbeTimeoutMs = 10000;  // create() should fail fast on a dead server
constexpr size_t kMinScrubbedKey = 8;

/// Folds a 64-bit seed into [0, 2^31 - 1): servers take 32-bit or signed seeds, and llama-server
/// reads 0xFFFFFFFF as "random".
int64_t fold_seed(uint64_t seed) {
  const uint64_t folded = (seed ^ (seed >> 32)) & 0x7fffffffULL;
  return static_cast<int64_t>(folded == 0x7fffffffULL ? 0 : folded);
}

bool is_retryable_http(long code) {
  return code == 429 || code >= 500;
}

size_t append_body(char* data, size_t size, size_t nmemb, void* user) {
  static_cast<std::string*>(user)->append(data, size * nmemb);
  return size * nmemb;
}

/// The server's own error text: error.message of an OpenAI-style body, else the start of the body.
std::string server_message(const std::string& body) {
  try {
    const json j = json::parse(body);
    if (j.is_object() && j.contains("error")) {
      const json& e = j.at("error");
      if (e.is_object() && e.contains("message") && e.at("message").is_string())
        return e.at("message").get<std::string>();
      if (e.is_string()) return e.get<std::string>();
    }
  } catch (const json::exception&) {
    // not JSON: fall through to the raw text
  }
  std::string raw = body.substr(0, 200);
  std::replace(raw.begin(), raw.end(), '\n', ' ');
  return raw.empty() ? std::string("(empty body)") : raw;
}

struct Config {
  std::string base_url;
  std::string model;
  std::string api_key_env = "OPENAI_API_KEY";
  int max_concurrency = 8;
  double timeout_s = 120.0;
  int retries = 3;
  double retry_backoff_s = 0.5;
  std::string grammar_field = "grammar";
  bool check_server = true;
};

Config parse_config(const char* config_json) {
  json j;
  try {
    j = json::parse(config_json != nullptr ? config_json : "{}");
  } catch (const json::exception& e) {
    fail(HERDSIM_ERR_INVALID_ARGUMENT, std::string("configuration is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(HERDSIM_ERR_INVALID_ARGUMENT, "configuration must be a JSON object");
  Config c;
  std::string problems;
  const auto problem = [&problems](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  for (const auto& [key, value] : j.items()) {
    try {
      if (key == "base_url") {
        c.base_url = value.get<std::string>();
      } else if (key == "model") {
        c.model = value.get<std::string>();
      } else if (key == "api_key_env") {
        c.api_key_env = value.get<std::string>();
      } else if (key == "max_concurrency") {
        c.max_concurrency = value.get<int>();
        if (c.max_concurrency < 1 || c.max_concurrency > 1024)
          problem("max_concurrency must be in [1, 1024], got " + value.dump());
      } else if (key == "timeout_s") {
        c.timeout_s = value.get<double>();
        if (!(c.timeout_s > 0.0)) problem("timeout_s must be > 0, got " + value.dump());
      } else if (key == "retries") {
        c.retries = value.get<int>();
        if (c.retries < 0 || c.retries > 20) problem("retries must be in [0, 20], got " + value.dump());
      } else if (key == "retry_backoff_s") {
        c.retry_backoff_s = value.get<double>();
        if (!(c.retry_backoff_s >= 0.0)) problem("retry_backoff_s must be >= 0, got " + value.dump());
      } else if (key == "grammar_field") {
        c.grammar_field = value.get<std::string>();
        if (c.grammar_field != "grammar" && c.grammar_field != "none")
          problem("grammar_field must be \"grammar\" or \"none\", got " + value.dump());
      } else if (key == "check_server") {
        c.check_server = value.get<bool>();
      } else if (key == "api_key" || key == "key" || key == "token") {
        // Never echo the value: it may be a real key.
        problem("'" + key +
                "' is not accepted in the configuration (keys are never stored in scenario or run files); "
                "put the "
                "key in an environment variable and name it in api_key_env");
      } else {
        problem(
            "unknown key '" + key +
            "' (known: base_url, model, api_key_env, max_concurrency, timeout_s, retries, retry_backoff_s, "
            "grammar_field, check_server)");
      }
    } catch (const json::exception&) {
      problem(key + " has the wrong type");
    }
  }
  if (c.base_url.empty()) {
    problem("base_url is required (e.g. \"http://127.0.0.1:8080/v1\")");
  } else {
    if (c.base_url.rfind("http://", 0) != 0 && c.base_url.rfind("https://", 0) != 0)
      problem("base_url must start with http:// or https://, got \"" + c.base_url + "\"");
    const size_t host_start = c.base_url.find("//") + 2;
    const size_t host_end = c.base_url.find('/', host_start);
    if (c.base_url.substr(host_start, host_end - host_start).find('@') != std::string::npos)
      problem("base_url must not contain credentials (user:password@); use api_key_env");
    while (!c.base_url.empty() && c.base_url.back() == '/') c.base_url.pop_back();
  }
  if (c.api_key_env.empty()) problem("api_key_env must not be empty");
  if (!problems.empty()) fail(HERDSIM_ERR_INVALID_ARGUMENT, problems);
  return c;
}

struct SlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct MultiFree {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};

/// One request's transfer, kept across its retries.
struct Transfer {
  size_t index = 0;  // into the batch
  CURL* easy = nullptr;
  std::string body;
  std::string reply;
  std::array<char, CURL_ERROR_SIZE> curl_error{};
  int attempt = 0;  // attempts started
  Clock::time_point first_start;
  Clock::time_point not_before;
};

/// A batch's transfers. Frees every easy handle, detaching those still in the multi handle, however
/// generate() ends (a throw mid-batch leaves no handle behind that points into freed transfers).
class Transfers {
 public:
  explicit Transfers(CURLM* multi, size_t n) : multi_(multi) { list_.reserve(n); }
  Transfers(const Transfers&) = delete;
  Transfers& operator=(const Transfers&) = delete;
  ~Transfers() {
    for (Transfer& t : list_) {
      if (t.easy == nullptr) continue;
      curl_multi_remove_handle(multi_, t.easy);  // a no-op for a handle that is not in it
      curl_easy_cleanup(t.easy);
    }
  }
  /// Adds a transfer; its address stays fixed (space for n was reserved).
  void add(Transfer t) { list_.push_back(std::move(t)); }
  std::vector<Transfer>& list() { return list_; }

 private:
  CURLM* multi_;
  std::vector<Transfer> list_;
};

class OpenAiEngine final : public herdsim::plugin::Engine {
 public:
  explicit OpenAiEngine(Config config) : config_(std::move(config)) {
    if (const char* key = std::getenv(config_.api_key_env.c_str()); key != nullptr) key_ = key;
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    headers_.reset(headers);
    if (headers != nullptr) headers = curl_slist_append(headers, "Accept: application/json");
    if (headers != nullptr && !key_.empty()) {
      std::string auth = "Authorization: Bearer ";
      auth += key_;
      headers = curl_slist_append(headers, auth.c_str());
      std::fill(auth.begin(), auth.end(), '\0');
    }
    multi_.reset(curl_multi_init());
    if (headers == nullptr || multi_ == nullptr) fail(HERDSIM_ERR_INTERNAL, "libcurl initialisation failed");
    if (config_.check_server) probe();
    if (config_.model.empty()) {
      if (server_models_.empty())
        fail(HERDSIM_ERR_INVALID_ARGUMENT,
             "model is not set and the server at " + config_.base_url + " lists no models");
      config_.model = server_models_.front();
    }
    describe_ = make_description();
  }

  ~OpenAiEngine() override {
    std::fill(key_.begin(), key_.end(), '\0');  // best effort: no copy of the key outlives the engine
  }

  const std::string& describe() override { return describe_; }

  void generate(std::span<const herdsim_request> requests, std::span<Answer> out) override {
    const std::lock_guard lock(mutex_);  // one batch at a time: the multi handle and its connections
    Transfers transfers(multi_.get(), requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      const herdsim_request& r = requests[i];
      if (r.user == nullptr || r.max_tokens <= 0) {
        finish(out[i], HERDSIM_ERR_INVALID_ARGUMENT, "", "request has no user message or max_tokens <= 0",
               0.0);
        continue;
      }
      Transfer t;
      t.index = i;
      try {
        t.body = request_body(r);
      } catch (const json::exception& e) {  // e.g. a message that is not valid UTF-8
        finish(out[i], HERDSIM_ERR_INVALID_ARGUMENT, "",
               std::string("request cannot be sent as JSON: ") + e.what(), 0.0);
        continue;
      }
      transfers.add(std::move(t));
    }

    std::deque<Transfer*> waiting;
    for (auto& t : transfers.list()) waiting.push_back(&t);
    size_t active = 0;
    size_t remaining = transfers.list().size();
    const auto max_active = static_cast<size_t>(config_.max_concurrency);
    while (remaining > 0) {
      const auto now = Clock::now();
      // Start what may start: in order, skipping transfers still backing off.
      for (auto it = waiting.begin(); it != waiting.end() && active < max_active;) {
        if ((*it)->not_before > now) {
          ++it;
          continue;
        }
        start(**it);
        ++active;
        it = waiting.erase(it);
      }
      int running = 0;
      curl_multi_perform(multi_.get(), &running);
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &queued)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Transfer* t = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
        const CURLcode result = msg->data.result;
        curl_multi_remove_handle(multi_.get(), msg->easy_handle);
        --active;
        if (complete(*t, result, out[t->index], waiting)) --remaining;
      }
      if (remaining == 0) break;
      // Wait for network activity, or until the next backoff ends when nothing is in flight.
      int wait_ms = 100;
      if (active == 0 && !waiting.empty()) {
        auto next = waiting.front()->not_before;
        for (const Transfer* t : waiting) next = std::min(next, t->not_before);
        const auto until = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
        wait_ms = static_cast<int>(std::clamp<long long>(until, 0, 1000));
      }
      curl_multi_poll(multi_.get(), nullptr, 0, wait_ms, nullptr);
    }
  }

 private:
  /// GET {base_url}/models: the server is there, accepts the key, and lists its models.
  void probe() {
    const std::string url = config_.base_url + "/models";
    std::string reply;
    std::array<char, CURL_ERROR_SIZE> curl_error{};
    long code = 0;
    CURLcode result = CURLE_OK;
    double backoff = config_.retry_backoff_s;
    for (int attempt = 0;; ++attempt) {
      CURL* easy = curl_easy_init();
      if (easy == nullptr) fail(HERDSIM_ERR_INTERNAL, "libcurl initialisation failed");
      reply.clear();
      curl_error[0] = '\0';
      set_common_options(easy, url, reply, curl_error.data());
      curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, std::min(kProbeTimeoutMs, timeout_ms()));
      result = curl_easy_perform(easy);
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
      curl_easy_cleanup(easy);
      // A server still loading its model answers 503: wait for it as for any request. A transport
      // error is not retried here: a server that is not listening will not be at a second try.
      if (result != CURLE_OK || !is_retryable_http(code) || attempt >= config_.retries) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
      backoff = std::min(backoff * 2.0, kMaxBackoffS);
    }
    if (result != CURLE_OK)
      fail(HERDSIM_ERR_TRANSPORT, scrub("cannot reach the OpenAI-compatible server at " + url + ": " +
                                        transport_message(result, curl_error.data()) +
                                        " (is the server running, and does base_url end in /v1?)"));
    if (code == 401 || code == 403)
      fail(HERDSIM_ERR_TRANSPORT,
           scrub("the server at " + url + " refused the request (HTTP " + std::to_string(code) + ": " +
                 server_message(reply) + "); " + key_hint()));
    if (code >= 200 && code < 300) {
      try {
        const json j = json::parse(reply);
        if (j.contains("data") && j.at("data").is_array())
          for (const auto& m : j.at("data"))
            if (m.contains("id") && m.at("id").is_string())
              server_models_.push_back(m.at("id").get<std::string>());
      } catch (const json::exception&) {
        // a reachable server with an unusual /models answer is still usable
      }
    } else if (code >= 500 || code == 429) {
      fail(HERDSIM_ERR_TRANSPORT, scrub("the server at " + url + " is not ready (HTTP " +
                                        std::to_string(code) + ": " + server_message(reply) + ")"));
    }
    // Other statuses (e.g. 404: no /models route): the server answered, so it is reachable.
  }

  long timeout_ms() const { return static_cast<long>(config_.timeout_s * 1000.0); }

  std::string key_hint() const {
    if (key_.empty())
      return "no API key was sent: the environment variable " + config_.api_key_env + " is not set or empty";
    return "check the API key in the environment variable " + config_.api_key_env;
  }

  /// Removes every occurrence of the key from a message (a server might echo what it was sent). Keys
  /// shorter than kMinScrubbedKey characters are not searched for: they would match ordinary words.
  std::string scrub(std::string text) const {
    if (key_.size() < kMinScrubbedKey) return text;
    for (size_t pos = text.find(key_); pos != std::string::npos; pos = text.find(key_, pos))
      text.replace(pos, key_.size(), "[redacted]");
    return text;
  }

  /// curl's detailed message when it has one (it names host and port), else the code's generic text.
  static std::string transport_message(CURLcode result, const char* detail) {
    return detail != nullptr && detail[0] != '\0' ? std::string(detail)
                                                  : std::string(curl_easy_strerror(result));
  }

  void set_common_options(CURL* easy, const std::string& url, std::string& reply, char* error_buffer) const {
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers_.get());
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);        // no SIGALRM: we run inside a threaded host
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);  // the key goes to base_url's host only
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, std::min(kProbeTimeoutMs, timeout_ms()));
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms());
  }

  std::string request_body(const herdsim_request& r) const {
    json messages = json::array();
    if (r.system != nullptr && r.system[0] != '\0')
      messages.push_back({{"role", "system"}, {"content", r.system}});
    messages.push_back({{"role", "user"}, {"content", r.user}});
    json body = {{"model", config_.model},     {"messages", std::move(messages)},
                 {"max_tokens", r.max_tokens}, {"temperature", static_cast<double>(r.temperature)},
                 {"seed", fold_seed(r.seed)},  {"stream", false}};
    if (r.grammar != nullptr && r.grammar[0] != '\0' && config_.grammar_field == "grammar")
      body["grammar"] = r.grammar;
    return body.dump();
  }

  void start(Transfer& t) {
    if (t.easy == nullptr) {
      t.easy = curl_easy_init();
      if (t.easy == nullptr) fail(HERDSIM_ERR_INTERNAL, "libcurl initialisation failed");
      set_common_options(t.easy, config_.base_url + "/chat/completions", t.reply, t.curl_error.data());
      curl_easy_setopt(t.easy, CURLOPT_POST, 1L);
      curl_easy_setopt(t.easy, CURLOPT_POSTFIELDS, t.body.c_str());
      curl_easy_setopt(t.easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body.size()));
      curl_easy_setopt(t.easy, CURLOPT_PRIVATE, &t);
    }
    if (t.attempt == 0) t.first_start = Clock::now();
    ++t.attempt;
    t.reply.clear();
    t.curl_error[0] = '\0';
    if (const CURLMcode rc = curl_multi_add_handle(multi_.get(), t.easy); rc != CURLM_OK)
      fail(HERDSIM_ERR_INTERNAL, std::string("libcurl cannot start a transfer: ") + curl_multi_strerror(rc));
  }

  /// Handles a finished attempt: fills the response, or schedules a retry (returns false).
  bool complete(Transfer& t, CURLcode result, Answer& out, std::deque<Transfer*>& waiting) {
    long code = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &code);
    const bool ok = result == CURLE_OK && code >= 200 && code < 300;
    const bool retryable = result != CURLE_OK || is_retryable_http(code);
    if (!ok && retryable && t.attempt <= config_.retries) {
      double delay = config_.retry_backoff_s * static_cast<double>(1 << std::min(t.attempt - 1, 16));
      curl_off_t retry_after = 0;  // a 429/503 may say how long to wait
      if (curl_easy_getinfo(t.easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0)
        delay = std::max(delay, static_cast<double>(retry_after));
      delay = std::min(delay, kMaxBackoffS);
      t.not_before =
          Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(delay));
      waiting.push_back(&t);
      return false;
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t.first_start).count();
    const std::string url = config_.base_url + "/chat/completions";
    std::string tries;
    if (t.attempt > 1) tries.append(" after ").append(std::to_string(t.attempt)).append(" attempts");
    if (result != CURLE_OK) {
      finish(out, HERDSIM_ERR_TRANSPORT, "",
             scrub("request to " + url + " failed" + tries + ": " +
                   transport_message(result, t.curl_error.data())),
             ms);
      return true;
    }
    if (!ok) {
      std::string message = "HTTP ";
      message.append(std::to_string(code)).append(" from ").append(url).append(tries).append(": ");
      message += server_message(t.reply);
      if (code == 401 || code == 403) message += "; " + key_hint();
      finish(out, HERDSIM_ERR_TRANSPORT, "", scrub(message), ms);
      return true;
    }
    try {
      const json j = json::parse(t.reply);
      const json& content = j.at("choices").at(0).at("message").at("content");
      const std::string text = content.is_string() ? content.get<std::string>() : std::string();
      if (j.contains("usage") && j.at("usage").is_object()) {
        const json& u = j.at("usage");
        out.prompt_tokens = u.value("prompt_tokens", 0);
        out.completion_tokens = u.value("completion_tokens", 0);
        if (u.contains("prompt_tokens_details") && u.at("prompt_tokens_details").is_object())
          out.cached_tokens = u.at("prompt_tokens_details").value("cached_tokens", 0);
      }
      finish(out, HERDSIM_OK, text, "", ms);
    } catch (const json::exception& e) {
      finish(out, HERDSIM_ERR_TRANSPORT, "",
             scrub("malformed response from " + url + " (" + e.what() + "): " + server_message(t.reply)), ms);
    }
    return true;
  }

  static void finish(Answer& out, int32_t status, const std::string& text, const std::string& error,
                     double ms) {
    out.status = status;
    out.text = text;
    out.error = error;
    out.time_ms = ms;
  }

  std::string make_description() const {
    json d = {{"backend", kBackendName},
              {"base_url", config_.base_url},
              {"model", config_.model},
              {"api_key_env", config_.api_key_env},
              {"api_key_set", !key_.empty()},
              {"max_concurrency", config_.max_concurrency},
              {"timeout_s", config_.timeout_s},
              {"retries", config_.retries},
              {"retry_backoff_s", config_.retry_backoff_s},
              {"grammar_field", config_.grammar_field},
              {"server_models", server_models_},
              {"libcurl", curl_version_info(CURLVERSION_NOW)->version}};
    return scrub(d.dump());
  }

  Config config_;
  std::string key_;
  std::unique_ptr<curl_slist, SlistFree> headers_;
  std::unique_ptr<CURLM, MultiFree> multi_;
  std::vector<std::string> server_models_;
  std::string describe_;
  std::mutex mutex_;
};

}  // namespace

const herdsim::plugin::Definition& herdsim::plugin::plugin_definition() {
  static const Definition definition{kBackendName, [](const char* config_json) -> std::unique_ptr<Engine> {
                                       static const CURLcode global =
                                           curl_global_init(CURL_GLOBAL_DEFAULT);  // once, thread-safe init
                                       if (global != CURLE_OK)
                                         fail(HERDSIM_ERR_INTERNAL, "curl_global_init failed");
                                       return std::make_unique<OpenAiEngine>(parse_config(config_json));
                                     }};
  return definition;
}
