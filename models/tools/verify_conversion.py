#!/usr/bin/env python3
"""Compare the TF.js graph model (run in TensorFlow, see tfjs_reference.py)
with the converted ONNX model (run in onnxruntime) on the same random input.

Usage: verify_conversion.py <model.json> <model.onnx> [seed]
Prints the max abs difference per output and overall; exits 1 if > 1e-3.
Needs tensorflow, onnxruntime, numpy (the conversion venv has them).
"""
import sys

import numpy as np
import onnxruntime as ort

from tfjs_reference import run_tfjs_graph

# TF.js signature name -> ONNX output name (checked by rename_outputs.py from the signature shapes)
TF2ONNX = {"Identity:0": "cls_8", "Identity_1:0": "cls_16", "Identity_2:0": "cls_32",
           "Identity_3:0": "box_8", "Identity_4:0": "box_16", "Identity_5:0": "box_32"}


def main(model_json, onnx_path, seed=0):
    rng = np.random.default_rng(int(seed))
    # roughly the range of a normalised image: (0..255 - mean) / std  ~  -2.2 .. 2.6
    x = rng.uniform(-2.2, 2.6, size=(1, 3, 416, 416)).astype(np.float32)
    tf_names = list(TF2ONNX)
    ref = dict(zip(tf_names, run_tfjs_graph(model_json, {"input_1:0": x}, tf_names)))
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    onnx_names = [TF2ONNX[n] for n in tf_names]
    got = dict(zip(onnx_names, sess.run(onnx_names, {"input": x})))
    worst = 0.0
    for tfn in tf_names:
        a, b = ref[tfn], got[TF2ONNX[tfn]]
        assert a.shape == b.shape, (tfn, a.shape, b.shape)
        d = float(np.max(np.abs(a.astype(np.float64) - b)))
        worst = max(worst, d)
        print(f"{TF2ONNX[tfn]:7s} {str(b.shape):15s} max|tf-ort| = {d:.3g}  (|tf| max {np.abs(a).max():.3g})")
    print(f"MAX_ABS_DIFF {worst:.3g}")
    return 0 if worst <= 1e-3 else 1


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
