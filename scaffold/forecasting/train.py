"""Train, test and predict with the project_name forecaster.

uv run python projects/project_name/train.py fit --config configs/project_name/quickstart.yaml
"""

from common.cli import TemplateCLI
from projects.project_name.data import ProjectNameDataModule
from projects.project_name.module import ProjectNameForecaster

LINKED = ("input_channels", "output_channels", "lookback", "horizon", "target_names")  # the data's shapes


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return TemplateCLI(
        ProjectNameForecaster,
        ProjectNameDataModule,
        monitor="val/mse",
        mode="min",
        links=tuple((f"data.{name}", f"model.{name}") for name in LINKED),
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
