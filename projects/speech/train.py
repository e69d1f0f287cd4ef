"""Train, test and predict with the keyword spotter.

uv run projects/speech/train.py fit --config configs/speech/quickstart.yaml
"""

from common.cli import TemplateCLI
from projects.speech.data import SpeechDataModule
from projects.speech.module import KeywordSpotter


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return TemplateCLI(
        KeywordSpotter,
        SpeechDataModule,
        monitor="val/acc",
        mode="max",
        links=(
            ("data.class_names", "model.class_names"),
            ("data.n_mels", "model.n_mels"),
            ("data.frames", "model.frames"),
        ),
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
