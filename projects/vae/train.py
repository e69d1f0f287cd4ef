"""Train, test and sample from the VAE.

uv run python projects/vae/train.py fit --config configs/vae/quickstart.yaml
"""

from common.cli import TemplateCLI
from projects.vae.data import VaeDataModule
from projects.vae.module import VariationalAutoencoder

LINKED = ("channels", "image_size", "class_names")  # what the data knows and the model needs


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return TemplateCLI(
        VariationalAutoencoder,
        VaeDataModule,
        monitor="val/nll",
        mode="min",
        links=tuple((f"data.{name}", f"model.{name}") for name in LINKED),
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
