"""Train, test and predict with the project_name classifier.

uv run python projects/project_name/train.py fit --config configs/project_name/quickstart.yaml
"""

from common.cli import TemplateCLI
from projects.project_name.data import ProjectNameDataModule
from projects.project_name.module import ProjectNameClassifier

LINKED = ("input_size", "class_names")  # what the data knows and the model needs


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return TemplateCLI(
        ProjectNameClassifier,
        ProjectNameDataModule,
        monitor="val/acc",
        mode="max",
        links=tuple((f"data.{name}", f"model.{name}") for name in LINKED),
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
