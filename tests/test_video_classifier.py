"""Tests for the video classifier: procedural data, real mp4 decoding, clip sampling, cache, models, CLI."""

import csv
import os
import random
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader
from torchvision.models import video as torchvision_video

from common.callbacks import ConfusionMatrixLogger
from common.errors import UserInputError
from common.media import log_video
from projects.video_classifier import data as video_data
from projects.video_classifier import decoding
from projects.video_classifier.data import (
    VideoDataModule,
    clip_frame_indices,
    collate_videos,
    eval_clip_starts,
    train_clip_starts,
)
from projects.video_classifier.decoding import decode_video, write_video
from projects.video_classifier.model import FrameGRU, SingleFrame, SmallR2Plus1D, TorchvisionVideoNetwork
from projects.video_classifier.module import VideoClassifier
from projects.video_classifier.procedural import (
    MOTIONS,
    PROCEDURAL_CLASSES,
    render_procedural_video,
    write_procedural_videos,
)
from projects.video_classifier.train import main

CONFIGS = sorted(
    p for p in Path(__file__).parents[1].glob("configs/video_classifier/*.yaml") if p.name != "sweep.yaml"
)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: small convolutions run faster without thread hand-offs, and the machine is shared.

    (conftest.py already runs each test in its own folder with W&B off.)
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def video_folder(tmp_path) -> Path:
    """12 real mp4 files: the first four procedural classes, three videos each, 12 frames of 32x32."""
    write_procedural_videos(str(tmp_path / "videos"), videos_per_class=3, frames=12, size=32, num_classes=4)
    return tmp_path / "videos"


def small_datamodule(**overrides) -> VideoDataModule:
    settings = dict(
        clip_len=4, frame_stride=2, clips_per_video=2, batch_size=4, num_workers=0, procedural_frames=12
    )
    return VideoDataModule(**(settings | overrides))


def best_shift(before: np.ndarray, after: np.ndarray, reach: int = 10) -> tuple[int, int]:
    """The (dx, dy) torus shift of `before` that best matches `after` (both (H, W) grey frames)."""
    scores = {
        (dx, dy): -np.abs(np.roll(before, (dy, dx), axis=(0, 1)) - after).sum()
        for dx in range(-reach, reach + 1)
        for dy in range(-reach, reach + 1)
    }
    return max(scores, key=scores.get)


def test_procedural_videos_move_as_their_class_says():
    for index, (name, motion) in enumerate(MOTIONS.items()):
        video = render_procedural_video(index, frames=6, size=32).astype(float).mean(axis=-1)  # (T, H, W)
        assert video.shape == (6, 32, 32)
        dx, dy = best_shift(video[0], video[4])  # 4 frames at 1.28-2 pixels a frame: 5-8 pixels
        if motion is None:  # a turning shape stays put (its best match may wobble as it turns)
            assert max(abs(dx), abs(dy)) <= 4 and np.abs(video[0] - video[4]).mean() > 1, (name, dx, dy)
        else:
            assert np.sign(dx) == motion[0] and np.sign(dy) == motion[1], (name, dx, dy)
            assert 4 <= max(abs(dx), abs(dy)) <= 9, (name, dx, dy)
    assert np.array_equal(render_procedural_video(3), render_procedural_video(3))  # fixed per index
    assert not np.array_equal(render_procedural_video(3, seed=0), render_procedural_video(3, seed=1))


def test_clip_sampling_indices_at_train_and_eval_time():
    # 24 frames, clips of 8 frames every 2nd: a clip spans 15 frames, so starts run from 0 to 9.
    assert eval_clip_starts(24, clip_len=8, frame_stride=2, clips=3) == [0, 4, 9]  # round(4.5) == 4
    assert eval_clip_starts(24, clip_len=8, frame_stride=2, clips=1) == [4]
    assert clip_frame_indices(9, 24, clip_len=8, frame_stride=2).tolist() == [9, 11, 13, 15, 17, 19, 21, 23]
    starts = {train_clip_starts(24, 8, 2, random.Random(seed))[0] for seed in range(300)}
    assert starts == set(range(10))
    # A 5-frame video is shorter than one clip: start at 0, repeat the last frame.
    assert eval_clip_starts(5, 8, 2, 3) == [0, 0, 0]
    assert clip_frame_indices(0, 5, 8, 2).tolist() == [0, 2, 4, 4, 4, 4, 4, 4]


