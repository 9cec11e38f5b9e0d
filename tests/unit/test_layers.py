"""The layering is a test, not a hope: each package imports only across the arrows of the map.

From the top (`docs/architecture.md`, "Layers"):

    eval      measures the product: may import every package
    service   settings, providers, persistence, serving, CLI: every package but eval
    graphs    the graph builders: nodes, team types, memory, tools
    nodes     one module per node, plus their helpers: team types, memory, tools
    team types  graphs/state, context, deps, selection_state: memory, tools
    memory    memory, tools
    tools     tools

and two rules inside a layer: a node module (one a graph builder takes a `make_*` node factory
from) imports no other node module (shared parts live in helper modules or the team types),
and only `service/` reads the environment (`os.environ`, `os.getenv`), but for the allow-list of
what a child process inherits (`tools.child_env`).
The allowed upward imports are the CLI's `bench` and `eval` commands (`service.cli` →
`eval.bench`, `eval.trajectory_run`, `eval.judge_agreement`, `eval.langsmith_upload`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("eval", "service", "graphs", "nodes", "memory", "tools")
DATA_REPOS = REPO / "eval" / "datasets" / "repo_tasks"
"""Small repositories the repository tasks hand to agents: data, not the project's modules."""
TEAM_TYPES = frozenset(
    {
        "graphs.state",
        "graphs.context",
        "graphs.deps",
        "graphs.selection_state",
        "graphs.react_state",
        "graphs.plan_state",
    }
)

ALLOWED: dict[str, frozenset[str]] = {
    "eval": frozenset({"eval", "service", "graphs", "team", "nodes", "memory", "tools"}),
    "service": frozenset({"service", "graphs", "team", "nodes", "memory", "tools"}),
    "graphs": frozenset({"graphs", "team", "nodes", "memory", "tools"}),
    "nodes": frozenset({"nodes", "team", "memory", "tools"}),
    "team": frozenset({"team", "memory", "tools"}),
    "memory": frozenset({"memory", "tools"}),
    "tools": frozenset({"tools"}),
}
EXCEPTIONS = frozenset(
    {
        ("service.cli", "eval.bench"),
        ("service.cli", "eval.trajectory_run"),
        ("service.cli", "eval.judge_agreement"),
        ("service.cli", "eval.langsmith_upload"),
    }
)
READS_ENVIRONMENT = frozenset({"service", "tools.child_env"})
"""`tools.child_env` is the allow-list a child process's environment is built from."""


