"""Train/evaluate/sample a DCGAN. Quickstart: uv run projects/dcgan/train.py fit --config configs/dcgan/digits.yaml"""

from common.cli import TemplateCLI
from projects.dcgan.data import GanImageDataModule
from projects.dcgan.module import DCGAN


class DCGANCLI(TemplateCLI):
    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        trainer = (self.config[self.subcommand] if self.subcommand else self.config).trainer
        # Each backward pass trains one network (the other is detached or frozen), so DDP must expect parameters
        # without a gradient (Lightning issue #20328): `--trainer.strategy ddp` picks the registered variant.
        if trainer.strategy in ("ddp", "ddp_spawn"):
            trainer.strategy = f"{trainer.strategy}_find_unused_parameters_true"


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return DCGANCLI(
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
