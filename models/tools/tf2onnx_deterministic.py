#!/usr/bin/env python3
"""Run ``python -m tf2onnx.convert`` with byte-reproducible output.

tf2onnx 1.16.1's optimizers (e.g. TransposeOptimizer._handle_node_having_branches:
``set(node.inputs)``) iterate over Python sets of ``tf2onnx.graph.Node``
objects.  Node has no __hash__, so the default id()-based hash makes the
iteration order depend on memory addresses, and two conversions of the same
model give functionally identical but byte-different ONNX files (different
duplicate nodes survive merging, different generated names).

This wrapper gives every Node a hash equal to its creation index (creation
order is deterministic); equality stays identity-based, so set semantics are
unchanged, only the iteration order becomes stable.  Run it with
PYTHONHASHSEED=0 as well, because sets of *strings* are also iterated.

Usage: same arguments as ``python -m tf2onnx.convert``.
"""
import itertools
import sys

import tf2onnx.graph as _graph

_counter = itertools.count()
_orig_init = _graph.Node.__init__


def _init(self, *args, **kwargs):
    self._deterministic_hash = next(_counter)
    _orig_init(self, *args, **kwargs)


_graph.Node.__init__ = _init
_graph.Node.__hash__ = lambda self: self._deterministic_hash

from tf2onnx import convert  # noqa: E402  (after the patch)

if __name__ == "__main__":
    sys.argv[0] = "tf2onnx.convert"
    convert.main()
