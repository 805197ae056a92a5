"""The tree's rules that no linter checks: no private name imported from another module, and modules small
enough to read. (Import layers and cycles: import-linter's contracts in pyproject.toml, run by .ci/run.)"""

import ast
import subprocess
from pathlib import Path

from tests.paths import REPO_ROOT

# Folders checked: packages at the root, and source roots holding packages of their own (the client's `src`).
PACKAGES = ("core", "registry", "inference", "experiments", "monitoring", "demo", "servingplatform", "scripts",
            "tests", "client/src")
MAX_LINES = 400


def _source_root(package: str) -> Path:
    return REPO_ROOT / package if "/" in package else REPO_ROOT


def _modules() -> list[tuple[Path, Path]]:
    """(module, the folder its dotted name is relative to)."""
    return [(path, _source_root(package)) for package in PACKAGES
            for path in sorted((REPO_ROOT / package).rglob("*.py")) if "migrations" not in path.parts]


def _module_name(path: Path, root: Path = REPO_ROOT) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def _top_level_names() -> frozenset[str]:
    return frozenset(_module_name(path, root).split(".")[0] for path, root in _modules())


def private_imports(source: str, module: str) -> list[str]:
    """`from X import _name` where X is another module of this project (its own names are its business)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if node.module == module or node.module.split(".")[0] not in TOP_LEVEL:
            continue
        found += [f"{module}:{node.lineno} imports {alias.name} from {node.module}"
                  for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


TOP_LEVEL = _top_level_names()


def test_the_check_sees_a_private_import():
    assert private_imports("from inference.predict.dispatch import _wake\n", "inference.predict.many") == [
        "inference.predict.many:1 imports _wake from inference.predict.dispatch"]
    assert private_imports("from inference.predict.dispatch import _wake\n", "inference.predict.dispatch") == []
    assert private_imports("from os import _exit\n", "inference.x") == []
    assert private_imports("from servingplatform_client.cli.app import _report\n", "servingplatform_client.x") == [
        "servingplatform_client.x:1 imports _report from servingplatform_client.cli.app"]


def test_no_module_imports_a_private_name_from_another():
    found = [hit for path, root in _modules() for hit in private_imports(path.read_text(), _module_name(path, root))]
    assert found == []


def test_no_module_is_longer_than_the_limit():
    long = {str(path.relative_to(REPO_ROOT)): lines for path, _ in _modules()
            if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


CONFLICT_MARKER = ("<<<<<<< ", ">>>>>>> ", "=======\n")


def conflict_markers(text: str) -> list[int]:
    """Line numbers of a merge's leftover markers (a committed conflict once broke .ci/run's syntax)."""
    lines = text.splitlines(keepends=True)
    return [number for number, line in enumerate(lines, 1)
            if line.startswith(CONFLICT_MARKER[:2]) or line == CONFLICT_MARKER[2]]


def test_conflict_markers_are_recognised():
    assert conflict_markers("a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> other\n") == [2, 4, 6]
    assert conflict_markers("title\n=======\n"[:6] + "========\n") == []


def test_no_file_holds_a_merge_conflict_marker():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
    found = []
    for name in filter(None, tracked.stdout.decode().split("\0")):
        path = REPO_ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{name}:{line}" for line in conflict_markers(text)]
    assert found == []
