"""What an answer cell may not do, found by parsing its code (never by searching its text).

Two kinds of findings:

* **tampering** (any assignment): reaching the grader or the interpreter's machinery
  (``Checker``, ``sys``, ``inspect``, ``gc``, ``getattr``, dunder attributes, threads, files,
  the environment...), assigning to an attribute or item of a module or of a name the checks
  use, rebinding at top level a name the notebook's own cells define or a built-in, or using a
  check cell's variables. A tampering answer cell is not run at all: it is graded as its
  empty stub.
* **forbidden names** (per task, ``"forbid": ["prune.AGP", "L1Unstructured"]`` in the answer
  cell's grading metadata): the library function the task asks the learner to write. An entry
  matches a use whose resolved dotted name contains it on dot boundaries: ``prune.AGP`` matches
  ``mc.prune.AGP(...)``, ``from minitorch_compress.prune import AGP`` and ``p.AGP`` after
  ``from minitorch_compress import prune as p``. The cell still runs (later tasks may build on
  it) but its own task earns nothing.

Parsing cannot see through every disguise, which is why the names that lead to one (``getattr``,
``eval``, ``__dict__``, ``sys.modules``...) count as tampering.
"""
import ast
import builtins

TAMPER = frozenset({
    "grading", "Checker", "checker", "check", "sys", "inspect", "gc", "ctypes", "ctypeslib",
    "traceback", "builtins", "importlib", "eval", "exec", "compile", "getattr", "setattr",
    "delattr", "globals", "locals", "vars", "__import__", "breakpoint", "get_ipython", "threading",
    "_thread", "multiprocessing", "concurrent", "asyncio", "signal", "subprocess", "environ",
    "getenv", "putenv", "open", "io", "pickle", "marshal", "types", "atexit", "weakref", "pathlib",
    "shutil", "tempfile", "socket",
})
DUNDERS_ALLOWED = frozenset({"__init__", "__call__", "__len__", "__getitem__", "__repr__"})
BUILTINS = frozenset(name for name in dir(builtins) if not name.startswith("_"))


