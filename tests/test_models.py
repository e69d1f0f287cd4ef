"""Every `nn.Module` defined in `projects/*/model.py`, found by walking the files, with each value of each of its
`Literal` and `bool` options: a tiny batch goes through with the expected shape, every parameter gets a finite,
non-zero gradient, nothing is NaN, and two builds under one seed give the same output. A new class is covered the
moment it is added; one that takes an argument no class here has taken fails with that argument's name."""

import importlib
import inspect
import typing
from pathlib import Path

import pytest
import torch
from conftest import REPO
from torch import nn

BATCH = 4
# Tiny values for constructor arguments without a default, by name.
SIZES = {
    "in_channels": 3,
    "out_channels": 4,
    "stride": 2,
    "num_classes": 3,
    "input_channels": 3,
    "output_channels": 2,
    "lookback": 48,
    "horizon": 48,
    "channels": 1,
    "latent_dim": 8,
    "image_size": 28,
    "dim": 8,
    "vocab_size": 60,
    "input_size": 6,
}


def tokens(sizes: dict) -> dict[str, torch.Tensor]:
    mask = torch.ones(BATCH, 12, dtype=torch.bool)
    mask[1:, 9:] = False  # padded rows, as the batches have them
    ids = torch.randint(1, sizes.get("vocab_size", SIZES["vocab_size"]), (BATCH, 12)).masked_fill(~mask, 0)
    return {"input_ids": ids, "attention_mask": mask, "hidden": torch.randn(BATCH, 12, sizes.get("dim", 8)),
            "mask": mask}  # fmt: skip


# What each project's networks take, by the name of the forward argument.
INPUTS = {
    "image_classifier": lambda k: {"x": torch.randn(BATCH, k["in_channels"], 32, 32)},
    "time_series": lambda k: {"x": torch.randn(BATCH, k["lookback"], k["input_channels"])},
    "dcgan": lambda k: {
        "latents": torch.randn(BATCH, k.get("latent_dim", SIZES["latent_dim"])),
        "images": torch.randn(BATCH, k.get("channels", 1), k.get("image_size", 28), k.get("image_size", 28)),
        "features": torch.randn(BATCH, 8, 4, 4),
    },
    "sentiment": tokens,
    "video_classifier": lambda k: {
        "clips": torch.randn(BATCH, 3, 8, 32, 32),
        "input": torch.randn(BATCH, k.get("in_channels", 3), 4, 16, 16),
    },
    "speech": lambda k: {
        "features": torch.randn(BATCH, k.get("n_mels", 40), 51),
        "x": torch.randn(BATCH, k.get("in_channels", 3), 51),
        "lengths": torch.tensor([51, 37, 51, 20]),  # recordings of different lengths in one batch
    },
}


# A project not listed above (a new one, from the scaffold): inputs by the name of the forward argument.
BY_ARGUMENT = {
    "features": lambda k: torch.randn(BATCH, k.get("input_size", SIZES["input_size"])),
    "history": lambda k: torch.randn(BATCH, k.get("lookback", SIZES["lookback"]), k.get("input_channels", 3)),
    "images": lambda k: torch.rand(
        BATCH, k.get("channels", 1), k.get("image_size", 28), k.get("image_size", 28)
    ),
    "latents": lambda k: torch.randn(BATCH, k.get("latent_dim", SIZES["latent_dim"])),
}


def model_classes() -> list[tuple[str, type[nn.Module]]]:
    found = []
    for path in sorted(REPO.glob("projects/*/model.py")):
        module = importlib.import_module(f"projects.{path.parent.name}.model")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            defined_here = cls.__module__ == module.__name__ and issubclass(cls, nn.Module)
            # Skipped: a base class without a constructor of its own, and a helper whose methods are not `forward`
            # (RevIN's normalise/denormalise, covered through SegRNN(revin=True)).
            if (
                defined_here
                and cls.__init__ is not nn.Module.__init__
                and cls.forward is not nn.Module.forward
            ):
                found.append((path.parent.name, cls))
    return found


