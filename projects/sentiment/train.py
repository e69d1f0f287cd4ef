"""Train, test and predict with the sentiment classifier.

uv run projects/sentiment/train.py fit --config configs/sentiment/quickstart.yaml
"""

from common.cli import TemplateCLI
from projects.sentiment.data import SentimentDataModule
from projects.sentiment.module import SentimentClassifier


def main(args: list[str] | None = None, run: bool = True) -> TemplateCLI:
    return TemplateCLI(
        SentimentClassifier,
        SentimentDataModule,
        monitor="val/acc",
        mode="max",
        links=(("data.class_names", "model.class_names"), ("data.num_embeddings", "model.vocab_size")),
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