@dataclass(frozen=True)
class Violation:
    """One import (or environment read) across a forbidden arrow."""

    module: str
    line: int
    what: str


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to (None: not the project's)."""
    if module in TEAM_TYPES or any(module.startswith(f"{t}.") for t in TEAM_TYPES):
        return "team"
    top = module.split(".")[0]
    return top if top in PACKAGES else None


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from graphs import state` imports graphs.state; `from x.y import Z`, x.y.Z
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _reads_environment(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr in ("environ", "getenv", "environb"):
                lines.append(node.lineno)
    return lines


def _excepted(module: str, name: str) -> bool:
    return any(module == m and (name == t or name.startswith(f"{t}.")) for m, t in EXCEPTIONS)


def _node_module(name: str, node_modules: frozenset[str]) -> str | None:
    """The node module `name` is, or is a member of (`nodes.coder.CodeEdit` → `nodes.coder`)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if (candidate := ".".join(parts[:end])) in node_modules:
            return candidate
    return None


def violations(module: str, source: str, node_modules: frozenset[str]) -> list[Violation]:
    """What `module` (its source given) imports or reads against the map."""
    tree = ast.parse(source)
    layer = layer_of(module)
    assert layer is not None, module
    found: list[Violation] = []
    for line, name in _imported(tree):
        target = layer_of(name)
        if target is None or _excepted(module, name):
            continue
        if target not in ALLOWED[layer]:
            found.append(Violation(module, line, f"imports {name} ({layer} → {target})"))
        elif module in node_modules and (other := _node_module(name, node_modules)) not in (
            None,
            module,
        ):
            found.append(Violation(module, line, f"node module imports node module {other}"))
    if layer not in READS_ENVIRONMENT and module not in READS_ENVIRONMENT:
        found += [Violation(module, ln, "reads the environment") for ln in _reads_environment(tree)]
    return found


def project_modules() -> dict[str, str]:
    """Every module of the packages, by dotted name, with its source."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path.is_relative_to(DATA_REPOS):
                continue
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path.read_text()
    return modules


def node_modules_of(modules: dict[str, str]) -> frozenset[str]:
    """The modules of nodes/ a graph builder takes a node factory (`make_*`) from."""
    found = set()
    for name, source in modules.items():
        if layer_of(name) != "graphs":
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nodes."):
                if any(alias.name.startswith("make_") for alias in node.names):
                    found.add(str(node.module))
    return frozenset(found)


def test_every_module_imports_only_across_the_maps_arrows() -> None:
    modules = project_modules()
    nodes = node_modules_of(modules)
    found = [v for name, src in modules.items() for v in violations(name, src, nodes)]
    assert not found, "\n".join(f"{v.module}:{v.line} {v.what}" for v in found)


SERVICE_PARTS: dict[str, frozenset[str]] = {
    "service.serving": frozenset({"service.api", "service.llm"}),
    "service.api": frozenset(),
    "service.llm": frozenset(),
}
"""Inside service/: serving assembles the server from the API and the model; the API and the
model providers know nothing of serving or of each other. Top-level modules are shared."""


def test_the_parts_of_service_import_one_way() -> None:
    found = []
    for name, source in project_modules().items():
        part = next((p for p in SERVICE_PARTS if name.startswith(f"{p}.")), None)
        if part is None:
            continue
        for line, imported in _imported(ast.parse(source)):
            other = next((p for p in SERVICE_PARTS if imported.startswith(f"{p}.")), None)
            if other not in (None, part) and other not in SERVICE_PARTS[part]:
                found.append(f"{name}:{line} imports {imported}")
    assert not found, "\n".join(found)


def test_nodes_import_nothing_from_service() -> None:
    modules = project_modules()
    assert any(name.startswith("nodes.") for name in modules)
    for name, source in modules.items():
        if name.startswith("nodes."):
            imported = [n for _, n in _imported(ast.parse(source))]
            assert not [n for n in imported if n.split(".")[0] == "service"], name


# Each violation the map forbids, as a synthetic module: the checker must name it.
FORBIDDEN = [
    ("nodes.synthetic", "from service import deps\n", "nodes → service"),
    ("nodes.synthetic", "import service.settings\n", "nodes → service"),
    ("nodes.synthetic", "from graphs.team import compile_team\n", "nodes → graphs"),
    ("memory.synthetic", "from service.deps import memory\n", "memory → service"),
    ("memory.synthetic", "from nodes.coder import CodeEdit\n", "memory → nodes"),
    ("tools.synthetic", "from memory.episodic import EpisodicMemory\n", "tools → memory"),
    ("graphs.state", "from nodes.route import decide\n", "team → nodes"),
    ("graphs.synthetic", "from service.team_deps import ServiceDeps\n", "graphs → service"),
    ("service.api.app", "from eval.bench import run_benchmark\n", "service → eval"),
    ("nodes.synthetic", "import os\nkey = os.environ['OPENAI_API_KEY']\n", "environment"),
    ("tools.synthetic", "import os\nos.getenv('HOME')\n", "environment"),
]


@pytest.mark.parametrize(("module", "source", "arrow"), FORBIDDEN)
def test_the_checker_names_each_forbidden_import(module: str, source: str, arrow: str) -> None:
    found = violations(module, source, frozenset())
    assert len(found) == 1 and arrow in found[0].what, found


def test_a_node_module_importing_another_node_module_is_named() -> None:
    nodes = frozenset({"nodes.deliver", "nodes.approval"})
    found = violations("nodes.deliver", "from nodes.approval import make_approval\n", nodes)
    assert [v.what for v in found] == ["node module imports node module nodes.approval"]
    helper = violations("nodes.deliver", "from nodes.candidates import SOLUTION\n", nodes)
    assert helper == []


def test_allowed_imports_are_not_named() -> None:
    allowed = [
        ("nodes.synthetic", "from graphs.state import TeamState\nfrom tools.gateway import X\n"),
        ("graphs.team", "from nodes.coder import make_coder\nfrom graphs.deps import TeamDeps\n"),
        ("service.cli", "from eval.bench import run_benchmark\n"),
        ("service.settings", "import os\nos.environ.get('X')\n"),
    ]
    for module, source in allowed:
        assert violations(module, source, frozenset()) == [], module