def variants(cls: type[nn.Module]) -> list[dict]:
    """The defaults, then one variant per other value of each `Literal` or `bool` argument."""
    hints = typing.get_type_hints(cls.__init__)
    cases = [{}]
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        hint = hints.get(name)
        choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
        if hint is bool:
            choices = (True, False)
        cases += [{name: value} for value in choices or () if value != parameter.default]
    return cases


def case_id(case: tuple) -> str:
    project, cls, options = case
    return f"{project}.{cls.__name__}" + "".join(f"-{key}={value}" for key, value in options.items())


CASES = [(project, cls, options) for project, cls in model_classes() for options in variants(cls)]


def build(cls: type[nn.Module], options: dict) -> tuple[nn.Module, dict]:
    kwargs = dict(options)
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in kwargs or parameter.default is not inspect.Parameter.empty:
            continue
        assert name in SIZES, (
            f"{cls.__name__} takes `{name}`: add a tiny value for it to SIZES in {Path(__file__).name}"
        )
        kwargs[name] = SIZES[name]
    return cls(**kwargs), kwargs


def forward(network: nn.Module, project: str, kwargs: dict) -> torch.Tensor:
    if project in INPUTS:
        available = INPUTS[project](kwargs)
    else:
        available = {name: make(kwargs) for name, make in BY_ARGUMENT.items()}
    required = [
        name
        for name, parameter in inspect.signature(network.forward).parameters.items()
        if parameter.default is inspect.Parameter.empty and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    ]
    missing = [name for name in required if name not in available]
    assert not missing, (
        f"{type(network).__name__}.forward takes {missing}: add them to INPUTS[{project!r}] in {Path(__file__).name}"
    )
    output = network(*(available[name] for name in required))
    return (
        output[0] if isinstance(output, tuple) else output
    )  # (outputs, their lengths) of a sequence network


def expected_shape(network: nn.Module, kwargs: dict) -> tuple | None:
    if "num_classes" in kwargs:
        return (BATCH, kwargs["num_classes"])
    if "horizon" in kwargs:
        return (BATCH, kwargs["horizon"], kwargs["output_channels"])
    if "latent_dim" in kwargs:  # a generator: latents -> images
        return (BATCH, kwargs["channels"], kwargs["image_size"], kwargs["image_size"])
    return None


def test_the_walk_finds_every_project_and_the_options():
    projects = {project for project, _, _ in CASES}
    assert projects == {path.parent.name for path in REPO.glob("projects/*/model.py")}
    names = {case_id(case) for case in CASES}
    assert "sentiment.RecurrentClassifier-cell=gru" in names
    assert "time_series.SegRNN-revin=False" in names


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_shape_gradients_and_determinism(case):
    project, cls, options = case
    torch.manual_seed(0)
    network, kwargs = build(cls, options)
    torch.manual_seed(1)
    output = forward(network.train(), project, kwargs)

    assert torch.isfinite(output).all(), "the output has NaN or Inf"
    assert output.shape[0] == BATCH
    if (shape := expected_shape(network, kwargs)) is not None:
        assert tuple(output.shape) == shape
    parameters = [(name, p) for name, p in network.named_parameters() if p.requires_grad]
    if parameters:
        (output.float().square().mean() + output.float().mean()).backward()
        for name, parameter in parameters:
            assert parameter.grad is not None, f"{name} gets no gradient"
            assert torch.isfinite(parameter.grad).all(), f"{name} has a NaN or Inf gradient"
            assert parameter.grad.abs().sum() > 0, f"{name} gets a zero gradient"

    again = []
    for _ in range(2):
        torch.manual_seed(0)
        network, _ = build(cls, options)
        torch.manual_seed(1)
        again.append(forward(network.eval(), project, kwargs).detach())
    assert torch.equal(*again), "two builds under one seed disagree"
