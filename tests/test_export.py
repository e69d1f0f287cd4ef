"""Every project's trained model leaves Python: ONNX and torch.export from a checkpoint, as a user runs it."""

import importlib
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import REPO

from common.export import main as export
from common.pretrained import load_trained_module
from noxfile import QUICKSTARTS  # every project's offline quickstart, a new one's too

QUICK = ["--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0",
         "--test_after_fit=false", "--trainer.enable_progress_bar=false"]  # fmt: skip


def trained_checkpoint(project: str) -> Path:
    train = importlib.import_module(f"projects.{project}.train")
    train.main(["fit", "--config", str(REPO / QUICKSTARTS[project]), *QUICK])
    [checkpoint] = Path("runs", project).glob("*/checkpoints/last.ckpt")
    return checkpoint


@pytest.mark.parametrize("project", QUICKSTARTS)
def test_export_from_a_checkpoint_matches_the_lightning_model_at_any_batch_size(project, monkeypatch):
    monkeypatch.delenv("DATA_ROOT", raising=False)  # the offline data: sentiment's synthetic corpus
    checkpoint = trained_checkpoint(project)
    metadata = export([str(checkpoint)])
    folder = checkpoint.parent.parent / "export"
    assert json.loads((folder / "metadata.json").read_text()) == metadata
    assert (
        metadata["parity"]["onnx_max_abs_diff"] <= 1e-4
        and metadata["parity"]["torch_export_max_abs_diff"] <= 1e-4
    )

    # Independently of the export's own check: the module as `load_trained_module` rebuilds it, at batch 7.
    module = load_trained_module(checkpoint, f"projects.{project}.module.{type_name(project)}")
    module.data_hparams = torch.load(checkpoint, weights_only=True).get("datamodule_hyper_parameters", {})
    inputs = module.example_inputs(7)
    with torch.no_grad():
        expected = module(*inputs).numpy()
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [entry.name for entry in session.get_inputs()] == [entry["name"] for entry in metadata["inputs"]]
    onnx_output = session.run(None, {entry.name: x.numpy() for entry, x in zip(session.get_inputs(), inputs, strict=True)})[0]  # fmt: skip
    np.testing.assert_allclose(onnx_output, expected, rtol=0, atol=1e-4)
    program = torch.export.load(folder / "model.pt2")
    np.testing.assert_allclose(program.module()(*inputs).numpy(), expected, rtol=0, atol=1e-5)
    assert expected.shape[0] == 7 and list(expected.shape[1:]) == metadata["outputs"][0]["shape"][1:]
    if project == "sentiment":
        assert (folder / "tokenizer.json").read_text() == (
            checkpoint.parent.parent / "tokenizer.json"
        ).read_text()


def type_name(project: str) -> str:
    from common.export import project_module_class

    return project_module_class(project).rpartition(".")[2]


def test_exporting_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "runs" / "image_classifier" / "run" / "checkpoints" / "last.ckpt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match=r"^error: cannot read checkpoint .*last.ckpt"):
        export([str(bad)])
