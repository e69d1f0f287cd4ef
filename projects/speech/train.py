"""Train, test and predict with the keyword spotter, or, with `task: connected` in a config (or `--task connected`),
the connected-digit recogniser (CTC).

uv run projects/speech/train.py fit --config configs/speech/quickstart.yaml
uv run projects/speech/train.py fit --config configs/speech/connected_quickstart.yaml
"""

import sys
from pathlib import Path

import yaml

from common.cli import TemplateCLI
from projects.speech.connected import ConnectedDigitsDataModule
from projects.speech.ctc import DigitStringRecognizer
from projects.speech.data import SpeechDataModule
from projects.speech.module import KeywordSpotter

# Per task: module, datamodule, the metric that picks the best checkpoint, and the values linked from the data.
TASKS = {
    "keywords": (KeywordSpotter, SpeechDataModule, "val/acc", "max",
                 (("data.class_names", "model.class_names"), ("data.n_mels", "model.n_mels"),
                  ("data.frames", "model.frames"))),
    "connected": (DigitStringRecognizer, ConnectedDigitsDataModule, "val/der", "min",
                  (("data.class_names", "model.class_names"), ("data.n_mels", "model.n_mels"))),
}  # fmt: skip


class SpeechCLI(TemplateCLI):
    """The template CLI with a `task` key, so that a config (and the run's saved `config.yaml`) names its task."""

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_argument(
            "--task", choices=list(TASKS), default="keywords", help="keywords or connected digits"
        )


def task_of(args: list[str]) -> str:
    """The task a command line names by `--task` or in a `--config` file; the last one wins, as in the CLI."""
    task = "keywords"
    for index, argument in enumerate(args):
        name, equals, value = argument.partition("=")
        if not equals and index + 1 < len(args):
            value = args[index + 1]
        if name == "--task":
            task = value
        elif name == "--config" and Path(value).is_file():
            task = (yaml.safe_load(Path(value).read_text()) or {}).get("task", task)
    if task not in TASKS:
        sys.exit(
            f"error: task {task!r} is not one of {', '.join(TASKS)}; set --task or `task:` in the config"
        )
    return task


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    model, datamodule, monitor, mode, links = TASKS[task_of(sys.argv[1:] if args is None else args)]
    return SpeechCLI(model, datamodule, monitor=monitor, mode=mode, links=links, args=args, run=run)


if __name__ == "__main__":
    main()
