"""Create a new project from one of three starting shapes, ready to train and pass its tests offline.

    uv run nox -s new -- <name> --like classification|forecasting|generation
    uv run python scaffold/new.py <name> --like classification [--root DIR]

Writes `projects/<name>/` (model, module, data, train, README), `configs/<name>/{quickstart,sweep}.yaml`,
`tests/test_<name>.py` and `benchmarks/<name>.py`, and registers the quickstart in `noxfile.py`. The templates in
`scaffold/<shape>/` are working code for a project called `project_name`; each file is copied with that name
(and `ProjectName`, `Project name`) replaced by the new project's.
"""

import argparse
import keyword
import re
import subprocess
import sys
from pathlib import Path

SCAFFOLD = Path(__file__).resolve().parent
SHAPES = {
    "classification": "inputs -> a class: an MLP on feature vectors (CSV rows, or synthetic clusters offline)",
    "forecasting": "a sequence -> its next values: a GRU on a series (a CSV column, or a synthetic one offline)",
    "generation": "noise -> samples: a variational autoencoder on images (any image source of common.images)",
}
ALIASES = {"regression": "forecasting", "image_classifier": "classification", "sentiment": "classification",
           "video_classifier": "classification", "time_series": "forecasting", "dcgan": "generation"}  # fmt: skip
# Template file -> where it goes in the repository.
DESTINATIONS = {
    "__init__.py": "projects/{name}/__init__.py",
    "model.py": "projects/{name}/model.py",
    "module.py": "projects/{name}/module.py",
    "data.py": "projects/{name}/data.py",
    "train.py": "projects/{name}/train.py",
    "README.md": "projects/{name}/README.md",
    "quickstart.yaml": "configs/{name}/quickstart.yaml",
    "sweep.yaml": "configs/{name}/sweep.yaml",
    "test.py": "tests/test_{name}.py",
    "benchmark.py": "benchmarks/{name}.py",
}
NAME = re.compile(r"[a-z][a-z0-9_]*")
RESERVED = {"common", "projects", "configs", "tests", "benchmarks", "scaffold", "test", "noxfile", "conftest"}


class ScaffoldError(Exception):
    """A bad request (name, shape, existing project), printed as one line."""


def camel_case(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part)


def check_name(name: str, root: Path) -> None:
    if not NAME.fullmatch(name) or keyword.iskeyword(name) or name in RESERVED:
        raise ScaffoldError(
            f"'{name}' cannot name a project: use lowercase letters, digits and underscores, starting with a "
            f"letter (a Python package name), not a keyword or one of {sorted(RESERVED)}"
        )
    taken = [DESTINATIONS[file].format(name=name) for file in DESTINATIONS if file != "__init__.py"]
    existing = [path for path in taken if (root / path).exists()]
    if existing:
        raise ScaffoldError(f"{existing[0]} already exists: pick another name or delete that project first")


def render(text: str, name: str) -> str:
    """A template's text for the project `name`: `ProjectName`, `project_name`, `Project name` replaced."""
    title = name.replace("_", " ").capitalize()
    return (
        text.replace("ProjectName", camel_case(name))
        .replace("project_name", name)
        .replace("Project name", title)
    )


def register_quickstart(noxfile: Path, name: str) -> None:
    """Add the new quickstart to `QUICKSTARTS` in `noxfile.py` (the smoke session, and the tests that read it)."""
    text = noxfile.read_text()
    start = text.find("QUICKSTARTS = {")
    end = text.find("\n}\n", start)
    if start < 0 or end < 0:
        raise ScaffoldError(f"{noxfile} has no `QUICKSTARTS = {{...}}` block to register the quickstart in")
    entry = f'\n    "{name}": "configs/{name}/quickstart.yaml",'
    noxfile.write_text(text[:end] + entry + text[end:])


def create(name: str, shape: str, root: Path) -> list[Path]:
    """Write the project `name` of `shape` under the repository `root`; returns the files written."""
    shape = ALIASES.get(shape, shape)
    if shape not in SHAPES:
        raise ScaffoldError(f"unknown shape '{shape}': pick one of {', '.join(SHAPES)}")
    check_name(name, root)
    missing = [file for file in DESTINATIONS if not (SCAFFOLD / shape / file).is_file()]
    if missing:
        raise ScaffoldError(f"the {shape} templates lack {missing}: restore scaffold/{shape}/ from git")
    written = []
    for template, destination in DESTINATIONS.items():
        path = root / destination.format(name=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render((SCAFFOLD / shape / template).read_text(), name))
        written.append(path)
    register_quickstart(root / "noxfile.py", name)
    # Renaming changes line lengths: format the new files as `nox -s lint` expects (skipped where ruff is missing).
    python_files = [str(path) for path in written if path.suffix == ".py"]
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", *python_files], check=False, cwd=root)
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the new project's package name, e.g. keyword_spotting")
    parser.add_argument("--like", default="classification", help=f"starting shape: {', '.join(SHAPES)}")
    parser.add_argument("--root", type=Path, default=SCAFFOLD.parent, help="the repository to add it to")
    options = parser.parse_args(argv)
    try:
        written = create(options.name, options.like, options.root)
    except ScaffoldError as error:
        sys.exit(f"error: {error}")
    shape = ALIASES.get(options.like, options.like)
    print(f"Created project {options.name} ({shape}: {SHAPES[shape]}):")
    for path in written:
        print(f"  {path.relative_to(options.root)}")
    print(
        f"Next: uv run python projects/{options.name}/train.py fit --config configs/{options.name}/quickstart.yaml"
    )
    print(f"      uv run pytest tests/test_{options.name}.py; then see projects/{options.name}/README.md")
    return written


if __name__ == "__main__":
    main()
