"""One direction of dependency (README "Architecture"): the import contracts in pyproject.toml hold
on this tree and break on an import against them, no import inside a function crosses packages to
hide a cycle, and the README's layers are the contract's."""

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fullstackagent.testing.processes import PROJECT_ROOT

PACKAGES = ["fullstackagent", "identities", "projects", "sandboxes", "databases", "aiproxy", "previews"]
# The script make check runs, from the same environment as the tests.
LINT_IMPORTS = [str(Path(sys.executable).parent / "lint-imports")]

# Imports inside a function that cross packages, each with the reason it is not a hidden cycle.
LAZY_IMPORTS = {
    # The Kubernetes client takes about 0.3 s to import; most requests never need it.
    ("identities.api", "fullstackagent.kubernetes.kubeconfig"): "the Kubernetes client, loaded lazily",
    ("identities.sealos", "fullstackagent.kubernetes.kubeconfig"): "the Kubernetes client, loaded lazily",
    # Run when pytest ends, where Django may not be set up (-p no:django); test tooling only.
    ("fullstackagent.testing.plugin", "sandboxes.backends.local"): "stops the sandboxes tests left running",
    ("fullstackagent.testing.plugin", "databases.backends.local"): "drops the run's local databases",
}


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # Run from ``root`` with it first on the path, so the copy's packages are the ones analysed and
    # not the installed (editable) ones.
    return subprocess.run(
        [*LINT_IMPORTS, "--no-cache"], cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )


def copy_of_the_tree(destination: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def test_the_contracts_hold_on_this_tree():
    result = lint_imports(PROJECT_ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def contracts() -> list[dict]:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


@pytest.mark.parametrize(
    "module, line, broken",
    [
        # A step calling back up into the orchestrator: the circle of issue 15.
        ("sandboxes/reconcile.py", "from projects.services import refresh_project_status", {"apps-layers"}),
        # A lower app reaching into a higher one, hidden in a function.
        ("identities/services.py", "def later():\n    from aiproxy import services", {"apps-layers"}),
        # Two steps calling each other.
        ("databases/reconcile.py", "from sandboxes import idle", {"apps-layers"}),
        # The core importing an app (which also puts that app below every app that uses the core).
        ("fullstackagent/reconcile.py", "import sandboxes.models", {"core-imports-no-app", "apps-layers"}),
        # The platform importing development tooling.
        ("projects/services.py", "from fullstackagent.devtools import embedded", {"no-devtools-in-the-platform"}),
    ],
)
def test_an_import_against_the_direction_breaks_the_check(tmp_path, module, line, broken):
    root = copy_of_the_tree(tmp_path)
    with (root / module).open("a") as source:
        source.write(f"\n\n{line}\n")

    result = lint_imports(root)

    assert result.returncode == 1, result.stdout + result.stderr
    report = " ".join(result.stdout.split())  # the report wraps long contract names
    assert {c["id"] for c in contracts() if f"{c['name']} BROKEN" in report} == broken
    assert f"Contracts: {3 - len(broken)} kept, {len(broken)} broken." in report


def test_make_check_runs_the_contracts():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    recipe = makefile.split("\ncheck:", 1)[1].split("\n\n", 1)[0]

    assert "$(VENV)/bin/lint-imports" in [line.strip() for line in recipe.splitlines()]


def _function_level_imports(path: Path):
    """(line, imported module) of every absolute import inside a function or method body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                yield from ((node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield node.lineno, node.module


def test_no_import_inside_a_function_crosses_packages_without_a_reason():
    found = set()
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
            for _line, imported in _function_level_imports(path):
                top = imported.split(".")[0]
                if top in PACKAGES and top != module.split(".")[0]:
                    found.add((module, imported))

    # Exactly the listed ones: a new one needs a reason here, and a listed one that went away
    # leaves the list.
    assert found == set(LAZY_IMPORTS)


def test_the_readme_names_the_contract_layers_in_order():
    layers = next(c["layers"] for c in contracts() if c["id"] == "apps-layers")
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    # The first column of the layer table: `sandboxes` \| `databases` ... (pipes escaped in Markdown).
    table_layers = [
        row.split(" | ", 1)[0].removeprefix("| ").replace("`", "").replace("\\|", "|")
        for row in section.splitlines()
        if row.startswith("| `") or row.startswith("| core")
    ]

    assert table_layers == [*layers, "core: fullstackagent"]
