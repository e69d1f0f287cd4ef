"""Train, test and predict with the video classifier.

uv run projects/video_classifier/train.py fit --config configs/video_classifier/procedural.yaml
"""

from common.cli import TemplateCLI
from projects.video_classifier.data import VideoDataModule
from projects.video_classifier.module import VideoClassifier


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return TemplateCLI(
        VideoClassifier,
        VideoDataModule,
        monitor="val/video_acc",
        mode="max",
        links=(("data.class_names", "model.class_names"),),
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
