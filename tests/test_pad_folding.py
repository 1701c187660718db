"""fold_pads: a constant zero Pad before a Conv moves into the Conv's pads; any other Pad stays."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from reconad.inference.pad_folding import fold_pads


def _model(mode: str = "constant", value: float | None = None, second_reader: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    # pads built the way the exporter builds them: a Constant reshaped, then cast
    raw = helper.make_node(
        "Constant", [], ["raw"], value=numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int32))
    )
    shape = numpy_helper.from_array(np.array([8], np.int64), "shape")
    nodes = [
        raw,
        helper.make_node("Reshape", ["raw", "shape"], ["r"]),
        helper.make_node("Cast", ["r"], ["pads"], to=TensorProto.INT64),
    ]
    inputs = ["x", "pads"]
    inits = [w, shape]
    if value is not None:
        inits.append(numpy_helper.from_array(np.array(value, np.float32), "v"))
        inputs.append("v")
    nodes.append(helper.make_node("Pad", inputs, ["p"], mode=mode))
    nodes.append(helper.make_node("Conv", ["p", "w"], ["y"], strides=[2, 2]))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])]
    if second_reader:
        nodes.append(helper.make_node("Relu", ["p"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 9, 9]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])], outputs, inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]


def test_a_zero_pad_moves_into_the_conv_and_the_result_is_unchanged():
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    before = _model()
    expected = _run(before, x)
    after = _model()
    assert fold_pads(after) == 1
    onnx.checker.check_model(after)
    assert [n.op_type for n in after.graph.node if n.op_type in ("Pad", "Conv")] == ["Conv"]
    conv = next(n for n in after.graph.node if n.op_type == "Conv")
    assert list(next(a for a in conv.attribute if a.name == "pads").ints) == [0, 0, 1, 1]
    np.testing.assert_allclose(_run(after, x), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"mode": "reflect"}, {"value": 1.0}, {"second_reader": True}])
def test_other_pads_stay(kwargs):
    model = _model(**kwargs)
    assert fold_pads(model) == 0
    assert any(n.op_type == "Pad" for n in model.graph.node)


def test_a_zero_constant_value_input_still_folds():
    assert fold_pads(_model(value=0.0)) == 1
