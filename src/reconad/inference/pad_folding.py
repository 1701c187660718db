"""Fold zero ``Pad`` nodes into the convolution that reads them (a pass over an exported graph).

The EfficientNet-Lite encoder pads TensorFlow's way (one pixel less on the top/left than on
the bottom/right) before each stride-2 convolution, and the map's Gaussian blur pads before
its separable convolutions.  Exported as they are, each is a ``Pad`` node that copies the
whole feature map before the convolution reads it; ONNX Runtime does not fuse them once it
has fused the convolution with its activation.  An ONNX ``Conv`` takes begin and end pads of
its own, so a constant zero pad of the spatial axes moves into its ``pads`` attribute and the
copy disappears.  Pads of another mode or value, or read by anything else, stay as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fold_pads"]


def _constant(model: Any, name: str) -> np.ndarray | None:
    """The value of tensor ``name`` when it depends on constants only (the exporter builds
    pads from Constant, Reshape, Slice and Cast nodes), else None; evaluated by onnx's
    reference evaluator on the nodes it depends on."""
    from onnx import ValueInfoProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    inits = {i.name: i for i in model.graph.initializer}
    if name in inits:
        return np.asarray(numpy_helper.to_array(inits[name]))
    producer = {out: node for node in model.graph.node for out in node.output}
    needed: list[Any] = []
    todo, seen = [name], set()
    while todo:
        tensor = todo.pop()
        if tensor in seen or tensor in inits or not tensor:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is None or (node.op_type in ("Shape", "Size") and node.input[0] not in inits):
            return None  # a graph input, or a shape read at run time
        if node not in needed:
            needed.append(node)
        todo.extend(node.input)
    order = [n for n in model.graph.node if n in needed]
    graph = helper.make_graph(
        order, "pads", [], [ValueInfoProto(name=name)],
        [inits[i] for i in sorted({i for n in order for i in n.input}) if i in inits],
    )  # fmt: skip
    sub = helper.make_model(graph, opset_imports=model.opset_import)
    try:
        values = ReferenceEvaluator(sub).run(None, {})
        return np.asarray(values[0] if isinstance(values, list) else values[name])
    except Exception:  # an op the reference evaluator lacks: leave the Pad as it is
        return None


def _zero_spatial_pads(model: Any, pad: Any) -> list[int] | None:
    """(top, left, bottom, right) of a constant zero Pad of a 4-D map's last two axes, else None."""
    modes = [a.s.decode() for a in pad.attribute if a.name == "mode"]
    if modes and modes[0] != "constant":
        return None
    if len(pad.input) > 2 and pad.input[2]:
        value = _constant(model, pad.input[2])
        if value is None or np.any(value != 0):
            return None
    if len(pad.input) > 3 and pad.input[3]:  # pads of chosen axes only
        return None
    pads = _constant(model, pad.input[1])
    if pads is None or pads.size != 8 or np.any(pads < 0) or np.any(pads[[0, 1, 4, 5]] != 0):
        return None
    return [int(v) for v in pads[[2, 3, 6, 7]]]


def _add_pads(conv: Any, extra: list[int]) -> None:
    """Add ``extra`` (top, left, bottom, right) to ``conv``'s own pads attribute."""
    from onnx import helper

    own = [0, 0, 0, 0]
    for attr in list(conv.attribute):
        if attr.name == "pads":
            own = list(attr.ints)
            conv.attribute.remove(attr)
    conv.attribute.append(helper.make_attribute("pads", [a + b for a, b in zip(own, extra)]))


def fold_pads(model: Any) -> int:
    """Fold every foldable Pad of ``model`` (an onnx ModelProto, changed in place) into the one
    2-D Conv that reads it; returns how many were folded."""
    readers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    folded = []
    for pad in model.graph.node:
        if pad.op_type != "Pad" or pad.output[0] in outputs:
            continue
        users = readers.get(pad.output[0], [])
        if len(users) != 1 or users[0].op_type != "Conv" or users[0].input[0] != pad.output[0]:
            continue
        conv = users[0]
        if any(a.name == "auto_pad" and a.s.decode() not in ("", "NOTSET") for a in conv.attribute):
            continue
        extra = _zero_spatial_pads(model, pad)
        if extra is None:
            continue
        _add_pads(conv, extra)
        conv.input[0] = pad.input[0]
        folded.append(pad)
    for pad in folded:
        model.graph.node.remove(pad)
    return len(folded)
