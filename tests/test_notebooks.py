"""The conventions of notebooks/README.md that nbval does not check, read from the stored lessons.

nbval re-runs each lesson and compares its outputs with the stored ones; these tests only read the
.ipynb files, so they are fast and name the lesson and cell that break a convention: outputs stored
from one clean run, a figure, learning goals first and "Try it" last, no stderr, the ignore-output
tag only on run-dependent cells, and imports that requirements.txt installs.
"""
import ast
from importlib.metadata import packages_distributions
from pathlib import Path
import re
import sys

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
PROJECT = "minitorch_compress"

IGNORE_OUTPUT_TAG = "nbval-ignore-output"
# nbval's other markers would skip a cell or accept its error: a lesson may not use them.
FORBIDDEN_MARKERS = ("nbval-skip", "raises-exception", "NBVAL_SKIP", "NBVAL_RAISES_EXCEPTION")
# A cell may ignore its output only if its output depends on the run or the machine: timings,
# progress bars, and what the CPU's instructions make of a kernel (VNNI or not, the tile shape).
RUN_DEPENDENT = re.compile(r"\b(time|timeit|perf_counter|process_time|seconds|elapsed|latency|tqdm"
                           r"|instruction_counts|has_vnni)\b|progress\s*=\s*True")
# Outputs that differ between runs or machines, so nbval could not compare them.
UNSTABLE_OUTPUT = re.compile(r"\bat 0x[0-9a-fA-F]{6,}|" + re.escape(str(ROOT)))


def read(path):
    return nbformat.read(path, as_version=4)


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]


def output_texts(cell):
    for output in cell.get("outputs", []):
        if "text" in output:
            yield output.text
        for value in output.get("data", {}).values():
            if isinstance(value, str):
                yield value


def readme_lessons():
    """The lesson numbers in the table of notebooks/README.md, in the order listed."""
    rows = re.findall(r"^\|\s*(\d{2})\s*\|", (NOTEBOOKS / "README.md").read_text(), flags=re.M)
    return [int(n) for n in rows]


def test_readme_lists_the_lessons_from_00_without_gaps():
    assert len(LESSONS) >= 12
    assert readme_lessons() == list(range(len(LESSONS)))


def test_every_notebook_is_a_lesson_listed_in_the_readme():
    listed = set(readme_lessons())
    unlisted = [p.name for p in NOTEBOOKS.glob("*.ipynb") if not p.name[:2].isdigit() or int(p.name[:2]) not in listed]
    assert unlisted == []


def test_every_lesson_in_the_readme_has_exactly_one_notebook():
    files = {n: [p.name for p in LESSONS if int(p.name[:2]) == n] for n in readme_lessons()}
    assert {n: names for n, names in files.items() if len(names) != 1} == {}


@pytest.fixture(params=LESSONS, ids=[p.name for p in LESSONS])
def lesson(request):
    return request.param, read(request.param)


def test_outputs_are_stored_from_one_clean_run(lesson):
    path, notebook = lesson
    counts = [cell.execution_count for cell in code_cells(notebook)]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts {counts}"
    assert any(cell.outputs for cell in code_cells(notebook)), f"{path.name} has no stored output"


def test_has_a_figure(lesson):
    path, notebook = lesson
    images = [o for cell in code_cells(notebook) for o in cell.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} stores no image/png output"


def test_opens_with_learning_goals_and_ends_with_try_it(lesson):
    path, notebook = lesson
    first, last = notebook.cells[0], notebook.cells[-1]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {path.name[:2]} "), path.name
    assert "learning goals" in first.source.lower() and "prerequisite" in first.source.lower(), path.name
    assert last.cell_type == "markdown" and re.search(r"^#+ try it", last.source, re.I | re.M), path.name


def test_no_errors_stderr_or_unstable_outputs(lesson):
    path, notebook = lesson
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{path.name} cell {index}: {output.get('ename')}"
            assert output.get("name") != "stderr", f"{path.name} cell {index} wrote to stderr: {output.text[:200]!r}"
        for text in output_texts(cell):
            found = UNSTABLE_OUTPUT.search(text)
            assert not found, f"{path.name} cell {index} prints {found.group()!r}, which changes from run to run"


def test_ignore_output_only_on_timing_and_progress_cells(lesson):
    path, notebook = lesson
    ignored = []
    for index, cell in enumerate(notebook.cells):
        markers = set(cell.metadata.get("tags", [])) | set(re.findall(r"NBVAL_\w+", cell.source))
        assert not markers & set(FORBIDDEN_MARKERS), f"{path.name} cell {index} is marked {markers}"
        if markers & {IGNORE_OUTPUT_TAG, "NBVAL_IGNORE_OUTPUT"}:
            assert cell.cell_type == "code" and RUN_DEPENDENT.search(cell.source), (
                f"{path.name} cell {index} ignores its output but neither times anything, shows progress "
                f"nor inspects the machine's instructions")
            ignored.append(index)
    # Even a lesson about speed must compare most of its outputs.
    assert len(ignored) <= len(code_cells(notebook)) // 2, f"{path.name}: too many cells ignore their output: {ignored}"


def requirement_names():
    """Normalised distribution names (PEP 503) of requirements.txt's lines."""
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(normalise(re.match(r"[A-Za-z0-9._-]+", line).group()))
    return names


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(source):
    """Top-level names of the modules a cell imports (IPython magics and shell lines dropped)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    modules = set()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def test_imports_only_what_requirements_txt_installs(lesson):
    path, notebook = lesson
    required, distributions = requirement_names(), packages_distributions()
    for cell in code_cells(notebook):
        for module in imported_modules(cell.source) - set(sys.stdlib_module_names) - {PROJECT}:
            names = {normalise(d) for d in distributions.get(module, [])}
            assert names & required, (f"{path.name} imports {module} (distribution {sorted(names) or 'not installed'}), "
                                      f"which requirements.txt does not list")


def test_import_check_maps_modules_to_distributions():
    assert imported_modules("%matplotlib inline\nimport sklearn.datasets as d\nfrom scipy import sparse") == {"sklearn", "scipy"}
    assert {normalise(d) for d in packages_distributions()["sklearn"]} == {"scikit-learn"}
    assert {"scikit-learn", "matplotlib", "numpy", "numba", "scipy", "tqdm"} <= requirement_names()


def test_lessons_and_assignments_link_each_other():
    link = re.compile(r"\]\(((?:\.\./)+[\w/.-]+\.ipynb)\)")
    linked_assignments = set()
    for path in LESSONS:
        for target in link.findall(read(path).cells[-1].source):
            assert (path.parent / target).resolve().is_file(), f"{path.name} links to a missing {target}"
            linked_assignments.add(Path(target).name)
    sources = sorted((ROOT / "exercises" / "source").glob("*.ipynb"))
    assert linked_assignments == {p.name for p in sources}, "every assignment is linked from its lesson"
    for source in sources:
        targets = link.findall(read(source).cells[0].source)
        lessons = [(ROOT / "exercises" / "release" / t).resolve() for t in targets]
        assert lessons and all(p.is_file() and p.parent == NOTEBOOKS for p in lessons), source.name
