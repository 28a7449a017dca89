/* herdsim inference plugin ABI (C, versioned). docs/adding-a-backend.md explains how to write one.
 *
 * A plugin is a shared library exporting one function, herdsim_inference_plugin_entry, that returns a
 * table of function pointers. The host passes its ABI version; a plugin built for another version
 * returns its table anyway and the host refuses it with a message naming both versions. A plugin
 * depends on this header only (no herdsim C++ types cross the boundary).
 *
 * One generate() call decides a whole batch: the plugin may evaluate a prompt prefix shared by many
 * requests once, and must make each answer depend only on its own request (prompt, seed, grammar),
 * never on which other requests share the batch.
 *
 * Ownership. Strings passed in (configuration, requests) belong to the host for the call. Strings
 * passed out belong to the plugin: describe()'s until the next describe() or destroy(); a response's
 * text and error from a successful generate() until the host hands them back with release_responses(),
 * exactly once. A generate() that fails as a whole hands nothing over: see generate() below.
 * No exception, abort or exit crosses this boundary: every failure is a status and a message.
 * (The plugins in herdsim's tree get all this from one shim, backends/shim/plugin_shim.hpp.)
 */
#ifndef HERDSIM_INFERENCE_H
#define HERDSIM_INFERENCE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HERDSIM_INFERENCE_ABI_VERSION 1u

#if defined(_WIN32)
#define HERDSIM_PLUGIN_EXPORT __declspec(dllexport)
#else
#define HERDSIM_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* Status codes of every call and of each response. */
typedef enum herdsim_status {
  HERDSIM_OK = 0,
  HERDSIM_ERR_INVALID_ARGUMENT = 1, /* a request or the configuration is malformed */
  HERDSIM_ERR_MODEL = 2,            /* the model file is missing, corrupt or unsupported */
  HERDSIM_ERR_GRAMMAR = 3,          /* the output constraint does not compile */
  HERDSIM_ERR_CONTEXT = 4,          /* prompt + max_tokens do not fit the context */
  HERDSIM_ERR_OUT_OF_MEMORY = 5,
  HERDSIM_ERR_DEVICE = 6,    /* no usable device (e.g. no CUDA driver) */
  HERDSIM_ERR_TRANSPORT = 7, /* a remote endpoint failed or was unreachable */
  HERDSIM_ERR_INTERNAL = 8
} herdsim_status;

/* One generation request. Strings are UTF-8, NUL-terminated, owned by the host for the call. */
typedef struct herdsim_request {
  const char* system;  /* system message (chat models), may be "" */
  const char* user;    /* user message */
  int32_t max_tokens;  /* upper bound on generated tokens */
  float temperature;   /* 0 = greedy */
  uint64_t seed;       /* sampling seed of this request alone */
  const char* grammar; /* GBNF grammar constraining the output (root rule "root"), or NULL */
} herdsim_request;

/* One result. After a successful generate(), text and error are non-NULL, NUL-terminated and owned by
 * the plugin until release_responses(). */
typedef struct herdsim_response {
  int32_t status;            /* herdsim_status of this request */
  const char* text;          /* generated text (not including the prompt) */
  const char* error;         /* message when status != HERDSIM_OK, else "" */
  int32_t prompt_tokens;     /* tokens of the formatted prompt */
  int32_t cached_tokens;     /* of those, tokens reused from a shared prefix (not evaluated again) */
  int32_t completion_tokens; /* generated tokens */
  double time_ms;            /* wall time attributed to this request (its share of batched work) */
} herdsim_response;

typedef struct herdsim_inference_plugin {
  uint32_t abi_version; /* HERDSIM_INFERENCE_ABI_VERSION the plugin was built with */
  const char* name;     /* short backend name, e.g. "llama-cpu" */

  /* Creates an engine from a JSON configuration (backend specific; e.g. {"model": PATH, "lora": [..],
   * "n_ctx": 4096, "threads": 4}). On failure returns a status, sets *engine to NULL and writes a
   * message into err (truncated to err_size, always NUL-terminated). */
  int32_t (*create)(const char* config_json, void** engine, char* err, size_t err_size);

  /* Generates for n requests; out has n elements (the host's array). Returns HERDSIM_OK when the batch
   * ran (individual requests may still carry their own error status): out[0..n) is filled, and the host
   * must pass it to release_responses() once. Any other status (with a message in err) is a failure of
   * the whole call: the plugin has already freed whatever it allocated for these responses, partial
   * answers included, and every out[i].text and out[i].error is NULL. The host does not call
   * release_responses() then (doing so frees nothing). */
  int32_t (*generate)(void* engine, const herdsim_request* requests, size_t n, herdsim_response* out,
                      char* err, size_t err_size);

  /* Frees what a successful generate() allocated for these responses and sets their strings to NULL;
   * NULL strings are skipped. */
  void (*release_responses)(void* engine, herdsim_response* out, size_t n);

  /* JSON describing the engine (model, architecture, parameters, device, versions); owned by the engine. */
  const char* (*describe)(void* engine);

  void (*destroy)(void* engine);
} herdsim_inference_plugin;

/* The one exported symbol. host_abi_version lets a plugin adapt or refuse; it must not fail. */
typedef const herdsim_inference_plugin* (*herdsim_inference_plugin_entry_fn)(uint32_t host_abi_version);
HERDSIM_PLUGIN_EXPORT const herdsim_inference_plugin* herdsim_inference_plugin_entry(
    uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* HERDSIM_INFERENCE_H */
