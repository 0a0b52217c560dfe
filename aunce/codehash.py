"""Code versions by meaning: the hash of what a step runs, so that only a change of code reruns it.

Snakemake reruns a job when its ``code`` parameter changes (rules/common.smk, ``CODE``); a training
checkpoint is resumed only by the same training code (aunce.train). Both take their code version
from here:

- **What a step runs** is the *import closure* of its entry point: the function of ``aunce.cli``
  that the step's subcommand calls, the modules that function and ``aunce.cli`` itself import, and
  every ``aunce`` module those import in turn (at module level or inside a function: a lazy import
  runs when the function does). It is computed from the source, not listed by hand, so a module
  a step starts to import is covered from then on (tests/test_codehash.py runs each step and
  fails if it imports a module its closure lacks). Of ``aunce.cli`` itself a stage hashes what
  its subcommands run: everything but the other subcommands' functions and their parsers.
- **What counts as a change** is a change of the module's syntax tree with its docstrings, its
  comments (the parser drops them) and the ``help=`` texts of its command-line options left out:
  a comment, a reworded docstring or help text, or a reformatting reruns nothing; a changed value,
  name or statement does.

The code versions are ``<aunce version>+<12 hex digits>``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable
from pathlib import Path

from aunce import __version__

PACKAGE = "aunce"
PACKAGE_DIR = Path(__file__).resolve().parent

#: Each stage of the workflow (the key of ``CODE`` a rule's ``code`` parameter names) and the
#: ``aunce`` subcommands its jobs run, by the function of aunce.cli each calls.
STAGES: dict[str, tuple[str, ...]] = {
    "data": ("cmd_synth", "cmd_cache", "cmd_population"),
    "contact_sheet": ("cmd_contact_sheet",),
    "warmstart": ("cmd_warmstart",),
    "pretrain": ("cmd_pretrain",),
    "embed": ("cmd_embed",),
    "linear_eval": ("cmd_linear_eval",),
    "train_eval": ("cmd_train_eval",),
    "cross_eval": ("cmd_cross_eval",),
    "tsne_sample": ("cmd_tsne_sample",),
    "tables": ("cmd_tables",),
    "figures": ("cmd_figure",),
    "report": ("cmd_report",),
    "pages": ("cmd_report_page",),
    "verdicts": ("cmd_verdicts",),
    "config": ("cmd_write_config",),
}


def _source_file(module: str) -> Path | None:
    """The source file of an ``aunce`` module (a package: its ``__init__.py``), or None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _tree(path: Path) -> ast.Module:
    """A Python file's syntax tree without docstrings and ``help=`` texts (parsed once)."""
    return _Normalise().visit(ast.parse(path.read_text(), filename=str(path)))


def _statements(nodes):
    """Every statement of ``nodes`` and of the blocks inside them (imports are statements: the
    expressions need no visit)."""
    for node in nodes:
        yield node
        for block in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _statements(getattr(node, block, None) or [])


def _is_package(module: str) -> bool:
    path = _source_file(module)
    return path is not None and path.name == "__init__.py"


def _imported(node: ast.AST, module: str) -> set[str]:
    """The ``aunce`` modules an AST (a module, or one function of it) imports, anywhere in it."""
    found: set[str] = set()
    package = module if _is_package(module) else module.rpartition(".")[0]
    for sub in _statements(node.body if isinstance(node, ast.Module) else [node]):
        if isinstance(sub, ast.Import):
            names = [alias.name for alias in sub.names]
        elif isinstance(sub, ast.ImportFrom):
            if sub.level:  # relative: from . import x, from .y import z
                base = package.split(".")
                base = base[: len(base) - (sub.level - 1)]
                origin = ".".join(base + ([sub.module] if sub.module else []))
            else:
                origin = sub.module or ""
            # `from aunce.data import cache` imports the submodule aunce.data.cache
            names = [origin] + [f"{origin}.{alias.name}" for alias in sub.names]
        else:
            continue
        for name in names:
            # importing aunce.a.b runs aunce/__init__.py and aunce/a/__init__.py first
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if _source_file(prefix) is not None:
                    found.add(prefix)
    return found


