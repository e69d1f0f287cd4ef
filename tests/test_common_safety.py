"""Files from users are data, never code: a crafted pickle planted on every path that loads a file is refused with
one line, and the code it carries never runs (it would write a marker file)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import UserInputError

REPO = Path(__file__).resolve().parents[1]
DIGITS = ["--config", str(REPO / "configs" / "image_classifier" / "digits.yaml"), "--trainer.max_epochs=1",
          "--trainer.enable_progress_bar=false"]  # fmt: skip


class RunsCode:
    """Unpickling this calls `exec`, which writes `marker`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


def plant(path: Path, marker: Path, **extra) -> Path:
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": RunsCode(marker), **extra}, path)
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    yield tmp_path / "code-ran"
    assert not (tmp_path / "code-ran").exists(), "the planted pickle ran its code"


def test_the_planted_pickle_does_run_code_when_fully_unpickled(tmp_path):
    # The test's premise: without weights-only loading, this file would run code.
    marker = tmp_path / "ran"
    torch.load(plant(tmp_path / "evil.ckpt", marker), weights_only=False)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_cli_ckpt_path_refuses_a_code_running_checkpoint(subcommand, marker, tmp_path):
    from projects.image_classifier.train import main

    evil = plant(tmp_path / "evil.ckpt", marker)
    args = DIGITS if subcommand == "fit" else DIGITS[:2] + ["--data.predict_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as stopped:
        main([subcommand, *args, "--ckpt_path", str(evil)])
    message = str(stopped.value.code)
    assert message.startswith("error: ") and f"{evil} is not a trusted checkpoint" in message


def test_load_image_classifier_refuses_a_code_running_checkpoint(marker, tmp_path):
    from common.pretrained import load_image_classifier

    with pytest.raises(UserInputError, match="is not a trusted checkpoint"):
        load_image_classifier(plant(tmp_path / "evil.ckpt", marker))


def test_dcgan_classifier_checkpoint_refuses_a_code_running_checkpoint(marker, tmp_path):
    from projects.dcgan.train import main

    evil = plant(tmp_path / "evil.ckpt", marker)
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--config", str(REPO / "configs" / "dcgan" / "digits.yaml"), "--trainer.fast_dev_run=true",
              "--model.classifier_checkpoint", str(evil)])  # fmt: skip
    assert "is not a trusted checkpoint" in str(stopped.value.code)


def test_image_cache_refuses_a_code_running_file(marker, tmp_path):
    from projects.image_classifier.data import ImageDataModule

    ImageDataModule(dataset="digits").setup("fit")  # writes the decoded cache
    [cache] = Path(".cache/images").glob("digits-*.pt")
    torch.save({"train": RunsCode(marker)}, cache)
    with pytest.raises(UserInputError, match=r"is not a trusted cache: .* delete it to decode digits again"):
        ImageDataModule(dataset="digits").setup("fit")


def test_video_weights_file_refuses_a_code_running_file(marker, tmp_path):
    from projects.video_classifier.model import TorchvisionVideoNetwork

    evil = plant(tmp_path / "kinetics.pth", marker)
    with pytest.raises(UserInputError, match="is not a trusted weights file"):
        TorchvisionVideoNetwork(num_classes=3, name="r3d_18", pretrained_weights=str(evil))


def test_video_frame_cache_refuses_a_pickled_array(marker, tmp_path):
    from projects.video_classifier.decoding import FrameCache

    cache = FrameCache(str(tmp_path / "frames"))
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not decoded: the cache entry is read first")
    entry = cache.path_for(video, (8, 8))
    entry.parent.mkdir(parents=True, exist_ok=True)
    np.save(entry, np.array([RunsCode(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(UserInputError, match="is not a plain array file"):
        cache.load(video, (8, 8))
