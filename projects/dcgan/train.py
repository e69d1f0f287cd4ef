"""Train/evaluate/sample a DCGAN. Quickstart: uv run projects/dcgan/train.py fit --config configs/dcgan/digits.yaml"""

from common.cli import TemplateCLI
from projects.dcgan.data import GanImageDataModule
from projects.dcgan.module import DCGAN


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return TemplateCLI(
        DCGAN,
        GanImageDataModule,
        monitor="val/classifier_fd",
        mode="min",
        links=(("data.image_channels", "model.image_channels"), ("data.image_size", "model.image_size")),
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
