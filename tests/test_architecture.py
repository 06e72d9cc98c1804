"""The house rule (docs/architecture.md), read from the source: every module's
imports go down the layers, never up; no private name crosses a subpackage;
the runtime imports no TensorFlow; tools/ use the public API only."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_ae"

# Bottom to top. The shared helpers (modules directly in keras_ae/) are below
# everything; a subpackage imports from its own layer and the ones below.
LAYERS = ["runtime", "models", "data", "training", "tuning", "export", "codes", "anomaly",
          "cli"]
SHARED = 0
HEAVY = {"tensorflow", "keras", "tf2onnx", "tensorflow_datasets", "keras_tuner", "onnx",
         "sklearn", "matplotlib", "scipy"}


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module):
    """0 for keras_ae and its shared helpers, else 1 + the subpackage's index."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return 1 + LAYERS.index(parts[1])
    return SHARED


def _subpackage(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _imports(tree):
    """``(line, imported module, names)`` for every import, nested ones too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, tuple(a.name for a in node.names)


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def _is_module(name):
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_the_rule_sees_every_subpackage_and_no_other():
    found = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert found == set(LAYERS)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_and_keep_private_names_inside(path):
    module = _module_name(path)
    layer, home = _layer(module), _subpackage(module)
    problems = []
    for line, imported, names in _imports(ast.parse(path.read_text())):
        top = imported.split(".")[0]
        if home == "runtime" and top in HEAVY:
            problems.append(f"line {line}: the runtime imports {imported}")
        if top != "keras_ae":
            continue
        targets = [imported]
        targets += [f"{imported}.{n}" for n in names if _is_module(f"{imported}.{n}")]
        for target in targets:
            if imported == "keras_ae" and target == imported:
                continue  # the package itself (its version, its facade)
            if _layer(target) > layer:
                problems.append(f"line {line}: {module} (layer {layer}) imports "
                                f"{target} (layer {_layer(target)}), above it")
            crosses = _subpackage(target) != home
            private = [p for p in target.split(".")[1:] if p.startswith("_")
                       and p != "__init__"]
            if crosses and private and module != "keras_ae":
                problems.append(f"line {line}: {module} imports the private module {target}")
        if _subpackage(imported) != home:
            for name in names:
                if name.startswith("_") and name != "__version__":
                    problems.append(f"line {line}: {module} imports {imported}.{name}, "
                                    f"private to {imported}")
    problems += _private_attributes(path, module, home)
    assert not problems, "\n".join(problems)


def _private_attributes(path, module, home):
    """``alias._name`` where ``alias`` is a keras_ae module of another
    subpackage (bound by ``from keras_ae.x import y as alias``)."""
    tree = ast.parse(path.read_text())
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.startswith("keras_ae"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if _is_module(target) and _subpackage(target) != home:
                    aliases[alias.asname or alias.name] = target
    return [f"line {node.lineno}: {module} uses {aliases[node.value.id]}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in aliases and node.attr.startswith("_")
            and not node.attr.startswith("__")]


def _public_names(package):
    """A package's ``__all__``, read from its ``__init__`` without importing it."""
    init = PACKAGE.joinpath(*package.split(".")[1:], "__init__.py") if package != "keras_ae" \
        else PACKAGE / "__init__.py"
    tree = ast.parse(init.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in ("_EXPORTS", "__all__") for t in node.targets):
            value = node.value
            if isinstance(value, ast.Dict):  # module -> its public names
                names |= {e.value for v in value.values for e in v.elts}
            elif isinstance(value, ast.List):
                names |= {e.value for e in value.elts}
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "tools").glob("*.py")),
                         ids=lambda p: p.name)
def test_tools_use_the_public_api_only(path):
    """tools/ import ``keras_ae`` and its subpackages, and use only the names
    those list in ``__all__``."""
    tree = ast.parse(path.read_text())
    packages = {"keras_ae": "keras_ae"}  # local name -> package
    problems = []
    for line, imported, names in _imports(tree):
        if not imported.startswith("keras_ae"):
            continue
        if imported == "keras_ae" or imported.split(".")[1:] and \
                imported.split(".")[1] in LAYERS and imported.count(".") == 1:
            public = _public_names(imported) | set(LAYERS) | {"__version__", "files", "outputs"}
            for name in names:
                if name not in public:
                    problems.append(f"line {line}: {imported}.{name} is not public")
        else:
            problems.append(f"line {line}: imports {imported}, not a public package")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "keras_ae":
            for alias in node.names:
                if alias.name in LAYERS:
                    packages[alias.asname or alias.name] = f"keras_ae.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in packages and packages[node.value.id] != "keras_ae":
            if node.attr not in _public_names(packages[node.value.id]):
                problems.append(f"line {node.lineno}: {packages[node.value.id]}.{node.attr} "
                                f"is not public")
    assert not problems, "\n".join(problems)
