"""Developer sessions. uv owns the environment (uv.lock), so every session runs inside it with `uv run`.

uv run nox -s tests     # the fast suite (CPU, no network), what CI runs
uv run nox -s lint      # ruff check + format check
uv run nox -s format    # fix what lint finds: ruff's safe fixes, then ruff format
uv run nox -s smoke     # each project's train.py for a few steps through its real CLI
uv run nox -s bench     # every benchmark script (long; reads $DATA_ROOT)
uv run nox -s new -- <name> --like classification|forecasting|generation   # a new project (scaffold/new.py)
"""

from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "none"

# Each project's offline quickstart config.
QUICKSTARTS = {
    "image_classifier": "configs/image_classifier/digits.yaml",
    "time_series": "configs/time_series/quickstart.yaml",
    "dcgan": "configs/dcgan/digits.yaml",
    "sentiment": "configs/sentiment/quickstart.yaml",
    "video_classifier": "configs/video_classifier/procedural.yaml",
    "speech": "configs/speech/quickstart.yaml",
    "vae": "configs/vae/quickstart.yaml",
}
FEW_STEPS = ["--trainer.max_steps=5", "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2",
             "--trainer.enable_progress_bar=false"]  # fmt: skip


@nox.session
def tests(session: nox.Session) -> None:
    session.run("uv", "run", "--frozen", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.run("uv", "run", "--frozen", "ruff", "check", ".")
    session.run("uv", "run", "--frozen", "ruff", "format", "--check", ".")


@nox.session
def format(session: nox.Session) -> None:
    session.run("uv", "run", "--frozen", "ruff", "check", "--fix", ".")
    session.run("uv", "run", "--frozen", "ruff", "format", ".")


@nox.session
def smoke(session: nox.Session) -> None:
    for project, config in QUICKSTARTS.items():
        session.run(
            "uv",
            "run",
            "--frozen",
            "python",
            f"projects/{project}/train.py",
            "fit",
            "--config",
            config,
            *FEW_STEPS,
        )


@nox.session
def bench(session: nox.Session) -> None:
    for script in sorted(Path("benchmarks").glob("*.py")):
        session.run("uv", "run", "--frozen", "python", str(script), *session.posargs)


@nox.session(default=False)
def new(session: nox.Session) -> None:
    session.run("uv", "run", "--frozen", "python", "scaffold/new.py", *session.posargs)
