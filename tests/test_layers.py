"""The package's layers: every import points down (or within its own layer), and no two modules
import each other, directly or round a loop. Lazy imports inside functions count too."""
import ast
from pathlib import Path

import pytest
from helpers import ROOT

PACKAGE = ROOT / "tempered_gan"
# Lowest first: a module may import from its own layer and the layers before it.
LAYERS = ("errors", "util", "data", "method", "config", "metrics", "training", "studies", "cli", "")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The tempered_gan modules ``path`` imports (``from tempered_gan.x import y`` counts as
    tempered_gan.x.y when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tempered_gan")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tempered_gan"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists() or \
                    (PACKAGE.parent / Path(*sub.split("."))).is_dir()
                found.add(sub if is_module else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the package imports absolutely")
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    return LAYERS.index(top if top in LAYERS else "")


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def upward(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} imports {b}" for a, targets in edges.items() for b in targets if layer(b) > layer(a))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Loops of imports between modules (a package importing its own modules is not one)."""
    def children(a):
        return [b for b in edges.get(a, ()) if b in edges and not a.startswith(b + ".") and not b.startswith(a + ".")
                and not (a.count(".") == 1 and a.split(".")[-1] in LAYERS and b.startswith(a + "."))]
    found, state = [], {}

    def visit(a, stack):
        state[a] = 1
        for b in children(a):
            if state.get(b) == 1:
                found.append(stack[stack.index(b):] + [b])
            elif b not in state:
                visit(b, stack + [b])
        state[a] = 2
    for a in sorted(edges):
        if a not in state:
            visit(a, [a])
    return found


def test_every_import_points_down_or_sideways():
    edges = graph()
    assert len(edges) > 40
    assert upward(edges) == []


def test_no_module_imports_itself_round_a_loop():
    assert cycles(graph()) == []


def test_the_check_fails_on_an_upward_arrow_and_on_a_cycle():
    edges = graph()
    edges["tempered_gan.method.exits"] = edges["tempered_gan.method.exits"] | {"tempered_gan.config.train_config"}
    assert upward(edges) == ["tempered_gan.method.exits imports tempered_gan.config.train_config"]
    edges = graph()
    edges["tempered_gan.studies.success"] = edges["tempered_gan.studies.success"] | {"tempered_gan.studies.sweep"}
    assert cycles(edges)


@pytest.mark.parametrize("top", [p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("_")])
def test_every_subpackage_is_a_layer(top):
    assert top in LAYERS
