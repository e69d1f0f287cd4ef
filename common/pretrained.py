"""Load a module that another project trained, from its checkpoint alone, so projects never import each other;
and check that a checkpoint fits the run restoring it (`require_same_hparams`).

Example: `classifier = load_image_classifier("runs/image_classifier/<run id>/checkpoints/best.ckpt")`, then
`classifier(images)` (logits) and `classifier.embed(images)` (features) for floats in [0, 1] `(N, C, H, W)`.
"""

import importlib
import reprlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import LightningModule

from common.checkpointing import read_checkpoint
from common.errors import UserInputError

IMAGE_CLASSIFIER = "projects.image_classifier.module.ImageClassifier"


def load_trained_module(checkpoint_path: str | Path, class_path: str | None = None) -> LightningModule:
    """A LightningModule rebuilt from a Lightning checkpoint, frozen and in eval mode, on the CPU; loaded
    weights-only, so a crafted checkpoint cannot run code.

    The class comes from the checkpoint (`hyper_parameters._class_path`, written by LightningCLI in
    subclass mode), else from `class_path`; arguments the checkpoint lacks come from the run's config.yaml. The loaded module gets `checkpoint_path`, and `input_size`
    (the datamodule's `image_size` saved in the checkpoint, or None).
    """
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise UserInputError(f"checkpoint {path} not found; train one first or fix the path")
    checkpoint = read_checkpoint(path)
    hyper_parameters = checkpoint.get("hyper_parameters", {})
    class_path = hyper_parameters.get("_class_path", class_path)
    if class_path is None:
        raise UserInputError(
            f"checkpoint {path} does not name its module class; it was not saved by a project's train.py"
        )
    module_name, _, class_name = class_path.rpartition(".")
    try:
        module_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise UserInputError(
            f"checkpoint {path} needs class {class_path}, which cannot be imported"
        ) from None
    try:
        module = module_class.load_from_checkpoint(
            path, map_location="cpu", weights_only=True, **arguments_missing_from(hyper_parameters, path)
        )
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"checkpoint {path} does not fit {class_path}: {first_line}") from None
    module.eval().requires_grad_(False)
    module.checkpoint_path = str(path)
    module.input_size = saved_image_size(checkpoint)
    return module


def load_image_classifier(checkpoint_path: str | Path) -> LightningModule:
    """An image classifier trained by `projects/image_classifier`, frozen, on the CPU.

    Guaranteed interface: `module(images)` -> logits `(N, num_classes)`, `module.embed(images)` -> features
    `(N, D)` for float images in [0, 1] `(N, C, H, W)` at `module.input_size`; `module.class_names`.
    """
    module = load_trained_module(checkpoint_path, class_path=IMAGE_CLASSIFIER)
    if not (callable(getattr(module, "embed", None)) and hasattr(module, "class_names")):
        raise UserInputError(
            f"checkpoint {checkpoint_path} is not an image classifier (no embed() or class_names)"
        )
    return module


def arguments_missing_from(hyper_parameters: dict[str, Any], path: Path) -> dict[str, Any]:
    """Model arguments the checkpoint left out (`save_hyperparameters(ignore=...)`, e.g. a network config in
    checkpoints older than `TemplateCLI._save_component_configs`), taken from the run's `config.yaml`
    (`<run dir>/checkpoints/<name>.ckpt` -> `<run dir>/config.yaml`).

    Only for checkpoints written through LightningCLI, whose instantiator parses such config dicts.
    """
    config_path = path.parent.parent / "config.yaml"
    if "_instantiator" not in hyper_parameters or not config_path.is_file():
        return {}
    model = (yaml.safe_load(config_path.read_text()) or {}).get("model") or {}
    model = model.get("init_args", model) if "class_path" in model else model
    return {name: value for name, value in model.items() if name not in hyper_parameters}


def saved_image_size(checkpoint: dict[str, Any]) -> int | None:
    """The `image_size` a datamodule stored in the checkpoint (its `state_dict()`), when there is one."""
    for value in checkpoint.values():
        if isinstance(value, dict) and isinstance(value.get("image_size"), int):
            return value["image_size"]
    return None


def as_list(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def require_same_hparams(
    checkpoint: dict[str, Any], hparams: Mapping[str, Any], names: Iterable[str]
) -> None:
    """One-line error when a checkpoint was trained with other values of `names` than this run's module has.

    For a module's `on_load_checkpoint`: the values the CLI links from the data (classes, channels, sizes)
    decide the shapes of the weights, so a run restoring a checkpoint needs the data settings it was trained
    with, which the training run's `config.yaml` holds.
    """
    saved = checkpoint.get("hyper_parameters", {})
    for name in names:
        if name not in saved:
            continue
        before, now = saved[name], hparams.get(name)
        if as_list(before) != as_list(now):  # a YAML round trip turns tuples into lists
            raise UserInputError(
                f"the checkpoint was trained with {name}={reprlib.repr(before)} but this run has "
                f"{reprlib.repr(now)}; pass the training run's config (--config runs/<project>/<run>/config.yaml) "
                "or the same --data options"
            )
