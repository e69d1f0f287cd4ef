"""The sentiment project: tokenizer, local files and caches, bucketing, every model, predict, and bad inputs."""

import csv
import io
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, require_data
from tokenizers import Tokenizer

from common.optim import warmup_schedule
from projects.sentiment.batching import BucketBatchSampler, pad_batch
from projects.sentiment.data import SentimentDataModule
from projects.sentiment.model import (
    BagOfNgramsClassifier,
    ConvolutionalClassifier,
    RecurrentClassifier,
    TransformerClassifier,
    masked_max,
)
from projects.sentiment.module import SentimentClassifier
from projects.sentiment.reading import label_ids
from projects.sentiment.synthetic import write_synthetic_corpus
from projects.sentiment.tokenizer import load_tokenizer, train_tokenizer
from projects.sentiment.train import main

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: see conftest

QUICK = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--data.vocab_size=300",
         "--data.synthetic_size=200", "--data.cache_dir=cache"]  # fmt: skip
TINY = {
    "lstm": (RecurrentClassifier, {"embedding_dim": 16, "hidden_dim": 8}),
    "gru_attention": (
        RecurrentClassifier,
        {"cell": "gru", "pooling": "attention", "embedding_dim": 16, "hidden_dim": 8},
    ),
    "cnn": (ConvolutionalClassifier, {"embedding_dim": 16, "num_filters": 8}),
    "transformer": (
        TransformerClassifier,
        {"model_dim": 16, "num_heads": 2, "num_layers": 1, "feedforward_dim": 32},
    ),
    "bag_of_ngrams": (BagOfNgramsClassifier, {"num_buckets": 1024}),
}
REVIEWS = ["a charming , moving film", "dull and lifeless", "great acting", "boring plot , awful script",
           "truly wonderful", "tedious"]  # fmt: skip


def network_args(name: str) -> list[str]:
    network, init_args = TINY[name]
    args = [f"--model.network={network.__module__}.{network.__name__}"]
    return args + [f"--model.network.{key}={value}" for key, value in init_args.items()]


def write_tsv(path: Path, rows: list[tuple], header=("sentence", "label")) -> Path:
    path.write_text("\n".join("\t".join(map(str, row)) for row in [header, *rows]) + "\n", encoding="utf-8")
    return path


def labelled(count: int) -> list[tuple[str, int]]:
    return [(REVIEWS[index % len(REVIEWS)], [1, 0, 1, 0, 1, 0][index % 6]) for index in range(count)]


# ---- tokenizer ----


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_tokenizer_train_save_load_round_trip(kind, tmp_path):
    texts = [text for text, _ in labelled(60)] + [
        "ＣＨＡＲＭＩＮＧ film"
    ]  # full-width letters: NFKC folds them
    tokenizer = train_tokenizer(texts, kind, vocab_size=120, lowercase=True)
    assert tokenizer.get_vocab_size() <= 120 and tokenizer.token_to_id("[PAD]") == 0
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    for text in texts:
        assert loaded.encode(text).ids == tokenizer.encode(text).ids
    assert loaded.encode("ＣＨＡＲＭＩＮＧ").ids == loaded.encode("charming").ids


def test_broken_tokenizer_file_is_a_one_line_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(SystemExit, match="cannot load tokenizer .*tokenizer.json"):
        main(["fit", *QUICK, f"--data.tokenizer_file={tmp_path / 'tokenizer.json'}"])


# ---- hand-computed helpers ----