@functools.cache
def _module_imports(module: str) -> frozenset[str]:
    return frozenset(_imported(_tree(_source_file(module)), module))


def closure(modules: Iterable[str]) -> set[str]:
    """``modules`` and every ``aunce`` module they import, transitively (whole modules)."""
    seen: set[str] = set()
    todo = [m for m in modules if _source_file(m) is not None]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(_module_imports(module) - seen)
    return seen


def _cli_function(name: str) -> ast.FunctionDef:
    tree = _tree(_source_file("aunce.cli"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise KeyError(f"aunce.cli has no function {name}")


def stage_modules(stage: str) -> set[str]:
    """The modules a stage's jobs run: ``aunce.cli`` (its module-level imports, not the other
    subcommands' lazy ones), then the closure of what the stage's functions import."""
    cli = _tree(_source_file("aunce.cli"))
    top = {
        name
        for node in cli.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in _imported(node, "aunce.cli")
    }
    lazy = {name for fn in STAGES[stage] for name in _imported(_cli_function(fn), "aunce.cli")}
    return {"aunce.cli"} | closure(top | lazy)


class _Normalise(ast.NodeTransformer):
    """Drops what does not change what code does: docstrings, ``help=`` texts (and argparse's
    descriptions and epilogs), and the texts of aunce.cli's ``_command`` helper."""

    def _body(self, node):
        self.generic_visit(node)
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _body

    #: keyword arguments that are texts for a reader (argparse's help, description, epilog)
    TEXTS = ("help", "description", "epilog")
    #: aunce.cli's ``_command(sub, name, func, summary, description, examples)``: its texts
    COMMAND_TEXTS = slice(3, 6)

    def visit_Call(self, node):
        self.generic_visit(node)
        node.keywords = [k for k in node.keywords if k.arg not in self.TEXTS]
        if isinstance(node.func, ast.Name) and node.func.id == "_command":
            del node.args[self.COMMAND_TEXTS]
        return node


@functools.cache
def source_digest(path: str | Path) -> str:
    """SHA-256 of a Python file's syntax tree without docstrings and ``help=`` texts (comments and
    layout are not in a syntax tree). A file that does not parse: the hash of its bytes."""
    path = Path(path)
    try:
        tree = _tree(path)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()


def modules_digest(modules: Iterable[str], stage: str | None = None) -> str:
    """One SHA-256 over the normalised trees of ``modules`` (by name, in a fixed order); with a
    ``stage``, ``aunce.cli`` as far as that stage runs it (:func:`cli_digest`)."""
    digest = hashlib.sha256()
    for module in sorted(set(modules)):
        if module == "aunce.cli" and stage is not None:
            part = cli_digest(STAGES[stage])
        else:
            part = source_digest(_source_file(module))
        digest.update(f"{module}\0{part}\0".encode())
    return digest.hexdigest()


def code_version(stage: str) -> str:
    """The code version of a stage: ``<aunce version>+<12 hex digits>`` of :func:`stage_modules`."""
    return f"{__version__}+{modules_digest(stage_modules(stage), stage)[:12]}"


def code_versions() -> dict[str, str]:
    """Every stage's :func:`code_version`, as the workflow reads them each time it starts
    (rules/common.smk, ``CODE``: every Snakemake process, two in each cluster job).

    Parsing the package takes about 1.5 s; the result depends on the package's source files
    alone, so it is kept in ``aunce/__pycache__/code-versions-<key>.json``, the key a SHA-256 of
    every file's path and bytes (a few milliseconds), and computed again when any file changes.
    A package folder that cannot be written: computed every time."""
    key = hashlib.sha256(f"{__version__}\0".encode())
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        key.update(f"{path.relative_to(PACKAGE_DIR).as_posix()}\0".encode())
        key.update(hashlib.sha256(path.read_bytes()).digest())
    store = PACKAGE_DIR / "__pycache__" / f"code-versions-{key.hexdigest()[:16]}.json"
    try:
        versions = json.loads(store.read_text())
        if isinstance(versions, dict) and sorted(versions) == sorted(STAGES):
            return versions
    except (OSError, ValueError):
        pass
    versions = {stage: code_version(stage) for stage in STAGES}
    try:
        store.parent.mkdir(exist_ok=True)
        for old in store.parent.glob("code-versions-*.json"):
            old.unlink(missing_ok=True)  # those of earlier sources
        tmp = store.with_name(f".{store.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(versions, sort_keys=True))
        os.replace(tmp, store)
    except OSError:
        pass
    return versions


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _is_subcommand(node: ast.stmt) -> bool:
    """Whether a statement of ``build_parser`` starts a subcommand's parser: an assignment or a
    loop that calls ``add_parser`` (``p = sub.add_parser(...)``) or a helper given the
    subcommand's function (``p = _command(sub, "name", cmd_name, ...)``)."""
    if not isinstance(node, ast.Assign | ast.For):
        return False
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        if isinstance(call.func, ast.Attribute) and call.func.attr == "add_parser":
            return True
        values = [*call.args, *(k.value for k in call.keywords)]
        if any(isinstance(v, ast.Name) and v.id.startswith("cmd_") for v in values):
            return True
    return False


@functools.cache
def _cli_parts() -> tuple[tuple[str, frozenset[str], str], ...]:
    return cli_parts(_tree(_source_file("aunce.cli")))


def cli_parts(tree: ast.Module) -> tuple[tuple[str, frozenset[str], str], ...]:
    """A command-line module cut into parts, each (kind, names, hash of its normalised tree):
    ``cmd`` (a ``cmd_*`` function, by its name), ``parser`` (the statements of one subcommand's
    parser in ``build_parser``, from the statement that starts it (:func:`_is_subcommand`) to the
    next one, by the names they use) and ``common`` (everything else)."""

    def part(kind, nodes, names=frozenset()):
        dump = "\0".join(ast.dump(n, annotate_fields=False) for n in nodes)
        return kind, frozenset(names), hashlib.sha256(dump.encode()).hexdigest()

    parts = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_"):
            parts.append(part("cmd", [node], {node.name}))
        elif isinstance(node, ast.FunctionDef) and node.name == "build_parser":
            parts.append(part("common", [node.args, *node.decorator_list]))
            block: list[ast.stmt] = []
            for stmt in [*node.body, None]:  # None: the end of the body
                if block and (stmt is None or _is_subcommand(stmt) or isinstance(stmt, ast.Return)):
                    parts.append(part("parser", block, set().union(*map(_names, block))))
                    block = []
                if stmt is not None and (_is_subcommand(stmt) or block):
                    block.append(stmt)
                elif stmt is not None:
                    parts.append(part("common", [stmt]))
        else:
            parts.append(part("common", [node]))
    return tuple(parts)


@functools.cache
def cli_digest(functions: tuple[str, ...]) -> str:
    """The normalised tree of ``aunce.cli`` without the ``cmd_*`` functions other than
    ``functions`` and without the other subcommands' parsers in ``build_parser``: adding or
    changing another subcommand changes no stage's code version but that subcommand's."""
    return _digest_of_parts(_cli_parts(), functions)


def _digest_of_parts(parts, functions: tuple[str, ...]) -> str:
    own = set(functions)
    digest = hashlib.sha256()
    for kind, names, part in parts:
        if kind == "common" or names & own:
            digest.update(f"{kind}\0{part}\0".encode())
    return digest.hexdigest()


def module_file_digest(module: str) -> str | None:
    """The normalised-tree hash of an importable module outside the package (a user's loss module,
    found with the working directory first on sys.path as the job finds it); None if not found."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return source_digest(spec.origin)
