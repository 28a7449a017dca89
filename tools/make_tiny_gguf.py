#!/usr/bin/python3
"""Writes small random-weight GGUF models (Llama or Qwen2 architecture) with a real tokenizer.

Test and benchmark models for the llama.cpp backend: a real model run through the real engine, with
no weights to download. The tokenizer (tokens, merges, special ids, pre-tokenizer) is copied from a
vocab-only GGUF shipped in the llama.cpp source; the weights are Gaussian with a small standard
deviation, so logits stay finite and moderate. The file is written with llama.cpp's own gguf-py and
is byte-identical for the same arguments (each tensor has its own stream keyed by seed and name).

    /usr/bin/python3 tools/make_tiny_gguf.py out/tiny-qwen2.gguf --arch qwen2 --seed 1
    /usr/bin/python3 tools/make_tiny_gguf.py out/qwen2.5-0.5b-random.gguf --preset qwen2.5-0.5b
    /usr/bin/python3 tools/make_tiny_gguf.py out/tiny-llama.gguf --arch llama --lora out/tiny-llama-lora.gguf

Needs NumPy (Debian's python3-numpy: run it with /usr/bin/python3) and the llama.cpp source from
tools/fetch_llama_cpp.sh (its gguf-py and models/ggml-vocab-*.gguf); --llama-dir or HERDSIM_LLAMA_DIR
points elsewhere.
"""

from __future__ import annotations

import argparse
import logging
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Vocab-only GGUFs in the llama.cpp source: Llama 3 (BPE, 128256 tokens) and Qwen2 (151936 tokens).
VOCAB_FILES = {"llama": "models/ggml-vocab-llama-bpe.gguf", "qwen2": "models/ggml-vocab-qwen2.gguf"}

# Llama 3 chat format (our wording of the template; llama.cpp recognises it by its header tokens).
# The Qwen2 vocab file carries its own ChatML template, which is kept.
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class Shape:
    """Hyperparameters of the generated model."""

    arch: str
    n_layer: int = 2
    n_embd: int = 32
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 64
    n_ctx: int = 4096
    rope_base: float = 10000.0
    rms_eps: float = 1e-5


PRESETS = {
    # Qwen2.5-0.5B's shape (tied embeddings); for benchmarks, about 1 GB in f16.
    "qwen2.5-0.5b": Shape(arch="qwen2", n_layer=24, n_embd=896, n_head=14, n_head_kv=2, n_ff=4864,
                          n_ctx=32768, rope_base=1000000.0, rms_eps=1e-6),
    # Llama-3.1-8B's layers (the output matrix tied to the embedding here, 0.5B fewer parameters than the
    # real model); for GPU benchmarks, about 15 GB in f16.
    "llama-3.1-8b": Shape(arch="llama", n_layer=32, n_embd=4096, n_head=32, n_head_kv=8, n_ff=14336,
                          n_ctx=131072, rope_base=500000.0, rms_eps=1e-5),
}


def import_gguf(llama_dir: Path):
    """Imports gguf-py from the llama.cpp source (the version the engine reads)."""
    gguf_py = llama_dir / "gguf-py"
    if not (gguf_py / "gguf" / "__init__.py").is_file():
        sys.exit(f"make_tiny_gguf: no gguf-py in {llama_dir}; run tools/fetch_llama_cpp.sh (or tools/setup.sh)")
    try:
        import numpy  # noqa: F401
    except ImportError:
        sys.exit("make_tiny_gguf: NumPy is missing; run with /usr/bin/python3 (Debian's python3-numpy)")
    sys.path.insert(0, str(gguf_py))
    import gguf  # noqa: E402

    logging.getLogger("gguf").setLevel(logging.WARNING)  # the writer logs every file at INFO
    return gguf