def test_folder_of_real_mp4_files_goes_through_the_pipeline(video_folder, tmp_path):
    decoded = decode_video(video_folder / "right" / "00001.mp4", (32, 32))
    rendered = render_procedural_video(1, frames=12, size=32, num_classes=4)
    assert decoded.shape == rendered.shape == (12, 32, 32, 3)
    assert np.abs(decoded.astype(float) - rendered).mean() < 8  # lossy H.264 of noisy frames
    assert decode_video(video_folder / "right" / "00001.mp4", (16, 24)).shape == (12, 16, 24, 3)

    datamodule = small_datamodule(
        data_dir=str(video_folder), cache_dir=str(tmp_path / "cache"), val_fraction=0.34
    )
    assert datamodule.class_names == ["down", "left", "right", "up"]  # sorted folder names
    datamodule.setup("fit")
    assert (
        len(datamodule.datasets["train"]) == 8 and len(datamodule.datasets["val"]) == 4
    )  # one per class held out
    train_batch = next(iter(datamodule.train_dataloader()))
    assert train_batch["clips"].shape == (4, 1, 3, 4, 32, 32)  # (B, K, C, T, H, W)
    val_batch = next(iter(datamodule.val_dataloader()))
    assert val_batch["clips"].shape == (4, 2, 3, 4, 32, 32)
    assert sorted(val_batch["labels"].tolist()) == [0, 1, 2, 3]
    assert val_batch["skipped"] == []


def test_decoded_frames_cache_is_hit_on_the_second_epoch(video_folder, tmp_path, monkeypatch):
    datamodule = small_datamodule(data_dir=str(video_folder), cache_dir=str(tmp_path / "cache"))
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    cache = dataset.load_frames.cache
    first_epoch = [item["clips"] for item in dataset]
    # `setup` decoded (and cached) the first video, to check that the folder holds a readable one.
    assert (cache.hits, cache.misses) == (1, len(dataset))
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(dataset) + 1  # + the checked val video

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the frames are cached")

    monkeypatch.setattr(decoding, "decode_video", no_decoding)
    second_epoch = [item["clips"] for item in dataset]
    assert (cache.hits, cache.misses) == (len(dataset) + 1, len(dataset))
    assert all(a.shape == b.shape for a, b in zip(first_epoch, second_epoch, strict=True))
    # A rewritten video gets a new key: the stale frames are not served.
    path = dataset.load_frames.paths[0]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        dataset[0]


def test_corrupt_video_is_skipped_with_a_warning_and_counted(video_folder, tmp_path):
    (video_folder / "left" / "broken.mp4").write_bytes(b"not a video" * 50)
    datamodule = small_datamodule(data_dir=str(video_folder), cache_dir=None, val_fraction=0.34)
    datamodule.setup("fit")
    with pytest.warns(UserWarning, match="skipping unreadable video .*broken.mp4"):
        batches = [collate_videos(list(datamodule.datasets[stage])) for stage in ("train", "val")]
    assert [skipped for batch in batches for skipped in batch["skipped"]] == [
        str(video_folder / "left" / "broken.mp4")
    ]
    assert (
        sum(len(batch["labels"]) for batch in batches) == sum(len(batch["clips"]) for batch in batches) == 12
    )

    # Through the CLI: the epoch completes and the skip is logged.
    args = [
        "fit",
        f"--data.data_dir={video_folder}",
        "--data.num_workers=0",
        "--data.batch_size=16",
        "--data.clip_len=4",
    ]
    args += [
        "--trainer.max_epochs=1",
        "--trainer.accelerator=cpu",
        "--model.network=projects.video_classifier.model.SmallR2Plus1D",
        "--model.network.init_args.width=4",
        "--test_after_fit=false",
    ]
    main(args + ["--data.val_fraction=0.34", "--data.cache_dir=null", "--trainer.enable_progress_bar=false"])
    metrics = next(Path("runs").rglob("metrics.csv")).read_text()
    rows = list(csv.DictReader(metrics.splitlines()))
    skipped = sum(
        float(row[key])
        for row in rows
        for key in ("train/skipped_videos", "val/skipped_videos")
        if row.get(key)
    )
    assert skipped == 1


