"""The package's modules form layers; a module imports only from its own layer or lower ones, never
upward, also inside functions, and never another module's private (``_``) names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "skelrecall"

#: module (or package prefix) -> layer; the longest matching prefix decides
LAYERS = {
    # foundations: no science, no runs
    "skelrecall": 0,
    "skelrecall.configs": 0,
    "skelrecall.paths": 0,
    "skelrecall.io": 0,
    "skelrecall.environment": 0,
    "skelrecall.render": 0,
    "skelrecall.stats": 0,
    "skelrecall.skeleton": 0,
    "skelrecall.colours": 0,
    # the science: losses, metrics, networks, the dataset layout and augmentation
    "skelrecall.metrics": 1,
    "skelrecall.losses": 1,
    "skelrecall.models": 1,
    "skelrecall.data": 1,
    "skelrecall.data.layout": 1,
    "skelrecall.data.augmentation": 1,
    "skelrecall.data.cache": 1,
    # writing datasets (converters and synthetic generators share the converters' common helpers)
    "skelrecall.data.converters": 2,
    "skelrecall.data.synthetic": 2,
    # one run: data module, inference, evaluation, the run folder, the LightningModule
    "skelrecall.data.datamodule": 3,
    "skelrecall.inference": 3,
    "skelrecall.evaluate": 3,
    "skelrecall.runs": 3,
    "skelrecall.resume": 3,
    "skelrecall.module": 3,
    "skelrecall.progress": 3,
    # entry points for one run, and the plan
    "skelrecall.train": 4,
    "skelrecall.experiments": 4,
    "skelrecall.predict": 4,
    # what is drawn and tabulated from runs
    "skelrecall.tables": 5,
    "skelrecall.figures": 5,
    # measurements and reports
    "skelrecall.bench": 6,
    "skelrecall.report": 6,
    # commands that drive the rest
    "skelrecall.reproduce": 7,
    "skelrecall.data.cli": 7,
    "skelrecall.bench.cli": 7,
}


def layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    raise KeyError(f"{module} has no layer in tests/test_layers.py; add it to LAYERS")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every ``skelrecall`` import in ``path``."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "skelrecall"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] == "skelrecall":
                out.append((node.lineno, base, [a.name for a in node.names]))
    return out


def test_no_upward_or_private_imports():
    problems = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 40
    for path in files:
        me = module_name(path)
        for line, target, names in imports(path):
            if layer(target) > layer(me):
                problems.append(
                    f"{path.relative_to(PACKAGE)}:{line}: {me} (layer {layer(me)}) imports {target} "
                    f"(layer {layer(target)})"
                )
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and not target.startswith(me):
                problems.append(f"{path.relative_to(PACKAGE)}:{line}: imports private {private} from {target}")
    assert not problems, "\n".join(problems)


def test_the_check_catches_an_upward_import(tmp_path):
    assert layer("skelrecall.metrics.topology") == 1 and layer("skelrecall.report") == 6
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from skelrecall.report import make_report\n")
    assert imports(bad) == [(2, "skelrecall.report", ["make_report"])]
