"""Train, test and predict with the forecaster.

uv run projects/time_series/train.py fit --config configs/time_series/quickstart.yaml
"""

from common.cli import TemplateCLI
from projects.time_series.data import ForecastDataModule
from projects.time_series.module import Forecaster

# What the data knows and the model needs: shapes, target names, the scaler and the MASE denominators.
LINKED = (
    "input_channels",
    "output_channels",
    "lookback",
    "horizon",
    "target_names",
    "target_mean",
    "target_std",
    "mase_scale",
)


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return TemplateCLI(
        Forecaster,
        ForecastDataModule,
        monitor="val/mse",
        mode="min",
        links=tuple((f"data.{name}", f"model.{name}") for name in LINKED),
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
