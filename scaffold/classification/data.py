"""`ProjectNameDataModule`: labelled feature rows from a CSV file, or an offline synthetic set when none is given.

Swap `read_examples` for your own reader (images, audio, text...) and the rest keeps working: it only needs
float features `(N, input_size)` and int64 labels `(N,)` per split.
"""

from pathlib import Path

import pandas as pd
import torch
from lightning.pytorch import LightningDataModule

from common.data import resolve_path, tensor_loader
from common.errors import UserInputError, require_at_least

Split = tuple[torch.Tensor, torch.Tensor]  # features (N, input_size) float32, labels (N,) int64


def read_table(path: Path, option: str) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserInputError(f"cannot read {option}={path} as CSV ({error}); check the file") from None
    if table.empty:
        raise UserInputError(f"{option}={path} has no rows; give a CSV with a header and one row per example")
    return table


def feature_tensor(table: pd.DataFrame, path: Path) -> torch.Tensor:
    """The columns of `table` as float32 `(N, columns)`: numeric and finite, or a one-line error naming the column."""
    for column in table.columns:
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise UserInputError(f"column '{column}' of {path} is not numeric; drop or encode it")
    values = torch.tensor(table.to_numpy(dtype="float32"))
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        row, column = bad[0].tolist()
        raise UserInputError(f"{path} has {len(bad)} missing or infinite values (first: row {row + 2}, column "
                             f"'{table.columns[column]}'); fill or drop them")  # fmt: skip
    return values


def synthetic_clusters(classes: int, features: int, size: int, seed: int) -> Split:
    """`size` points of `classes` classes, each class two Gaussian clusters (so a linear model is not enough)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes * 2, features, generator=generator) * 1.5
    cluster = torch.randint(0, classes * 2, (size,), generator=generator)
    points = centres[cluster] + torch.randn(size, features, generator=generator)
    return points, cluster % classes


class ProjectNameDataModule(LightningDataModule):
    """Feature rows and their classes, split at random into train, validation and test.

    Args:
        data_file: CSV with a header, numeric feature columns and a label column; `$DATA_ROOT/...` is expanded.
            `None`: the offline synthetic set (Gaussian clusters).
        label_column: the CSV column that holds each row's class (names or integers).
        predict_file: CSV of rows to classify with `predict` (the same feature columns; a label column is
            ignored); default: the test split.
        val_fraction: share of the rows held out for validation.
        test_fraction: share of the rows held out for testing.
        synthetic_classes: classes of the synthetic set.
        synthetic_features: features per example of the synthetic set.
        synthetic_size: examples in the synthetic set.
        batch_size: training batch size.
        eval_batch_size: validation, test and predict batch size.
        num_workers: DataLoader worker processes (batches are slices of in-memory tensors, so 0 is fine).
        split_seed: seed of the split (and of the synthetic set).
    """

    def __init__(
        self,
        data_file: str | None = None,
        label_column: str = "label",
        predict_file: str | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        synthetic_classes: int = 4,
        synthetic_features: int = 16,
        synthetic_size: int = 4000,
        batch_size: int = 64,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        split_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        require_at_least(1, batch_size=batch_size, eval_batch_size=eval_batch_size)
        require_at_least(2, synthetic_classes=synthetic_classes, synthetic_size=synthetic_size)
        require_at_least(0, num_workers=num_workers)
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise UserInputError("val_fraction and test_fraction must be in (0, 1) and sum to less than 1")
        self.data_file = resolve_path(data_file, "data.data_file")
        self.predict_path = resolve_path(predict_file, "data.predict_file")
        self.data_source = str(self.data_file) if self.data_file else (
            f"synthetic: {synthetic_size} points in {synthetic_classes} classes of Gaussian clusters")  # fmt: skip
        self.splits: dict[str, Split] = {}
        self._examples: tuple[torch.Tensor, torch.Tensor, list[str], list[str]] | None = None

    def read_examples(self) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
        """Every example: features `(N, input_size)`, labels `(N,)`, the class names, the feature names."""
        if self._examples is None:
            hp = self.hparams
            if self.data_file is None:
                features, labels = synthetic_clusters(hp.synthetic_classes, hp.synthetic_features,
                                                      hp.synthetic_size, hp.split_seed)  # fmt: skip
                names = [f"x{index}" for index in range(hp.synthetic_features)]
                self._examples = features, labels, [f"class_{c}" for c in range(hp.synthetic_classes)], names
            else:
                table = read_table(self.data_file, "data.data_file")
                if hp.label_column not in table.columns:
                    raise UserInputError(f"{self.data_file} has no column '{hp.label_column}' (it has "
                                         f"{', '.join(map(str, table.columns))}); set --data.label_column")  # fmt: skip
                codes, classes = pd.factorize(table.pop(hp.label_column), sort=True)
                if len(classes) < 2 or (codes < 0).any():
                    raise UserInputError(f"the label column of {self.data_file} needs two or more classes and no "
                                         "empty cells")  # fmt: skip
                features = feature_tensor(table, self.data_file)
                self._examples = (
                    features,
                    torch.as_tensor(codes),
                    [str(c) for c in classes],
                    list(table.columns),
                )
        return self._examples

    @property
    def class_names(self) -> list[str]:
        return self.read_examples()[2]

    @property
    def input_size(self) -> int:
        return self.read_examples()[0].shape[1]

    def setup(self, stage: str) -> None:
        if self.splits:
            return
        features, labels, _, _ = self.read_examples()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.hparams.split_seed))
        val = int(len(order) * self.hparams.val_fraction)
        test = int(len(order) * self.hparams.test_fraction)
        if min(val, test, len(order) - val - test) < 1:
            raise UserInputError(f"{len(order)} rows are too few to split into train, validation and test")
        parts = {"val": order[:val], "test": order[val : val + test], "train": order[val + test :]}
        self.splits = {stage: (features[index], labels[index]) for stage, index in parts.items()}

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of each training feature, which the model standardises with."""
        self.setup("fit")
        features = self.splits["train"][0]
        return features.mean(dim=0), features.std(dim=0).clamp_min(1e-6)

    def predict_features(self) -> torch.Tensor:
        if self.predict_path is None:
            return self.splits["test"][0]
        table = read_table(self.predict_path, "data.predict_file")
        names = self.read_examples()[3]
        missing = [name for name in names if name not in table.columns]
        if missing:
            raise UserInputError(
                f"{self.predict_path} lacks the feature columns {missing}; give the training columns"
            )
        return feature_tensor(table[names], self.predict_path)

    def train_dataloader(self):
        return tensor_loader(*self.splits["train"], batch_size=self.hparams.batch_size, shuffle=True,
                             num_workers=self.hparams.num_workers)  # fmt: skip

    def val_dataloader(self):
        return tensor_loader(*self.splits["val"], batch_size=self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self):
        return tensor_loader(*self.splits["test"], batch_size=self.hparams.eval_batch_size, shuffle=False)

    def predict_dataloader(self):
        features = self.predict_features()
        return tensor_loader(features, torch.arange(len(features)), batch_size=self.hparams.eval_batch_size,
                             shuffle=False)  # fmt: skip
