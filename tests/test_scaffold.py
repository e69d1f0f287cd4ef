"""The project scaffold (`scaffold/new.py`): what it writes and refuses, and (slow) that a project of each shape,
generated into a copy of the repository, passes its own tests and the repository-wide ones at once."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "scaffold"))
from new import SHAPES, main  # noqa: E402

SHARED = ["common", "configs/trainer", "configs/logger", "projects/__init__.py", "tests/conftest.py",
          "tests/test_models.py", "tests/test_export.py", "tests/test_sweeps.py", "tests/test_configs.py",
          "tests/test_documented_commands.py", "scaffold", "noxfile.py", "pyproject.toml"]  # fmt: skip


def repository_copy(folder: Path) -> Path:
    """The parts of this repository a new project builds on, copied to `folder`."""
    for part in SHARED:
        source, target = REPO / part, folder / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    return folder


@pytest.mark.parametrize("shape", SHAPES)
def test_a_new_project_gets_every_file_named_for_it(shape, tmp_path):
    root = repository_copy(tmp_path / "repo")
    written = main(["keyword_spotting", "--like", shape, "--root", str(root)])
    relative = {str(path.relative_to(root)) for path in written}
    assert relative == {
        *(f"projects/keyword_spotting/{name}" for name in
          ("__init__.py", "model.py", "module.py", "data.py", "train.py", "README.md")),
        "configs/keyword_spotting/quickstart.yaml", "configs/keyword_spotting/sweep.yaml",
        "tests/test_keyword_spotting.py", "benchmarks/keyword_spotting.py",
    }  # fmt: skip
    for path in written:
        text = path.read_text()
        assert "project_name" not in text and "ProjectName" not in text, path
    assert "class KeywordSpotting" in (root / "projects/keyword_spotting/module.py").read_text()
    assert (
        '"keyword_spotting": "configs/keyword_spotting/quickstart.yaml",' in (root / "noxfile.py").read_text()
    )


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["Bad-Name"], "'Bad-Name' cannot name a project"),
        (["class"], "'class' cannot name a project"),
        (["common"], "'common' cannot name a project"),
        (["fresh", "--like", "diffusion"], "unknown shape 'diffusion'"),
    ],
)
def test_bad_requests_are_one_line_and_write_nothing(arguments, message, tmp_path):
    root = repository_copy(tmp_path / "repo")
    before = sorted(root.rglob("*"))
    with pytest.raises(SystemExit, match=f"^error: {message}"):
        main([*arguments, "--root", str(root)])
    assert sorted(root.rglob("*")) == before


def test_an_existing_project_is_never_overwritten(tmp_path):
    root = repository_copy(tmp_path / "repo")
    main(["pets", "--root", str(root)])
    (root / "projects/pets/model.py").write_text("# my work\n")
    with pytest.raises(SystemExit, match="^error: projects/pets/model.py already exists"):
        main(["pets", "--like", "generation", "--root", str(root)])
    assert (root / "projects/pets/model.py").read_text() == "# my work\n"


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_a_generated_project_passes_its_tests_and_the_shared_ones(shape, tmp_path):
    root = repository_copy(tmp_path / "repo")
    name = f"new_{shape}"
    main([name, "--like", shape, "--root", str(root)])
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", f"projects/{name}", f"tests/test_{name}.py",
                           f"benchmarks/{name}.py"], cwd=root, capture_output=True, text=True)  # fmt: skip
    assert lint.returncode == 0, lint.stdout
    # Its own tests, and the repository's tests that cover every project: models, export, sweeps, configs, commands.
    environment = {**os.environ, "PYTHONPATH": str(root)}
    environment.pop("DATA_ROOT", None)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", name, "tests"],
                           cwd=root, env=environment, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:]
    summary = tests.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
