#!/usr/bin/env python3
"""Run a TF.js *graph model* (model.json + .bin shards) directly in TensorFlow.

The TF.js graph-model format stores a GraphDef as JSON (``modelTopology``)
plus the weights of its Const nodes in binary shards (``weightsManifest``).
This loader rebuilds the GraphDef with google.protobuf.json_format, fills the
Const values from the shards (de-quantising float16 / uint8 / uint16), imports
it into a tf.Graph and runs it with a tf.compat.v1.Session.  It does not use
tf2onnx, so it is an independent reference for checking the ONNX conversion.

Library use:  outs = run_tfjs_graph(model_json, {"input_1:0": x}, ["Identity:0", ...])
"""
import json
import os

import numpy as np


def _decode_weights(model_json_path, manifest):
    base = os.path.dirname(os.path.abspath(model_json_path))
    out = {}
    for group in manifest:
        buf = b"".join(open(os.path.join(base, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            dtype = w["dtype"]
            if q:
                qdt = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}[q["dtype"]]
                raw = np.frombuffer(buf, dtype=qdt, count=count, offset=off)
                off += raw.nbytes
                if q["dtype"] == "float16":
                    val = raw.astype(np.float32)
                else:
                    val = raw.astype(np.float32) * q["scale"] + q["min"]
                val = val.astype(dtype)
            else:
                npdt = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}[dtype]
                val = np.frombuffer(buf, dtype=npdt, count=count, offset=off)
                off += val.nbytes
            out[w["name"]] = val.reshape(shape)
        assert off == len(buf), (off, len(buf))
    return out


def load_graph_def(model_json_path):
    import tensorflow as tf
    from google.protobuf import json_format

    model = json.load(open(model_json_path))
    topo = model["modelTopology"]
    gd = json_format.ParseDict({"node": topo["node"], "versions": topo.get("versions", {})},
                               tf.compat.v1.GraphDef(), ignore_unknown_fields=True)
    assert not topo.get("library", {}).get("function"), "function libraries not supported"
    weights = _decode_weights(model_json_path, model["weightsManifest"])
    filled = set()
    for node in gd.node:
        if node.name in weights:
            # TF.js stores int64 constants as int32: cast back to the dtype the node declares
            want = tf.dtypes.as_dtype(node.attr["dtype"].type).as_numpy_dtype
            val = weights[node.name].astype(want)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(val, shape=val.shape))
            filled.add(node.name)
    missing = set(weights) - filled
    assert not missing, f"weights without Const node: {sorted(missing)[:5]}"
    return gd


def run_tfjs_graph(model_json_path, feeds, fetches):
    import tensorflow as tf

    gd = load_graph_def(model_json_path)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run(fetches, feed_dict=feeds)
