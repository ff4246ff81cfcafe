#!/usr/bin/env python3
"""Writes a tiny llama-architecture GGUF with random weights, for tests against a real llama-server.

    make_tiny_gguf.py OUT.gguf [--embd 64 --heads 4 --kv-heads 4 --ff 128 --layers 2 --ctx 2048 ...]

The output is gibberish, but llama.cpp loads it, tokenizes with it (SentencePiece vocab of bytes,
printable ASCII and ~100 English words), applies its ChatML chat template and generates with it.
The same arguments always give the same file (fixed seed).

Clean output trick: dimension 0 of the residual stream is 1.0 in every token embedding and no layer
writes to it (row 0 of attn_output and ffn_down is zero), so column 0 of output.weight acts as a
per-token logit bias: strongly negative for byte, control and unknown tokens (and for </s> unless
--eos-bias says otherwise), so generation never stops by itself and always emits whole UTF-8 text.

Needs the `gguf` and `numpy` packages (PyPI).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover - reported to the user
    sys.exit("make_tiny_gguf.py: the 'gguf' package is missing: python3 -m pip install gguf numpy")

WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one "
    "had by word but not what all were we when your can said there use an each which she do how their "
    "if will up other about out many then them these so some her would make like him into time has look "
    "two more write go see number no way could people my than first water been call who oil its now find "
    "long down day did get come made may part over new sound take only little work know place year live "
    "me back give most very after thing our just name good sentence man think say great where help"
).split()

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

NEG_BIAS = -80.0


def build_vocab() -> tuple[list[str], list[float], list[int]]:
    T = gguf.TokenType
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []

    def add(tok: str, score: float, typ: int) -> None:
        if tok in seen:
            return
        seen.add(tok)
        tokens.append(tok)
        scores.append(score)
        types.append(typ)

    seen: set[str] = set()
    add("<unk>", 0.0, T.UNKNOWN)  # 0
    add("<s>", 0.0, T.CONTROL)  # 1
    add("</s>", 0.0, T.CONTROL)  # 2
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, T.BYTE)
    add("<|im_start|>", 0.0, T.CONTROL)
    add("<|im_end|>", 0.0, T.CONTROL)
    add("\u2581", -1.0, T.NORMAL)
    for c in range(0x21, 0x7F):
        add(chr(c), -1.0, T.NORMAL)
    for w in WORDS:
        add("\u2581" + w, float(len(w)), T.NORMAL)
        add(w, float(len(w)) - 0.5, T.NORMAL)
    return tokens, scores, [int(t) for t in types]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="path of the GGUF file to write")
    p.add_argument("--embd", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--ff", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--ctx", type=int, default=2048)
    p.add_argument("--name", default="tiny-random-llama")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--eos-bias", type=float, default=NEG_BIAS,
                   help="logit bias of </s> (default: never emitted; 0 makes it come up at random)")
    a = p.parse_args()

    if a.embd % a.heads or a.heads % a.kv_heads:
        p.error("--embd must be a multiple of --heads, and --heads a multiple of --kv-heads")
    head_dim = a.embd // a.heads
    n_kv = a.kv_heads * head_dim

    tokens, scores, types = build_vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(a.seed)

    def rand(*shape: int, scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name(a.name)
    w.add_context_length(a.ctx)
    w.add_embedding_length(a.embd)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(a.ff)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    w.add_file_type(0)  # all f32

    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    # Token embeddings: dimension 0 is the constant 1.0 that carries the logit bias.
    embd = rand(n_vocab, a.embd, scale=0.5)
    embd[:, 0] = 1.0
    w.add_tensor("token_embd.weight", embd)
    for i in range(a.layers):
        s = 1.0 / np.sqrt(a.embd)
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(a.embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", rand(a.embd, a.embd, scale=s))
        w.add_tensor(f"blk.{i}.attn_k.weight", rand(n_kv, a.embd, scale=s))
        w.add_tensor(f"blk.{i}.attn_v.weight", rand(n_kv, a.embd, scale=s))
        attn_out = rand(a.embd, a.embd, scale=s)
        attn_out[0, :] = 0.0  # nothing writes to residual dimension 0
        w.add_tensor(f"blk.{i}.attn_output.weight", attn_out)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(a.embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(a.ff, a.embd, scale=s))
        w.add_tensor(f"blk.{i}.ffn_up.weight", rand(a.ff, a.embd, scale=s))
        ffn_down = rand(a.embd, a.ff, scale=1.0 / np.sqrt(a.ff))
        ffn_down[0, :] = 0.0
        w.add_tensor(f"blk.{i}.ffn_down.weight", ffn_down)
    w.add_tensor("output_norm.weight", np.ones(a.embd, dtype=np.float32))

    out = rand(n_vocab, a.embd, scale=1.0)
    bias = np.zeros(n_vocab, dtype=np.float32)
    for t, typ in enumerate(types):
        if typ != int(gguf.TokenType.NORMAL):
            bias[t] = NEG_BIAS
    bias[2] = a.eos_bias
    out[:, 0] = bias
    w.add_tensor("output.weight", out)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{a.out}: vocab={n_vocab} embd={a.embd} layers={a.layers} heads={a.heads}/{a.kv_heads} ff={a.ff} ctx={a.ctx}")


if __name__ == "__main__":
    main()
