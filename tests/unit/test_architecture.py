"""The layering is a rule, checked here: the domain imports no framework, only web imports Flask."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "backend" / "refstage"
FORBIDDEN_IN_DOMAIN = {"flask", "sqlalchemy", "requests", "simple_salesforce", "salesforce_bulk", "authlib", "huey", "werkzeug", "alembic"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_is_pure():
    offenders = {str(p.relative_to(PACKAGE)): _imports(p) & FORBIDDEN_IN_DOMAIN for p in (PACKAGE / "domain").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_domain_does_not_import_outer_layers():
    for path in (PACKAGE / "domain").rglob("*.py"):
        text = path.read_text()
        for layer in ("refstage.services", "refstage.adapters", "refstage.web", "refstage.jobs"):
            assert layer not in text, f"{path.name} imports {layer}"


def test_only_web_imports_flask():
    outside = [
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
        if "flask" in _imports(p) and p.relative_to(PACKAGE).parts[0] not in ("web", "emulators")
    ]
    assert outside == []
