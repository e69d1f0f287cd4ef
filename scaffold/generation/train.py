"""Train, test and sample from the project_name VAE.

uv run python projects/project_name/train.py fit --config configs/project_name/quickstart.yaml
"""

from common.cli import TemplateCLI
from projects.project_name.data import ProjectNameDataModule
from projects.project_name.module import ProjectNameVAE

LINKED = ("channels", "image_size")  # what the data knows and the model needs


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return TemplateCLI(
        ProjectNameVAE,
        ProjectNameDataModule,
        monitor="val/nelbo",
        mode="min",
        links=tuple((f"data.{name}", f"model.{name}") for name in LINKED),
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