def test_pad_batch_and_labels_by_hand():
    batch = pad_batch(
        [{"input_ids": [5, 6, 7], "label": 1, "text": "a"}, {"input_ids": [8], "label": 0, "text": "b"}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["labels"].tolist() == [1, 0] and batch["texts"] == ["a", "b"]
    assert label_ids([0, "1", "positive", " negative "], ["negative", "positive"], "x") == [0, 1, 1, 0]
    hidden = torch.tensor([[[1.0], [5.0], [9.0]]])
    assert masked_max(hidden, torch.tensor([[True, True, False]])).item() == 5.0  # the padded 9 is ignored


def test_warmup_then_cosine_learning_rates_by_hand():
    """The module's schedule: 10 steps, 20% (2 steps) of linear warm-up to the peak, then cosine to 0."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = warmup_schedule(optimizer, 10, 0.2, "cosine")["lr_scheduler"]["scheduler"]
    used = []
    for _ in range(10):
        used.append(optimizer.param_groups[0]["lr"])  # the rate this step trains with
        optimizer.step()
        scheduler.step()
    warmup = [0.1 * (step + 1) / 2 for step in range(2)]  # 0.05, 0.1
    cosine = [0.1 * 0.5 * (1 + math.cos(math.pi * step / 8)) for step in range(8)]  # 0.1 down towards 0
    assert used == pytest.approx(warmup + cosine)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # after the last step


def test_bag_of_ngrams_features_by_hand():
    model = BagOfNgramsClassifier(vocab_size=10, num_classes=2, ngram_range=2, num_buckets=7)
    ids, mask = torch.tensor([[3, 4, 0]]), torch.tensor([[True, True, False]])
    features = model.features(ids, mask).tolist()[0]
    bigram = (3 * 1_000_003 + 4) % 7 + 10  # hashed (3, 4), offset past the unigram ids
    assert features == [3, 4, 0, bigram, 0]  # the bigram (4, pad) is dropped


# ---- data: local files, Hub-style splits, caches, bucketing ----


def test_local_files_every_format_and_carved_validation(tmp_path):
    rows = labelled(40)
    write_tsv(tmp_path / "train.tsv", rows)
    with (tmp_path / "train.csv").open("w", newline="") as file:
        csv.writer(file).writerows(
            [("review", "sentiment"), *[(text, ["neg", "pos"][label]) for text, label in rows]]
        )
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({"sentence": t, "label": y}) + "\n" for t, y in rows)
    )
    import pandas as pd

    pd.DataFrame(rows, columns=["sentence", "label"]).to_parquet(tmp_path / "train.parquet")
    for name, extra in [("train.tsv", {}), ("train.jsonl", {}), ("train.parquet", {}),
                        ("train.csv", {"text_column": "review", "label_column": "sentiment", "label_names": ["neg", "pos"]})]:  # fmt: skip
        datamodule = SentimentDataModule(
            train_file=str(tmp_path / name), vocab_size=100, cache_dir=str(tmp_path / "cache"), **extra
        )
        datamodule.setup("fit")
        train, val = datamodule.tokenized("train"), datamodule.tokenized("val")
        assert (len(train), len(val)) == (36, 4), name  # val_fraction 0.1 carved from train
        assert sorted(train["label"][:] + val["label"][:]) == sorted(label for _, label in rows)
        assert datamodule.tokenized("test") is val  # no test file: test evaluates the validation split


def test_tokenized_splits_come_from_the_cache_on_a_second_run(tmp_path):
    write_tsv(tmp_path / "train.tsv", labelled(30))
    write_tsv(tmp_path / "val.tsv", labelled(6))
    options = {"train_file": str(tmp_path / "train.tsv"), "val_file": str(tmp_path / "val.tsv"), "vocab_size": 100,
               "cache_dir": str(tmp_path / "cache")}  # fmt: skip
    first = SentimentDataModule(**options)
    first.setup("fit")
    first.tokenized("train")
    assert first.loaded_from_cache == {"train": False}
    second = SentimentDataModule(**options)
    second.setup("fit")
    assert second.tokenized("train")["input_ids"][:] == first.tokenized("train")["input_ids"][:]
    assert second.loaded_from_cache == {"train": True}
    assert second.tokenizer.to_str() == first.tokenizer.to_str()  # the trained tokenizer is cached too
    third = SentimentDataModule(**options, max_length=2)  # another setting: tokenized again, truncated
    third.setup("fit")
    assert third.loaded_from_cache == {} and max(third.tokenized("train")["length"][:]) == 2


def test_bucketing_measurably_reduces_padding():
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 60, (2000,), generator=generator).tolist()

    def pad_fraction(pool_batches: int) -> float:
        sampler = BucketBatchSampler(
            torch.utils.data.RandomSampler(range(2000), generator=generator),
            32,
            False,
            lengths,
            pool_batches,
            shuffle=True,
        )
        batches = list(sampler)
        assert sorted(index for batch in batches for index in batch) == list(range(2000))  # every row, once
        slots = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
        return 1 - sum(lengths) / slots

    unbucketed, bucketed = pad_fraction(0), pad_fraction(50)
    assert unbucketed > 0.4 and bucketed < 0.05, (unbucketed, bucketed)


# ---- models ----


@pytest.mark.parametrize("name", list(TINY))
def test_every_parameter_receives_a_gradient(name):
    network, init_args = TINY[name]
    model = network(50, 3, **init_args)
    ids = torch.randint(1, 50, (4, 7))
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[1, 3:] = False  # a shorter row
    ids[~mask] = 0
    logits = model(ids, mask)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    logits.logsumexp(dim=-1).sum().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name", list(TINY))
def test_a_texts_logits_do_not_depend_on_the_padding_of_its_batch(name):
    torch.manual_seed(0)
    network, init_args = TINY[name]
    model = network(50, 2, **init_args).eval()
    with torch.no_grad():  # convolutions whose real windows all score below their bias: padding must not win
        for module in model.modules():
            if isinstance(module, torch.nn.Conv1d):
                module.weight.abs_().neg_()
                module.bias.fill_(1.0)
            if isinstance(module, torch.nn.Embedding):
                module.weight.abs_()
    short = {"input_ids": [5, 9, 12], "label": 0, "text": ""}
    alone = pad_batch([short])
    padded = pad_batch([short, {"input_ids": list(range(1, 40)), "label": 1, "text": ""}])
    torch.testing.assert_close(
        model(padded["input_ids"], padded["attention_mask"])[:1],
        model(alone["input_ids"], alone["attention_mask"]),
    )


@pytest.mark.parametrize("name", list(TINY))
def test_each_model_overfits_a_few_examples(name):
    torch.manual_seed(0)
    network, init_args = TINY[name]
    module = SentimentClassifier(
        network=lambda vocab, classes: network(vocab, classes, **init_args), vocab_size=60
    )
    batch = pad_batch([{"input_ids": torch.randint(1, 60, (length,)).tolist(), "label": index % 2, "text": ""}
                       for index, length in enumerate([3, 5, 8, 2, 6, 4, 7, 5])])  # fmt: skip
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05 if name == "bag_of_ngrams" else 0.02)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(
            module(batch["input_ids"], batch["attention_mask"]), batch["labels"]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    predictions = module(batch["input_ids"], batch["attention_mask"]).argmax(-1)
    assert (predictions == batch["labels"]).all() and loss < 0.3, loss


def test_adversarial_training_adds_the_loss_at_embeddings_moved_along_the_gradient():
    torch.manual_seed(0)
    network, init_args = TINY["lstm"]
    epsilon = 0.5
    module = SentimentClassifier(
        network=lambda vocab, classes: network(vocab, classes, **init_args, embedding_dropout=0, dropout=0),
        vocab_size=60,
        adversarial_epsilon=epsilon,
    )
    batch = pad_batch([{"input_ids": torch.randint(1, 60, (length,)).tolist(), "label": index % 2, "text": ""}
                       for index, length in enumerate([3, 5, 8, 2])])  # fmt: skip
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    # By hand: each token's embedding moves by epsilon along its own loss gradient.
    embedded = module.network.embed(ids).detach().requires_grad_()
    clean = F.cross_entropy(module.network.classify(embedded, mask), labels)
    (gradient,) = torch.autograd.grad(clean, embedded)
    moved = embedded.detach() + epsilon * gradient / gradient.norm(dim=-1, keepdim=True)
    adversarial = F.cross_entropy(module.network.classify(moved, mask), labels)
    assert adversarial > clean  # the perturbation is adversarial
    loss = module.training_step(batch, 0)["loss"]
    torch.testing.assert_close(loss, clean + adversarial)
    loss.backward()  # one backward reaches every parameter, embeddings included
    assert all(parameter.grad is not None for parameter in module.parameters())


def test_adversarial_training_needs_token_embeddings():
    with pytest.raises(SystemExit, match=r"token embeddings .*not BagOfNgramsClassifier"):
        main(["fit", *QUICK, "--trainer.fast_dev_run=true", *network_args("bag_of_ngrams"),
              "--model.adversarial_epsilon=1"])  # fmt: skip


# ---- the CLI: fit, test, predict ----


@pytest.mark.parametrize("name", list(TINY))
def test_fast_dev_run_each_model(name):
    cli = main(["fit", *QUICK, "--trainer.fast_dev_run=true", *network_args(name)])
    metrics = cli.trainer.callback_metrics
    assert {"test/acc", "test/f1", "test/auroc", "test/loss"} <= set(
        metrics
    )  # fit's metrics are reset by test


def test_fit_saves_tokenizer_and_predict_uses_it(tmp_path, monkeypatch):
    cli = main(["fit", *QUICK, "--data.synthetic_size=1000", "--data.batch_size=32", "--trainer.max_epochs=3",
                "--model.lr=0.01", *network_args("cnn"), "--model.network.embedding_dim=32", "--model.network.num_filters=32",
                "--model.network.dropout=0.1", "--model.network.embedding_dropout=0"])  # fmt: skip
    run = Path(cli.trainer.log_dir)
    tokenizer_json = Tokenizer.from_file(str(run / "tokenizer.json")).to_str()
    assert Tokenizer.from_file(str(run / "checkpoints" / "tokenizer.json")).to_str() == tokenizer_json
    assert (
        cli.trainer.checkpoint_callback.best_model_score > 0.8
    )  # val/acc: the synthetic corpus is learnable
    with next(
        (run / "media").glob("test_misclassified_step*.csv")
    ).open() as file:  # 5% of its labels are flipped
        assert next(csv.reader(file)) == ["text", "true", "predicted", "confidence"]
    with (run / "metrics.csv").open() as file:
        pad_fractions = [
            float(row["train/pad_fraction"]) for row in csv.DictReader(file) if row["train/pad_fraction"]
        ]
    assert len(pad_fractions) == 3 and all(0 <= value < 0.2 for value in pad_fractions)  # bucketed batches
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert (
        checkpoint["SentimentDataModule"]["tokenizer"] == cli.datamodule.tokenizer.to_str() == tokenizer_json
    )

    texts = tmp_path / "texts.txt"
    texts.write_text(
        "the film is wonderful .\n\n   \nthe script is dull and lifeless .\nＴＨＥ ＦＩＬＭ\n",
        encoding="utf-8",
    )
    output = tmp_path / "predictions.jsonl"
    # No tokenizer cache under "other": predict must take the tokenizer from the checkpoint.
    predict = main(["predict", "--config", str(run / "config.yaml"), f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
                    f"--data.predict_file={texts}", f"--prediction_writer.output={output}", "--data.cache_dir=other"])  # fmt: skip
    assert predict.datamodule.tokenizer.to_str() == tokenizer_json
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["line"] for row in rows] == [1, 4, 5]  # empty lines are skipped, numbering kept
    assert [row["label"] for row in rows[:2]] == ["positive", "negative"]
    for row in rows:
        assert row["prob_negative"] + row["prob_positive"] == pytest.approx(1, abs=1e-5)
        assert row["label"] == ("positive" if row["prob_positive"] > 0.5 else "negative")

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a wonderful film\n")))
    csv_output = tmp_path / "stdin.csv"
    main(["predict", "--config", str(run / "config.yaml"), f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
          "--data.predict_file=-", f"--prediction_writer.output={csv_output}"])  # fmt: skip
    with csv_output.open() as file:
        assert [row["text"] for row in csv.DictReader(file)] == ["a wonderful film"]

    # The run's tokenizer.json named explicitly: it has fewer tokens than vocab_size, the checkpoint still fits.
    assert Tokenizer.from_str(tokenizer_json).get_vocab_size() < cli.model.hparams.vocab_size
    named = tmp_path / "named.jsonl"
    main(["predict", "--config", str(run / "config.yaml"), f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
          f"--data.tokenizer_file={run / 'tokenizer.json'}", f"--data.predict_file={texts}",
          f"--prediction_writer.output={named}"])  # fmt: skip
    assert named.read_text() == output.read_text()


# ---- bad inputs ----


def test_empty_texts_are_skipped_and_counted(tmp_path):
    write_tsv(tmp_path / "train.tsv", [*labelled(20), ("", 1), ("   ", 0)])
    datamodule = SentimentDataModule(
        train_file=str(tmp_path / "train.tsv"), vocab_size=100, cache_dir=str(tmp_path / "c")
    )
    with pytest.warns(UserWarning, match="skipped 2 train rows with empty text"):
        datamodule.setup("fit")
    assert datamodule.skipped_rows["train"] == 2
    assert len(datamodule.tokenized("train")) + len(datamodule.tokenized("val")) == 20


@pytest.mark.parametrize(
    ("rows", "options", "message"),
    [
        (
            [],
            ["--data.text_column=review"],
            r"train data has no column 'review' \(columns: sentence, label\)",
        ),
        (
            [("fine", 1), ("odd", 2)],
            [],
            r"train data row 2: label 2 is not in the label set \['negative', 'positive'\]",
        ),
        ([("fine", "pos")], [], r"row 1: label 'pos' is not in the label set .*set --data.label_names"),
        (None, [], r"train.tsv line 3 is not valid UTF-8 \(byte 0xff\); re-save the file as UTF-8"),
        ([], ["--data.val_file=missing.tsv"], r"val_file missing.tsv does not exist"),
        ([("few", 1)] * 5, ["--data.val_fraction=0.1"], r"too few to hold out val_fraction 0.1"),
    ],
    ids=[
        "missing_column",
        "label_out_of_range",
        "unknown_label_name",
        "not_utf8",
        "missing_file",
        "too_few_rows",
    ],
)
def test_bad_inputs_give_one_line_errors(tmp_path, rows, options, message):
    path = tmp_path / "train.tsv"
    if rows is None:
        path.write_bytes(b"sentence\tlabel\ngood\t1\nbad \xff\xfe bytes\t0\n")
    else:
        write_tsv(path, rows + (labelled(20) if len(rows) != 5 else []))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *QUICK, f"--data.train_file={path}", *options])
    assert exit_info.value.code.startswith("error: ") and "\n" not in exit_info.value.code
    assert __import__("re").search(message, exit_info.value.code), exit_info.value.code


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"train_file .*train.tsv is empty; check --data.train_file$"),
        (b"sentence\tlabel\n", r"train_file .*train.tsv has no data rows"),
        (b"sentence\tlabel\ngood\t1\nbad\t1\textra\n",
         r"cannot parse train_file .*train.tsv as .tsv: Expected 2 fields in line 3, saw 3; fix that line"),
        (b'sentence\tlabel\ngood\t1\n"never closed\t1\nmore\t0\n',
         r"cannot parse train_file .*train.tsv as .tsv: EOF inside string starting at row 2; fix that line"),
    ],
    ids=["empty", "header_only", "extra_field", "unclosed_quote"],
)  # fmt: skip
def test_unparsable_files_name_the_file_and_the_parsers_reason(tmp_path, content, message):
    (tmp_path / "train.tsv").write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *QUICK, f"--data.train_file={tmp_path / 'train.tsv'}"])
    assert exit_info.value.code.startswith("error: ") and "\n" not in exit_info.value.code
    assert __import__("re").search(message, exit_info.value.code), exit_info.value.code


def test_quoted_fields_load_as_pandas_reads_them(tmp_path):
    import pandas as pd

    texts = [
        "a tab\there , fine",
        "one line\nand another",
        'she said "great" twice',
        '"quoted" first',
        "plain",
    ]
    frame = pd.DataFrame({"sentence": texts * 4, "label": [1, 0, 1, 0, 1] * 4})
    frame.to_csv(tmp_path / "train.tsv", sep="\t")  # pandas' defaults: an index column, minimal quoting
    frame.to_csv(tmp_path / "train.csv", index=False)
    for name in ("train.tsv", "train.csv"):
        path = tmp_path / name
        assert pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")["sentence"].tolist() == texts * 4
        datamodule = SentimentDataModule(train_file=str(path), val_file=str(path), vocab_size=100,
                                         cache_dir=str(tmp_path / "cache"))  # fmt: skip
        datamodule.setup("fit")
        assert datamodule.texts["val"][0] == texts * 4 and datamodule.texts["val"][1] == [1, 0, 1, 0, 1] * 4


def test_label_names_in_the_label_column_become_sorted_class_names(tmp_path):
    rows = [(text, ["neg", "pos"][label]) for text, label in labelled(24)]
    write_tsv(tmp_path / "train.tsv", rows)
    write_tsv(tmp_path / "val.tsv", [("truly wonderful", "pos"), ("tedious", "neg"), ("great acting", "pos")])
    cli = main(["fit", *QUICK, f"--data.train_file={tmp_path / 'train.tsv'}", f"--data.val_file={tmp_path / 'val.tsv'}",
                "--trainer.fast_dev_run=true", *network_args("bag_of_ngrams")])  # fmt: skip
    datamodule = cli.datamodule
    assert datamodule.class_names == cli.model.class_names == ["neg", "pos"]  # sorted, so "neg" is class 0
    assert datamodule.tokenized("train")["label"][:] == [int(label == "pos") for _, label in rows]
    assert datamodule.tokenized("val")["label"][:] == [1, 0, 1]
    # A name the training file never used is a mistake in that split, not a new class.
    write_tsv(tmp_path / "test.tsv", [("fine", "pos"), ("so-so", "meh")])
    with pytest.raises(
        SystemExit, match=r"test data row 2: label 'meh' is not in the label set \['neg', 'pos'\]"
    ):
        main(
            [
                "fit",
                *QUICK,
                f"--data.train_file={tmp_path / 'train.tsv'}",
                f"--data.test_file={tmp_path / 'test.tsv'}",
            ]
        )


@pytest.mark.parametrize(
    "option",
    ["batch_size=0", "eval_batch_size=-1", "vocab_size=0", "vocab_size=-5", "max_length=0", "num_workers=-1"],
)
def test_bad_sizes_give_one_line_errors(option):
    name, value = option.split("=")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *QUICK, f"--data.{option}", "--trainer.fast_dev_run=true"])
    minimum = 0 if name == "num_workers" else 1
    assert exit_info.value.code == f"error: {option} must be at least {minimum}; set --data.{name}"


def test_texts_longer_than_the_transformers_positions_are_a_one_line_error():
    with pytest.raises(SystemExit, match=r"texts of \d+ tokens but the Transformer has 4 positions: set "
                                         r"--model.network.init_args.max_length"):  # fmt: skip
        main(["fit", *QUICK, "--trainer.fast_dev_run=true", *network_args("transformer"),
              "--model.network.max_length=4"])  # fmt: skip


def test_hub_dataset_without_download_is_a_one_line_error():
    with pytest.raises(
        SystemExit, match=r"cannot load Hub dataset nobody/no-such-set .*pass --data.download true"
    ):
        main(["fit", *QUICK, "--data.dataset=nobody/no-such-set"])


def test_predict_without_input_or_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="predict needs --data.predict_file"):
        main(["predict", *QUICK])
    (tmp_path / "texts.txt").write_bytes(b"fine\n\xff\n")
    with pytest.raises(SystemExit, match="predict needs the trained tokenizer"):
        main(["predict", *QUICK, f"--data.predict_file={tmp_path / 'texts.txt'}"])


# ---- shipped configs and the real data ----


@pytest.mark.parametrize(
    "config",
    sorted(p for p in (REPO / "configs" / "sentiment").glob("*.yaml") if p.name != "sweep.yaml"),
    ids=lambda path: path.stem,
)
def test_shipped_configs_parse_and_build(config):
    cli = main(["--config", str(config), "--data.cache_dir=cache"], run=False)
    assert isinstance(cli.model, SentimentClassifier)


def test_synthetic_corpus_is_written_as_tsv(tmp_path):
    files = write_synthetic_corpus(tmp_path, size=50)
    lines = files["train"].read_text().splitlines()
    assert (
        lines[0] == "sentence\tlabel" and len(lines) == 51 and {line[-1] for line in lines[1:]} == {"0", "1"}
    )


@pytest.mark.slow
def test_sst2_short_training_beats_chance():
    train, dev = require_data("sst-2/train_full.tsv"), require_data("sst-2/dev.tsv")
    cli = main(["fit", f"--data.train_file={train}", f"--data.val_file={dev}", "--trainer.max_epochs=1",
                "--trainer.limit_train_batches=300", "--trainer.enable_progress_bar=false",
                "--model.network=projects.sentiment.model.ConvolutionalClassifier"])  # fmt: skip
    assert cli.trainer.callback_metrics["test/acc"] > 0.7  # chance is 51%
