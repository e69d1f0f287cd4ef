"""Export a trained model for inference outside the training code: ONNX (checked with onnxruntime) and
`torch.export` (an `ExportedProgram`), both with a dynamic batch size, and `metadata.json` with what the inputs
must be (shape, dtype, preprocessing, class names) and how far each export is from the Lightning model.

    uv run python -m common.export runs/<project>/<run>/checkpoints/best.ckpt [--output <folder>]

A project's LightningModule is exportable when its `forward` (in eval mode) is the whole inference function and it
has `example_inputs(batch_size)` (a tuple of tensors, batch first) and `export_metadata()` (a JSON-ready dict:
inputs, outputs, preprocessing). Files the model needs besides its weights (a tokenizer) are copied from the run.
"""

import argparse
import importlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule

from common.checkpointing import read_checkpoint
from common.errors import UserInputError
from common.pretrained import load_trained_module

TOLERANCE = (
    1e-4  # max |exported - Lightning| on float32 outputs: the same operations, reordered by the exporters
)
RUN_FILES = ("tokenizer.json",)  # copied from the run folder when there


class Inference(torch.nn.Module):
    """The module's `forward` alone, so the exporters trace neither the Trainer nor the metrics."""

    def __init__(self, module: LightningModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(*inputs)


def input_names(module: LightningModule, count: int) -> list[str]:
    names = [entry["name"] for entry in module.export_metadata().get("inputs", [])]
    return names if len(names) == count else [f"input_{index}" for index in range(count)]


def export(module: LightningModule, folder: Path, run_dir: Path | None = None) -> dict[str, Any]:
    """Write `model.onnx`, `model.pt2` and `metadata.json` to `folder`; return the metadata (with the parity)."""
    for method in ("example_inputs", "export_metadata"):
        if not callable(getattr(module, method, None)):
            raise UserInputError(f"{type(module).__name__} has no {method}(); it cannot be exported yet")
    folder.mkdir(parents=True, exist_ok=True)
    module = module.eval().cpu()
    for child in module.modules():  # a compiled network (`--model.compile true`) exports as its eager self
        child._compiled_call_impl = None
    network = Inference(module).eval()
    inputs = module.example_inputs(2)
    names = input_names(module, len(inputs))
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = tuple({0: batch} for _ in inputs)
    with torch.no_grad():
        program = torch.export.export(network, inputs, dynamic_shapes=(dynamic,))  # one entry: *inputs
        torch.export.save(program, folder / "model.pt2")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own translation steps
            torch.onnx.export(network, inputs, folder / "model.onnx", input_names=names, output_names=["output"],
                              dynamic_shapes=(dynamic,), dynamo=True, verbose=False)  # fmt: skip
    metadata = module.export_metadata() | {
        "files": {"onnx": "model.onnx", "torch_export": "model.pt2"},
        "dynamic_axes": {name: {"0": "batch"} for name in names},
        "parity": parity(network, folder, len(inputs[0]) + 3, module),
    }
    for name in RUN_FILES:
        if run_dir is not None and (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, folder / name)
            metadata["files"][name.split(".")[0]] = name
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


@torch.no_grad()
def parity(
    network: torch.nn.Module, folder: Path, batch_size: int, module: LightningModule
) -> dict[str, float]:
    """Max absolute difference of each export from the Lightning model, on a batch of another size than traced."""
    import onnxruntime

    inputs = module.example_inputs(batch_size)
    expected = network(*inputs).numpy()
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {entry.name: tensor.numpy() for entry, tensor in zip(session.get_inputs(), inputs, strict=True)}
    onnx_output = session.run(None, feeds)[0]
    exported = torch.export.load(folder / "model.pt2").module()(*inputs).numpy()
    differences = {
        "onnx_max_abs_diff": float(np.abs(onnx_output - expected).max()),
        "torch_export_max_abs_diff": float(np.abs(exported - expected).max()),
        "batch_size": batch_size,
        "tolerance": TOLERANCE,
    }
    for kind in ("onnx", "torch_export"):
        if not differences[f"{kind}_max_abs_diff"] <= TOLERANCE:
            raise RuntimeError(
                f"the {kind} export differs from the model by {differences[f'{kind}_max_abs_diff']}"
            )
    return differences


def project_module_class(project: str) -> str | None:
    """`projects.<project>.module.<the LightningModule defined there>`, for checkpoints that do not name their class."""
    try:
        source = importlib.import_module(f"projects.{project}.module")
    except ImportError:
        return None
    found = [name for name, value in vars(source).items() if isinstance(value, type)
             and issubclass(value, LightningModule) and value.__module__ == source.__name__]  # fmt: skip
    return f"{source.__name__}.{found[0]}" if len(found) == 1 else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint written by a project's train.py")
    parser.add_argument("--output", help="folder for the exports; default: <run dir>/export")
    parser.add_argument("--project", help="the project that trained it; default: from runs/<project>/<run>/")
    args = parser.parse_args(argv)
    path = Path(args.checkpoint).expanduser()
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
    output = Path(args.output) if args.output else (run_dir or path.parent) / "export"
    project = args.project or (run_dir.parent.name if run_dir else "")
    try:
        module = load_trained_module(path, project_module_class(project))
        # The datamodule's arguments hold the input shapes.
        module.data_hparams = dict(read_checkpoint(path).get("datamodule_hyper_parameters", {}))
        metadata = export(module, output, run_dir)
    except UserInputError as error:
        raise SystemExit(f"error: {error}") from None
    parity_figures = metadata["parity"]
    print(f"exported to {output}: model.onnx, model.pt2, metadata.json; max |difference| from the model at batch "
          f"{parity_figures['batch_size']}: ONNX {parity_figures['onnx_max_abs_diff']:.2e}, "
          f"torch.export {parity_figures['torch_export_max_abs_diff']:.2e}")  # fmt: skip
    return metadata


if __name__ == "__main__":
    main()
