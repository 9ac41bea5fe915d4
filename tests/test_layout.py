"""The design card's import rule: models uses annotation; training and serving use both;
nothing imports training or serving."""

import ast

import pytest

ALLOWED = {
    "annotation": set(),
    "models": {"annotation"},
    "training": {"annotation", "models"},
    "serving": {"annotation", "models"},
}


def imported_modules(path, package):
    """Absolute names of the veille modules a file imports (relative imports resolved)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            yield ".".join([*base, *(node.module.split(".") if node.module else [])])


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_imports_point_one_way(repo, stage):
    for path in sorted((repo / stage).rglob("*.py")):
        package = ["veille", stage, *path.parent.relative_to(repo / stage).parts]
        stages = {name.split(".")[1] for name in imported_modules(path, package) if name.startswith("veille.") and name.count(".")}
        assert stages & set(ALLOWED) - {stage} <= ALLOWED[stage], path


def test_the_rule_catches_a_relative_import(tmp_path):
    module = tmp_path / "labelstudio" / "x.py"
    module.parent.mkdir()
    module.write_text("from ...serving.api import create_app\nfrom ..schema import Schema\n")
    assert list(imported_modules(module, ["veille", "annotation", "labelstudio"])) == ["veille.serving.api", "veille.annotation.schema"]