def tensor_rng(seed: int, name: str):
    """A stream per (seed, tensor name): one tensor does not depend on the others or their order."""
    import numpy as np

    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def plan_tensors(shape: Shape, n_vocab: int) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, NumPy shape (rows = output features), kind) in file order; kind: weight | norm | bias."""
    head_dim = shape.n_embd // shape.n_head
    n_q, n_kv = shape.n_head * head_dim, shape.n_head_kv * head_dim
    plan = [("token_embd.weight", (n_vocab, shape.n_embd), "weight"),
            ("output_norm.weight", (shape.n_embd,), "norm")]  # output.weight omitted: tied embeddings
    for i in range(shape.n_layer):
        b = f"blk.{i}."
        plan += [(b + "attn_norm.weight", (shape.n_embd,), "norm"),
                 (b + "attn_q.weight", (n_q, shape.n_embd), "weight"),
                 (b + "attn_k.weight", (n_kv, shape.n_embd), "weight"),
                 (b + "attn_v.weight", (n_kv, shape.n_embd), "weight")]
        if shape.arch == "qwen2":  # Qwen2 has biases on Q, K and V
            plan += [(b + "attn_q.bias", (n_q,), "bias"),
                     (b + "attn_k.bias", (n_kv,), "bias"),
                     (b + "attn_v.bias", (n_kv,), "bias")]
        plan += [(b + "attn_output.weight", (shape.n_embd, n_q), "weight"),
                 (b + "ffn_norm.weight", (shape.n_embd,), "norm"),
                 (b + "ffn_gate.weight", (shape.n_ff, shape.n_embd), "weight"),
                 (b + "ffn_up.weight", (shape.n_ff, shape.n_embd), "weight"),
                 (b + "ffn_down.weight", (shape.n_embd, shape.n_ff), "weight")]
    return plan


def make_tensor(name: str, dims: tuple[int, ...], kind: str, seed: int, std: float, gain: float, dtype):
    """Norms are ones; the token embedding and biases N(0, std^2); layer matrices N(0, gain^2 / fan_in).

    Fan-in scaling keeps every block's output O(1), so the layers (not only the tied embedding)
    decide the next token: greedy output depends on the prompt instead of repeating its last token,
    and the small embedding keeps the logits moderate (a flat, finite distribution). Matrices are in
    dtype, vectors in f32 (as llama.cpp keeps them).
    """
    import numpy as np

    if kind == "norm":
        return np.ones(dims, dtype=np.float32)
    scale = std if kind == "bias" or name == "token_embd.weight" else gain / np.sqrt(dims[1])
    values = tensor_rng(seed, name).standard_normal(dims, dtype=np.float32) * np.float32(scale)
    return values.astype(dtype if len(dims) == 2 else np.float32)


def read_kv(gguf, path: Path) -> list[tuple[str, object, object, object]]:
    """The metadata of a GGUF file as (key, value, type, array element type), in file order.

    A direct parse of the header: gguf.GGUFReader builds a NumPy view per string and takes about 15 s
    on a 400k-token vocab, this takes a fraction of a second. Strings stay raw bytes (no decoding).
    """
    T = gguf.GGUFValueType
    scalar = {T.UINT8: "B", T.INT8: "b", T.UINT16: "H", T.INT16: "h", T.UINT32: "I", T.INT32: "i",
              T.FLOAT32: "f", T.BOOL: "?", T.UINT64: "Q", T.INT64: "q", T.FLOAT64: "d"}
    data = path.read_bytes()
    magic, version, _, n_kv = struct.unpack_from("<IIQQ", data, 0)
    if magic != gguf.GGUF_MAGIC or version not in (2, 3):
        sys.exit(f"make_tiny_gguf: {path} is not a GGUF v2/v3 file")
    off = 24

    def read_str(off: int) -> tuple[bytes, int]:
        (n,) = struct.unpack_from("<Q", data, off)
        return data[off + 8:off + 8 + n], off + 8 + n

    def read_value(vtype, off: int):
        if vtype == T.STRING:
            return read_str(off)
        fmt = scalar[vtype]
        return struct.unpack_from("<" + fmt, data, off)[0], off + struct.calcsize(fmt)

    out = []
    for _ in range(n_kv):
        key, off = read_str(off)
        (vtype,) = struct.unpack_from("<I", data, off)
        vtype, off = T(vtype), off + 4
        sub = None
        if vtype == T.ARRAY:
            sub_raw, n = struct.unpack_from("<IQ", data, off)
            sub, off = T(sub_raw), off + 12
            if sub == T.STRING:
                value = []
                for _ in range(n):
                    item, off = read_str(off)
                    value.append(item)
            else:
                fmt = f"<{n}{scalar[sub]}"
                value, off = list(struct.unpack_from(fmt, data, off)), off + struct.calcsize(fmt)
        else:
            value, off = read_value(vtype, off)
        out.append((key.decode(), value, vtype, sub))
    return out


def copy_tokenizer(gguf, writer, vocab_path: Path) -> int:
    """Copies every tokenizer.* key of a vocab-only GGUF, byte for byte; returns the vocab size."""
    n_vocab = 0
    for key, value, vtype, sub in read_kv(gguf, vocab_path):
        if not key.startswith("tokenizer."):
            continue
        writer.add_key_value(key, value, vtype, sub_type=sub)
        if key == "tokenizer.ggml.tokens":
            n_vocab = len(value)
    if n_vocab == 0:
        sys.exit(f"make_tiny_gguf: {vocab_path} has no tokenizer.ggml.tokens")
    return n_vocab


def write_model(gguf, path: Path, shape: Shape, vocab_path: Path, seed: int, std: float, gain: float,
                f16: bool) -> None:
    import numpy as np

    dtype = np.float16 if f16 else np.float32
    tmp = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(tmp, shape.arch)
    writer.add_name(f"herdsim random {shape.arch} (seed {seed})")
    writer.add_type("model")
    writer.add_file_type(1 if f16 else 0)  # LLAMA_FTYPE_MOSTLY_F16 / ALL_F32
    writer.add_context_length(shape.n_ctx)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.n_embd // shape.n_head)
    writer.add_rope_freq_base(shape.rope_base)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    n_vocab = copy_tokenizer(gguf, writer, vocab_path)
    writer.add_vocab_size(n_vocab)
    if "tokenizer.chat_template" not in writer.kv_data[0]:
        template = LLAMA3_CHAT_TEMPLATE if shape.arch == "llama" else CHATML_CHAT_TEMPLATE
        writer.add_chat_template(template)

    # Tensor infos first, then one tensor at a time: a 0.5B-shaped model never sits in memory whole.
    plan = plan_tensors(shape, n_vocab)
    for name, dims, kind in plan:
        t_dtype = dtype if len(dims) == 2 else np.float32
        writer.add_tensor_info(name, dims, np.dtype(t_dtype), int(np.prod(dims)) * np.dtype(t_dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for name, dims, kind in plan:
        writer.write_tensor_data(make_tensor(name, dims, kind, seed, std, gain, dtype))
    writer.close()
    os.replace(tmp, path)


def write_lora(gguf, path: Path, shape: Shape, seed: int, rank: int, std: float) -> None:
    """A random LoRA adapter on attn_q and attn_v of every layer, in llama.cpp's adapter format."""
    import numpy as np

    head_dim = shape.n_embd // shape.n_head
    outs = {"attn_q": shape.n_head * head_dim, "attn_v": shape.n_head_kv * head_dim}
    tmp = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(tmp, shape.arch)
    writer.add_name(f"herdsim random LoRA for {shape.arch} (seed {seed})")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))  # scale alpha / rank = 1
    for i in range(shape.n_layer):
        for target, n_out in outs.items():
            base = f"blk.{i}.{target}.weight"
            # ggml shapes: A is [n_embd, rank], B is [rank, n_out]; NumPy's are reversed.
            a = tensor_rng(seed, base + ".lora_a").standard_normal((rank, shape.n_embd), dtype=np.float32)
            b = tensor_rng(seed, base + ".lora_b").standard_normal((n_out, rank), dtype=np.float32)
            writer.add_tensor(base + ".lora_a", a * np.float32(std))
            writer.add_tensor(base + ".lora_b", b * np.float32(std))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("output", type=Path, help="the .gguf file to write")
    p.add_argument("--arch", choices=sorted(VOCAB_FILES), default="qwen2")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named shape; overrides --arch and the sizes")
    d = Shape(arch="qwen2")
    p.add_argument("--n-layer", type=int, default=d.n_layer)
    p.add_argument("--n-embd", type=int, default=d.n_embd)
    p.add_argument("--n-head", type=int, default=d.n_head)
    p.add_argument("--n-head-kv", type=int, default=d.n_head_kv)
    p.add_argument("--n-ff", type=int, default=d.n_ff)
    p.add_argument("--n-ctx", type=int, default=d.n_ctx, help="training context length (metadata)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--std", type=float, default=0.02, help="standard deviation of the token embedding and biases")
    p.add_argument("--gain", type=float, default=1.0,
                   help="layer matrices have standard deviation gain / sqrt(fan_in)")
    p.add_argument("--dtype", choices=["f16", "f32"], default="f16", help="type of the weight matrices")
    p.add_argument("--vocab", type=Path, help="vocab-only GGUF to copy the tokenizer from (default: by --arch)")
    p.add_argument("--lora", type=Path, help="also write a random LoRA adapter for the model to this path")
    p.add_argument("--lora-rank", type=int, default=4)
    p.add_argument("--lora-std", type=float, default=0.2, help="standard deviation of the LoRA A and B")
    p.add_argument("--llama-dir", type=Path,
                   default=Path(os.environ.get("HERDSIM_LLAMA_DIR", REPO / "third_party" / "llama.cpp")))
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.preset:
        shape = PRESETS[args.preset]
    else:
        shape = Shape(arch=args.arch, n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head,
                      n_head_kv=args.n_head_kv, n_ff=args.n_ff, n_ctx=args.n_ctx,
                      rope_base=1000000.0 if args.arch == "qwen2" else 500000.0,
                      rms_eps=1e-6 if args.arch == "qwen2" else 1e-5)
    problems = []
    for key in ("n_layer", "n_embd", "n_head", "n_head_kv", "n_ff", "n_ctx"):
        if getattr(shape, key) <= 0:
            problems.append(f"--{key.replace('_', '-')} must be > 0, got {getattr(shape, key)}")
    if not problems:
        if shape.n_embd % shape.n_head:
            problems.append(f"--n-embd ({shape.n_embd}) must be a multiple of --n-head ({shape.n_head})")
        elif (shape.n_embd // shape.n_head) % 2:
            problems.append(f"the head size n_embd / n_head = {shape.n_embd // shape.n_head} must be even (RoPE)")
        if shape.n_head % shape.n_head_kv:
            problems.append(f"--n-head ({shape.n_head}) must be a multiple of --n-head-kv ({shape.n_head_kv})")
    if not args.std > 0:
        problems.append(f"--std must be > 0, got {args.std}")
    if not args.gain > 0:
        problems.append(f"--gain must be > 0, got {args.gain}")
    if args.lora_rank <= 0:
        problems.append(f"--lora-rank must be > 0, got {args.lora_rank}")
    if problems:
        for line in problems:
            print(f"make_tiny_gguf: {line}", file=sys.stderr)
        return 2

    gguf = import_gguf(args.llama_dir)
    vocab = args.vocab or args.llama_dir / VOCAB_FILES[shape.arch]
    if not vocab.is_file():
        sys.exit(f"make_tiny_gguf: vocab file {vocab} not found")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_model(gguf, args.output, shape, vocab, args.seed, args.std, args.gain, args.dtype == "f16")
    print(f"{args.output}: {shape.arch}, {shape.n_layer} layers, n_embd {shape.n_embd}, "
          f"{args.output.stat().st_size / 1e6:.1f} MB")
    if args.lora:
        args.lora.parent.mkdir(parents=True, exist_ok=True)
        write_lora(gguf, args.lora, shape, args.seed, args.lora_rank, args.lora_std)
        print(f"{args.lora}: LoRA rank {args.lora_rank}, {args.lora.stat().st_size / 1e3:.1f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