def test_batches_of_only_unreadable_videos_do_not_crash_the_epoch():
    module = VideoClassifier(partial(SmallR2Plus1D, width=4), ["a", "b"], example_clips=0)
    unreadable = collate_videos([{"skipped": "x.mp4"}, {"skipped": "y.mp4"}])
    trainer = Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        num_sanity_val_steps=0, callbacks=[ConfusionMatrixLogger()],
    )  # fmt: skip
    loader = partial(DataLoader, batch_size=None, collate_fn=lambda batch: batch)  # the batches as they are
    trainer.fit(
        module, train_dataloaders=loader([unreadable]), val_dataloaders=loader([unreadable, unreadable])
    )
    assert trainer.callback_metrics["train/skipped_videos"] == 2
    assert trainer.callback_metrics["val/skipped_videos"] == 4


class FirstPixelNetwork(torch.nn.Module):
    """Logits `[x, -x]` where x is each clip's first pixel: clip scores a test can set by hand."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        first = clips[:, 0, 0, 0, 0]  # (N,)
        return torch.stack([first, -first], dim=1)


def test_video_accuracy_averages_clip_logits():
    clips = torch.zeros(2, 2, 3, 1, 1, 1)  # two videos of two 1-pixel clips
    clips[0, :, 0, 0, 0, 0] = torch.tensor([1.0, -3.0])  # clip votes 0 and 1, mean logits [-1, 1] -> 1
    clips[1, :, 0, 0, 0, 0] = torch.tensor([2.0, 2.0])  # both clips vote 0
    batch = {"clips": clips, "labels": torch.tensor([0, 0]), "videos": ["a", "b"], "skipped": []}
    module = VideoClassifier(FirstPixelNetwork, ["a", "b"], example_clips=0)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(
        module, DataLoader([batch], batch_size=None, collate_fn=lambda batch: batch), verbose=False
    )
    assert trainer.callback_metrics["val/clip_acc"] == 0.75  # 3 of 4 clips say class 0
    assert trainer.callback_metrics["val/video_acc"] == 0.5  # video 0 is wrong once its clips are averaged
    rows = module.predict_step(batch, 0)
    assert [row["class"] for row in rows] == ["b", "a"]
    assert rows[0]["probability"] == pytest.approx(torch.tensor([-1.0, 1.0]).softmax(0)[1].item(), abs=1e-6)


def test_bad_folders_give_one_line_errors(tmp_path, video_folder):
    with pytest.raises(UserInputError, match="does not exist"):
        VideoDataModule(data_dir=str(tmp_path / "missing"))
    (tmp_path / "no_videos" / "cats").mkdir(parents=True)
    (tmp_path / "no_videos" / "cats" / "notes.txt").write_text("hello")
    with pytest.raises(UserInputError, match="no videos .* found in class folders"):
        VideoDataModule(data_dir=str(tmp_path / "no_videos"))
    (video_folder / "jump").mkdir()
    with pytest.raises(
        UserInputError, match="class folder .*jump has no videos; add videos to it or remove it"
    ):
        VideoDataModule(data_dir=str(video_folder))
    # The CLI prints the message alone, no traceback.
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--data.data_dir={video_folder}"])
    assert str(exit_info.value).startswith("error: class folder") and "\n" not in str(exit_info.value)
    with pytest.raises(UserInputError, match="predict needs a folder of videos: set --data.predict_dir"):
        small_datamodule().setup("predict")
    with pytest.raises(UserInputError, match="procedural_classes=11 must be between 2 and 10"):
        VideoDataModule(procedural_classes=11)
    with pytest.raises(UserInputError, match="split=4 is not a UCF101 split; use 1, 2 or 3"):
        VideoDataModule(split=4)
    with pytest.raises(UserInputError, match="no videos .* --data.predict_dir"):
        small_datamodule(predict_dir=str(tmp_path / "no_videos")).setup("predict")


def test_a_folder_where_no_video_decodes_is_a_one_line_error(tmp_path, video_folder):
    root = tmp_path / "fake_videos"
    for name, content in [("left/a.mp4", b"text renamed to .mp4\n" * 20), ("left/b.mp4", b""),
                          ("right/c.mp4", b"\x00" * 100), ("right/d.avi", b"")]:  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--data.data_dir={root}", "--data.num_workers=0", "--data.cache_dir=null",
              "--trainer.fast_dev_run=true", "--model.network=projects.video_classifier.model.SmallR2Plus1D",
              "--model.network.init_args.width=4"])  # fmt: skip
    text = str(exit_info.value.code)
    assert text.startswith(
        f"error: none of the 2 train videos under {root} can be decoded (first: {root}/left/a.mp4"
    )
    assert text.endswith("check that they are real video files") and "\n" not in text
    with pytest.raises(UserInputError, match="none of the 2 predict videos under .*right can be decoded"):
        small_datamodule(predict_dir=str(root / "right"), cache_dir=None).setup("predict")
    # One readable video is enough to run; the unreadable ones are skipped with a warning, as before.
    (root / "left" / "good.mp4").write_bytes(min((video_folder / "left").iterdir()).read_bytes())
    small_datamodule(predict_dir=str(root / "left"), cache_dir=None).setup("predict")
    # Classes of a single video leave the validation split empty: also an error, not a silent run.
    for name in ("left", "right"):
        (tmp_path / "single" / name).mkdir(parents=True)
        (tmp_path / "single" / name / "one.mp4").write_bytes(
            min((video_folder / name).iterdir()).read_bytes()
        )
    with pytest.raises(
        UserInputError, match="the val split of .*single has no videos; give every class folder two"
    ):
        small_datamodule(data_dir=str(tmp_path / "single"), cache_dir=None).setup("fit")


@pytest.mark.parametrize(
    ("option", "message"),
    [("batch_size=0", "batch_size=0 must be at least 1; set --data.batch_size"),
     ("num_workers=-2", "num_workers=-2 must be at least 0; set --data.num_workers"),
     ("clip_len=0", "clip_len=0 must be at least 1; set --data.clip_len")],
)  # fmt: skip
def test_bad_loader_sizes_give_one_line_errors(option, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--data.{option}", "--trainer.fast_dev_run=true"])
    assert str(exit_info.value.code) == f"error: {message}"


def write_ucf101_fixture(folder: Path) -> tuple[Path, Path]:
    """A 4-video UCF101 look-alike (`UCF-101/<class>/*.avi`, `ucfTrainTestlist/{train,test}list01.txt`)."""
    root, splits = folder / "UCF-101", folder / "ucfTrainTestlist"
    for name in (
        "v_ApplyEyeMakeup_g01_c01",
        "v_ApplyEyeMakeup_g08_c01",
        "v_HandstandPushups_g01_c01",
        "v_HandstandPushups_g08_c02",
    ):
        write_video(
            root / name.split("_")[1] / f"{name}.avi",
            render_procedural_video(0, frames=4, size=32),
            codec="mpeg4",
        )
    splits.mkdir(parents=True, exist_ok=True)
    # The real lists spell one folder "HandStandPushups"; matching ignores case.
    (splits / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nHandStandPushups/v_HandStandPushups_g08_c02.avi 2\n"
    )
    (splits / "testlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nHandStandPushups/v_HandStandPushups_g01_c01.avi\r\n\n"
    )
    return root, splits


def extra_config_args(config: Path, tmp_path: Path) -> list[str]:
    """What a shipped config leaves to the user (data and weights files), pointed at small fixtures."""
    text, args = config.read_text(), []
    if "data_dir:" in text:
        root, splits = write_ucf101_fixture(tmp_path)
        args += [
            f"--data.data_dir={root}",
            f"--data.split_dir={splits}",
            f"--data.cache_dir={tmp_path / 'cache'}",
        ]
    if "pretrained_weights:" in text:
        name = next(name for name in ("r2plus1d_18", "r3d_18", "mc3_18") if name in text)
        torch.save(getattr(torchvision_video, name)().state_dict(), tmp_path / "weights.pth")
        args.append(f"--model.network.init_args.pretrained_weights={tmp_path / 'weights.pth'}")
    return args


def test_ucf101_split_files_are_parsed(tmp_path):
    root, splits = write_ucf101_fixture(tmp_path)
    datamodule = small_datamodule(data_dir=str(root), split_dir=str(splits), cache_dir=None)
    datamodule.setup("fit")
    train, val = datamodule.datasets["train"], datamodule.datasets["val"]
    assert [Path(name).name for name in train.names] == [
        "v_ApplyEyeMakeup_g08_c01.avi",
        "v_HandstandPushups_g08_c02.avi",
    ]
    assert [Path(name).name for name in val.names] == [
        "v_ApplyEyeMakeup_g01_c01.avi",
        "v_HandstandPushups_g01_c01.avi",
    ]
    assert train.labels == val.labels == [0, 1]
    assert datamodule.datasets["test"] is val
    assert val[0]["clips"].shape == (2, 3, 4, 32, 32)
    with pytest.raises(UserInputError, match="split file .*list02.txt does not exist"):
        small_datamodule(data_dir=str(root), split_dir=str(splits), split=2).setup("fit")
    (splits / "trainlist03.txt").write_text("Archery/v_Archery_g01_c01.avi 3\n")
    with pytest.raises(
        UserInputError, match="1 videos listed in .*trainlist03.txt are missing .*v_Archery_g01_c01.avi"
    ):
        small_datamodule(data_dir=str(root), split_dir=str(splits), split=3).setup("fit")
    (splits / "trainlist02.txt").write_text("\n")  # e.g. truncated by a failed copy
    with pytest.raises(UserInputError, match="split file .*trainlist02.txt lists no videos"):
        small_datamodule(data_dir=str(root), split_dir=str(splits), split=2).setup("fit")


NETWORKS = {
    "small_r2plus1d": partial(SmallR2Plus1D, width=4),
    "frame_gru": partial(FrameGRU, width=4, hidden_size=8),
    "single_frame": partial(SingleFrame, width=4),
    "r2plus1d_18": partial(TorchvisionVideoNetwork, name="r2plus1d_18"),
    "r3d_18": partial(TorchvisionVideoNetwork, name="r3d_18"),
    "mc3_18": partial(TorchvisionVideoNetwork, name="mc3_18"),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_network_gives_logits_and_every_parameter_a_gradient(name):
    torch.manual_seed(0)
    network = NETWORKS[name](5)
    clips = torch.randn(2, 3, 4, 32, 32)  # (B, C, T, H, W)
    logits = network(clips)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.square().mean().backward()
    for parameter_name, parameter in network.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


def test_pretrained_weights_load_with_a_new_head(tmp_path):
    kinetics = torchvision_video.r3d_18(num_classes=400)
    torch.save(kinetics.state_dict(), tmp_path / "r3d_18.pth")
    network = TorchvisionVideoNetwork(7, "r3d_18", str(tmp_path / "r3d_18.pth"))
    assert network.network.fc.out_features == 7
    assert torch.equal(network.network.stem[0].weight, kinetics.stem[0].weight)
    assert torch.equal(network.network.layer4[1].conv2[0].weight, kinetics.layer4[1].conv2[0].weight)
    with pytest.raises(UserInputError, match="does not fit r2plus1d_18"):
        TorchvisionVideoNetwork(7, "r2plus1d_18", str(tmp_path / "r3d_18.pth"))
    with pytest.raises(UserInputError, match="weights file .*nothing.pth does not exist"):
        TorchvisionVideoNetwork(7, "mc3_18", str(tmp_path / "nothing.pth"))


def fit_and_score(network, datamodule: VideoDataModule, epochs: int) -> float:
    torch.manual_seed(0)
    module = VideoClassifier(network, datamodule.class_names, lr=1e-2, example_clips=0)
    trainer = Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return float(trainer.callback_metrics["val/video_acc"])


def test_temporal_model_learns_the_procedural_task_where_a_single_frame_cannot():
    # Left, right, up, down: every frame alone looks the same whatever the class (chance = 25%).
    datamodule = small_datamodule(
        procedural_classes=4, procedural_videos=192, batch_size=16, clip_len=6, frame_stride=1
    )
    temporal = fit_and_score(partial(SmallR2Plus1D, width=8), datamodule, epochs=12)
    single_frame = fit_and_score(partial(SingleFrame, width=8), datamodule, epochs=6)
    assert temporal >= 0.9, temporal
    assert single_frame <= 0.5, single_frame


def test_fit_on_procedural_data_and_predict_a_folder_to_csv(video_folder, tmp_path):
    common = [
        "--data.num_workers=0",
        "--data.batch_size=4",
        "--data.clip_len=4",
        "--model.network=projects.video_classifier.model.SmallR2Plus1D",
        "--model.network.init_args.width=4",
    ]
    cli = main(
        [
            "fit",
            "--trainer.fast_dev_run=true",
            "--data.procedural_videos=8",
            "--test_after_fit=false",
            *common,
        ]
    )
    assert cli.model.class_names == PROCEDURAL_CLASSES
    assert {"train/loss", "val/video_acc", "val/clip_acc", "val/video_top5_acc"} <= set(
        cli.trainer.callback_metrics
    )

    (video_folder / "up" / "broken.mp4").write_bytes(b"\x00" * 100)
    output = tmp_path / "predictions.csv"
    args = [
        "predict",
        f"--data.data_dir={video_folder}",
        f"--data.predict_dir={video_folder}",
        f"--prediction_writer.output={output}",
    ]
    main(args + [*common, "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"])
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 13 and set(rows[0]) == {"video", "class", "probability"}
    readable = [row for row in rows if not row["video"].endswith("broken.mp4")]
    assert all(
        row["class"] in ["left", "right", "up", "down"] and 0.25 <= float(row["probability"]) <= 1
        for row in readable
    )
    assert [row["class"] for row in rows if row["video"].endswith("broken.mp4")] == [""]


def test_log_video_writes_a_frame_strip_without_wandb(tmp_path):
    trainer = Trainer(logger=CSVLogger(tmp_path / "logs"), default_root_dir=tmp_path)
    frames = torch.randint(0, 256, (5, 3, 8, 10), dtype=torch.uint8)  # (T, C, H, W)
    log_video(trainer, "val/example_clips", frames, fps=4)
    (strip,) = (tmp_path / "logs").rglob("val_example_clips_step*.png")
    from PIL import Image

    assert Image.open(strip).size == (5 * 11 + 1, 8 + 2)  # five frames in a row with 1-pixel borders


def test_log_video_sends_an_mp4_to_wandb(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbLogger(save_dir=str(tmp_path), project="video_classifier", offline=True)
    trainer = Trainer(logger=logger, default_root_dir=tmp_path)
    frames = torch.randint(0, 256, (6, 3, 15, 20), dtype=torch.uint8)  # odd height: cropped to even
    log_video(trainer, "val/example_clips", frames, fps=4, caption="left->right")
    (video,) = tmp_path.rglob("media/val_example_clips_step*.mp4")
    assert decode_video(video, (14, 20)).shape == (6, 14, 20, 3)
    logger.experiment.finish()
    assert list((tmp_path / "wandb").rglob("*.mp4"))  # W&B copied the file into its run


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.name)
def test_shipped_configs_instantiate(config, tmp_path):
    cli = main(["--config", str(config), *extra_config_args(config, tmp_path)], run=False)
    assert cli.model.class_names == cli.datamodule.class_names
    assert cli.trainer.max_epochs == yaml.safe_load(config.read_text())["trainer"]["max_epochs"]


def test_a_training_clip_depends_on_seed_epoch_and_index_alone(tmp_path):
    """What makes a resumed run exact: an item is the same in any process or worker, and new every epoch."""
    frames = np.random.default_rng(0).integers(0, 255, (24, 40, 40, 3), dtype=np.uint8)

    def dataset(seed: int) -> video_data.ClipDataset:
        return video_data.ClipDataset(lambda i: frames, [0, 1], ["a", "b"], clip_len=4, frame_stride=1,
                                      clips_per_video=1, crop_size=16, train=True, horizontal_flip=True, seed=seed)  # fmt: skip

    first, again = dataset(7), dataset(7)
    again[1]  # drawing another item first changes nothing
    assert torch.equal(first[0]["clips"], again[0]["clips"])
    again.set_epoch(1)
    assert not torch.equal(first[0]["clips"], again[0]["clips"])
    assert not torch.equal(first[0]["clips"], dataset(8)[0]["clips"])
    loader = video_data.ResumableLoader(again, batch_size=1, num_workers=1, collate_fn=collate_videos)
    loader.sampler.epoch = 3  # as Lightning's set_epoch does; the worker gets the dataset with that epoch
    batch = next(iter(loader))
    first.set_epoch(3)
    assert torch.equal(batch["clips"][0], first[0]["clips"])
