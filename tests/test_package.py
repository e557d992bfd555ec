"""The lazily imported public API: the three lists of names in promptft/__init__.py agree and all resolve."""

import ast
import importlib
import inspect

import promptft


def _type_checking_imports() -> set[str]:
    tree = ast.parse(inspect.getsource(promptft))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                names.update(alias.asname or alias.name for alias in stmt.names)
    return names


def test_public_names_are_declared_consistently():
    assert sorted(promptft.__all__) == sorted(promptft._EXPORTS)
    assert _type_checking_imports() == set(promptft._EXPORTS)


def test_every_public_name_resolves_from_its_module():
    for name, module in promptft._EXPORTS.items():
        assert getattr(promptft, name) is getattr(importlib.import_module(module), name)


def test_version_is_reported_and_has_a_changelog_section():
    from pathlib import Path

    from typer.testing import CliRunner

    from promptft.cli import app
    from promptft.version import __version__

    assert promptft.__version__ == __version__
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"promptft {__version__}"
    changelog = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text()
    assert f"## [{__version__}]" in changelog, "add the release's section to CHANGELOG.md"


def test_package_data_and_license_are_declared():
    """What scripts/check_wheel.sh finds in the built wheel is declared here (the wheel check proves it)."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["promptft"]
    assert "py.typed" in data and (root / "src/promptft/py.typed").exists()
    packaged = {p.relative_to(root / "src/promptft").as_posix() for p in (root / "src/promptft").rglob("*")
                if p.is_file() and p.suffix not in (".py", ".pyc")}  # fmt: skip
    import fnmatch

    missing = [f for f in packaged if not any(fnmatch.fnmatch(f, pattern) for pattern in data)]
    assert not missing, f"data files not in [tool.setuptools.package-data]: {missing}"
    assert pyproject["project"]["license-files"] == ["LICENSE", "NOTICE"]
    assert "Apache License" in (root / "LICENSE").read_text()
