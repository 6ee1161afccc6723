"""Can a bf16 ONNX graph run on ONNX Runtime's CPU provider here? Each operator a transformer's
matrix products and residuals need, built as a one-node bf16 graph and opened in a session.

Where none runs, bf16 means PyTorch autocast (rag_qa.precision), whose matrix products use the
processor's bf16 instructions (oneDNN); on a build whose CPU provider has bf16 kernels, this prints
which ones do, and a bf16 graph is worth measuring against autocast.

Usage: python benchmarks/onnx_bf16_kernels.py [--json]
"""

from __future__ import annotations

import argparse
import json

OPERATORS = ("MatMul", "Gemm", "Add", "Mul", "Softmax", "LayerNormalization")


def kernels() -> dict[str, str]:
    """Each operator: "runs", or ONNX Runtime's refusal."""
    import onnxruntime
    from onnx import TensorProto, helper

    found = {}
    for op in OPERATORS:
        inputs = ["a", "b"] if op not in ("Softmax",) else ["a"]
        tensor = [helper.make_tensor_value_info(name, TensorProto.BFLOAT16, [2, 2]) for name in inputs]
        if op == "LayerNormalization":
            tensor[1] = helper.make_tensor_value_info("b", TensorProto.BFLOAT16, [2])
        output = helper.make_tensor_value_info("c", TensorProto.BFLOAT16, [2, 2])
        graph = helper.make_graph([helper.make_node(op, inputs, ["c"])], op, tensor, [output])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        try:
            onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            found[op] = "runs"
        except Exception as exc:  # noqa: BLE001 (the refusal is the finding)
            found[op] = str(exc).split(" : ")[-1][:120]
    return {"onnxruntime": onnxruntime.__version__, "kernels": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    result = kernels()
    if parser.parse_args().json:
        print(json.dumps(result, indent=2))
    else:
        print(f"ONNX Runtime {result['onnxruntime']}, CPU provider, bf16:")
        for op, said in result["kernels"].items():
            print(f"  {op}: {said}")


if __name__ == "__main__":
    main()
