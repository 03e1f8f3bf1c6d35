"""Meta-tests: docs/plugins.md documents every hook (name and parameters) and every native-model method."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from harness import hookspecs, native

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HOOKS = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("convbench_")]
METHODS = sorted({name for cls in (native.NativeModel, native.TimedModel, native.ResumableModel,
                                    native.PipelinedModel) for name, _ in
                  inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")})


def section(text: str, hook: str) -> str:
    """The doc's section for ``hook``: from its heading to the next heading."""
    match = re.search(rf"^#+ .*`{hook}\(.*$", text, re.MULTILINE)
    assert match, f"docs/plugins.md has no heading for hook {hook}"
    nxt = re.search(r"^#+ ", text[match.end():], re.MULTILINE)
    return text[match.start(): match.end() + (nxt.start() if nxt else len(text))]


def test_found_hooks_and_methods():
    assert len(HOOKS) >= 6 and {"forward", "train_step", "run_phase"} <= set(METHODS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_parameters(hook: str):
    part = section(DOC.read_text(), hook)
    for param in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f"`{param}`" in part, f"docs/plugins.md: parameter {param!r} of {hook} is not documented"
    firstresult = getattr(hookspecs, hook).convbench_spec.get("firstresult", False)  # type: ignore[attr-defined]
    assert ("firstresult" in part.splitlines()[0]) == firstresult, f"{hook}: mark firstresult hooks in the heading"


@pytest.mark.parametrize("method", METHODS)
def test_native_model_method_is_documented(method: str):
    assert re.search(rf"`{method}\(", DOC.read_text()), f"docs/plugins.md does not document {method}()"


def test_doc_names_the_environment_variables_and_entry_point_group():
    from harness.plugin_manager import DISABLE_ENV, EXTRA_ENV
    text = DOC.read_text()
    for needle in (DISABLE_ENV, EXTRA_ENV, "[project.entry-points.convbench]", "pytest -p harness.testing"):
        assert needle in text


def test_the_one_line_import_of_the_doc_works_and_names_what_harness_exports():
    """docs/plugins.md's `from harness import ...` line runs, and every name the package exports lazily exists."""
    import harness
    line = next(ln for ln in DOC.read_text().splitlines() if ln.startswith("from harness import "))
    exec(line, {})
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name
    with pytest.raises(AttributeError):
        harness.NoSuchThing  # noqa: B018