class Context:
    """What the notebook's own cells define: every name bound by its ordinary cells, the imports
    of its check cells (``defined``), and the other variables of its check cells."""

    def __init__(self, setup_sources=(), check_sources=()):
        self.imports = {}          # name -> dotted module path it is bound to
        self.defined = set()
        self.check_names = set()
        for text, check in [(t, False) for t in setup_sources] + [(t, True) for t in check_sources]:
            try:
                tree = ast.parse(text)
            except SyntaxError:
                continue
            imported = _imports(tree)
            self.imports.update(imported)
            self.defined.update(imported)
            bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            bound |= {n.name for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
            (self.check_names if check else self.defined).update(bound)
        self.check_names -= self.defined


def inspect_answer(code, context, forbid=()):
    """``(tampering, forbidden)``: two lists of sentences ``"line N: ..."`` about ``code``.

    Code that does not parse gives two empty lists: it fails when run, like any wrong answer.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return [], []
    return _Inspector(context, forbid).run(tree)


def forbidden_through_helpers(roots, answers, context, forbid, own=None):
    """Forbidden names reached from the names ``roots`` (what a task's answer defines) through
    the top-level definitions of the answer cells ``answers`` (``[(cell id, code)]`` in notebook
    order, up to the task's own): a task's function defined in another answer cell, or calling a
    helper defined there, is held to the task's forbid list all the same. Definitions in the
    task's ``own`` cell are followed but not reported (``inspect_answer`` reads that cell whole).
    Sentences ``"<name> in answer cell 'x', line N: uses ..."``."""
    if not forbid:
        return []
    definitions = {}   # name -> (cell id, node): the last top-level definition wins, as when run
    for cell_id, code in answers:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in tree.body:
            for name in _top_level_names(node):
                definitions[name] = (cell_id, node)
    found, seen, todo = [], set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        cell_id, node = definitions[name]
        if cell_id != own:
            module = ast.Module(body=[node], type_ignores=[])
            found += [f"{name} in answer cell {cell_id!r}, {use}"
                      for use in _Inspector(context, forbid).run(module)[1]]
        todo += [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return _unique(found)


def top_level_names(code):
    """The names ``code`` binds at its top level (functions, classes, assignments)."""
    try:
        return [name for node in ast.parse(code).body for name in _top_level_names(node)]
    except SyntaxError:
        return []


def _top_level_names(node):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return []


def _imports(tree):
    """``{bound name: dotted path}`` for the import statements anywhere in ``tree``."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    found[alias.asname] = alias.name
                else:
                    found[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                found[alias.asname or alias.name] = f"{'.' * node.level}{node.module or ''}.{alias.name}".lstrip(".")
    return found


class _Inspector(ast.NodeVisitor):
    def __init__(self, context, forbid):
        # Each entry as written, and resolved through the notebook's imports ("np.add" -> "numpy.add").
        self.context, self.forbid = context, []
        for entry in forbid:
            head, _, rest = entry.partition(".")
            resolved = ".".join(filter(None, [context.imports.get(head, head), rest]))
            self.forbid += [(entry, tuple(spelling.split("."))) for spelling in {entry, resolved}]
        self.tampering, self.forbidden = [], []
        self.scopes = [set()]        # local names of the enclosing functions (module level: empty)
        self.aliases = dict(context.imports)
        self.own = set()             # names the answer binds at its top level

    def run(self, tree):
        self.aliases.update(_imports(tree))
        self._module_bindings(tree)
        self.visit(tree)
        return _unique(self.tampering), _unique(self.forbidden)

    # -- findings ---------------------------------------------------------------------------
    def _tamper(self, node, what):
        self.tampering.append(f"line {node.lineno}: {what}")

    def _use(self, node, dotted, written=None):
        """``dotted``: the name resolved through imports; ``written``: as the code spells it."""
        parts = tuple(dotted.split("."))
        spellings = [parts] + ([tuple(written.split("."))] if written else [])
        for name, entry in self.forbid:
            if any(p[i:i + len(entry)] == entry for p in spellings for i in range(len(p) - len(entry) + 1)):
                self.forbidden.append(f"line {node.lineno}: uses {name}")
        for part in parts:
            if part in TAMPER:
                self._tamper(node, f"uses {part!r}, which answers may not touch")
                break

    def _local(self, name):
        return any(name in scope for scope in self.scopes[1:])

    # -- what is bound at the top level -----------------------------------------------------
    def _module_bindings(self, tree):
        protected = self.context.defined
        for node in tree.body:
            names = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for name, path in _imports(ast.Module(body=[node], type_ignores=[])).items():
                    if name in protected and self.context.imports.get(name) != path:
                        self._tamper(node, f"rebinds {name!r}, which the notebook imports")
                continue
            else:
                names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)
                         and isinstance(n.ctx, (ast.Store, ast.Del))
                         and not self._inside_function(tree, n)]
            self.own.update(names)
            for name in names:
                if name in protected:
                    self._tamper(node, f"rebinds {name!r}, which the notebook's own cells define")
                elif name in BUILTINS:
                    self._tamper(node, f"rebinds the built-in {name!r}")

    @staticmethod
    def _inside_function(tree, target):
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                if any(n is target for n in ast.walk(node)):
                    return True
        return False

    # -- scopes -----------------------------------------------------------------------------
    def _function(self, node):
        name = getattr(node, "name", "")
        if name.startswith("__") and name.endswith("__") and name not in DUNDERS_ALLOWED:
            self._tamper(node, f"defines {name!r} (an object that compares equal to anything)")
        local = set()
        args = node.args
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None:
                local.add(arg.arg)
        declared = set()
        body = node.body if isinstance(node.body, list) else [node.body]
        for child in body:
            for n in ast.walk(child):
                if isinstance(n, (ast.Global, ast.Nonlocal)):
                    declared.update(n.names)
                elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    local.add(n.id)
                elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    local.add(n.name)
                elif isinstance(n, (ast.Import, ast.ImportFrom)):
                    local.update(_imports(ast.Module(body=[n], type_ignores=[])))
                elif isinstance(n, ast.ExceptHandler) and n.name:
                    local.add(n.name)
        for name in declared:
            self._tamper(node, f"declares {name!r} global or nonlocal")
        self.scopes.append(local - declared)
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self.visit(decorator)
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        for child in body:
            self.visit(child)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    # -- uses -------------------------------------------------------------------------------
    def visit_Import(self, node):
        for alias in node.names:
            self._use(node, alias.name)

    def visit_ImportFrom(self, node):
        for alias in node.names:
            self._use(node, f"{node.module or ''}.{alias.name}".lstrip("."))

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and not self._local(node.id):
            self._check_variable(node, node.id)
            self._use(node, self.aliases.get(node.id, node.id), node.id)
        elif node.id in TAMPER and len(self.scopes) == 1:
            self._tamper(node, f"rebinds {node.id!r}, which answers may not touch")

    def visit_Attribute(self, node):
        chain, root = [node.attr], node.value
        while isinstance(root, ast.Attribute):
            chain.append(root.attr)
            root = root.value
        for attr in chain:
            if attr.startswith("__") and attr.endswith("__") and attr not in DUNDERS_ALLOWED:
                self._tamper(node, f"uses the attribute {attr!r}")
        if isinstance(root, ast.Name) and not self._local(root.id):
            base = self.aliases.get(root.id, root.id)
            self._use(node, ".".join([base] + chain[::-1]), ".".join([root.id] + chain[::-1]))
            self._check_variable(node, root.id)
        else:  # an attribute of a call's result, a subscript...: its names still count
            self._use(node, ".".join(chain[::-1]))
            self.visit(root)
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._store_into(node, root)

    def visit_Subscript(self, node):
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            root = node.value
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            self._store_into(node, root)
        self.generic_visit(node)

    def _check_variable(self, node, name):
        # Inside a function, which the checks call: a check cell's data must stay as it was.
        if len(self.scopes) > 1 and name in self.context.check_names and name not in self.own:
            self._tamper(node, f"uses {name!r}, a variable of a check cell")

    def _store_into(self, node, root):
        if not isinstance(root, ast.Name):
            self._tamper(node, "assigns into the result of an expression")
        elif not self._local(root.id) and (root.id in self.aliases or root.id in self.context.defined):
            self._tamper(node, f"changes {root.id!r} (a module or a name the notebook defines)")


def _unique(items):
    return list(dict.fromkeys(items))
