"""Train, test and predict with the image classifier.

uv run projects/image_classifier/train.py fit --config configs/image_classifier/digits.yaml
"""

from common.cli import TemplateCLI
from projects.image_classifier.data import ImageDataModule
from projects.image_classifier.module import ImageClassifier


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return TemplateCLI(
        ImageClassifier,
        ImageDataModule,
        monitor="val/acc",
        mode="max",
        links=(("data.class_names", "model.class_names"), ("data.in_channels", "model.in_channels")),
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
