"""Every Odoo test class of the addons is tagged once, to run after install.

A class inserted between a decorator and the class it decorated steals the tag: the other class
then runs while the addons are still installing, where it fails on columns that do not exist
yet, or passes for the wrong reason.
"""

import ast
from pathlib import Path

import pytest

ADDONS = Path(__file__).resolve().parent.parent / "addons"
TEST_FILES = sorted(ADDONS.glob("*/tests/test_*.py"))


def declared_test_classes(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test")
    ]


def tags_of(node):
    return [
        [arg.value for arg in decorator.args if isinstance(arg, ast.Constant)]
        for decorator in node.decorator_list
        if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "tagged"
    ]


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda path: str(path.relative_to(ADDONS)))
def test_each_test_class_is_tagged_once_post_install(path):
    for node in declared_test_classes(path):
        tags = tags_of(node)
        assert len(tags) == 1, f"{node.name}: {len(tags)} @tagged decorators"
        assert "post_install" in tags[0], f"{node.name}: tagged {tags[0]}"
        assert "-at_install" in tags[0], f"{node.name}: tagged {tags[0]}"


def test_the_addons_have_test_files():
    assert len(TEST_FILES) > 10
