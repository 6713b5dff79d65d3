"""The pages' templates (``<package>/templates/*.html``, loaded by ``console.rendering``) fail
here, without a server, when one does not parse, names a template that is not there, reads
a name its page's code does not pass, lies unused, is not escaped, would not be shipped, or
loads a script using the shared helpers (``Hotline.``, static/console.js) without them.

"The code passes" is read from the source: every call naming a template (``render(request,
_ENV, "x.html", user, a=..)``, ``_html("x.html", .., a=..)``,
``_ENV.get_template("x.html").render(a=..)``) gives its keyword names; ``pages.render``
adds the frame's (``user``, ``csrf``, ``local`` ...). A template needs the names it reads
and those of the templates it extends, includes or imports.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest
from jinja2 import meta

from callcenter.console.rendering import CONSOLE_PACKAGE, environment

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "callcenter"
STATIC = SOURCE / "console" / "static"


def _packages() -> dict[str, list[str]]:
    """Every package with page templates: its name and its templates' names."""
    found: dict[str, list[str]] = {}
    for folder in sorted(SOURCE.rglob("templates")):
        pages = sorted(p.name for p in folder.glob("*.html"))
        if pages:
            package = ".".join(folder.parent.relative_to(ROOT).parts)
            found[package] = pages
    return found


PACKAGES = _packages()
ALL = [(package, name) for package, names in PACKAGES.items() for name in names]


def _where(package: str, name: str) -> tuple[str, str]:
    """The package whose file a name means in ``package``'s environment (its own first)."""
    return (package, name) if name in PACKAGES.get(package, ()) else (CONSOLE_PACKAGE, name)


def _source(package: str, name: str) -> str:
    return (SOURCE.joinpath(*package.split(".")[1:]) / "templates" / name).read_text("utf-8")


def _referenced(package: str, name: str) -> list[str]:
    env = environment(package)
    return [n for n in meta.find_referenced_templates(env.parse(_source(package, name)))
            if n is not None]


def _needs(package: str, name: str) -> set[str]:
    """The names a template and those it extends, includes or imports read from the context."""
    env = environment(package)
    needed = meta.find_undeclared_variables(env.parse(_source(package, name))) - set(env.globals)
    for other in _referenced(package, name):
        needed |= _needs(*_where(package, other))
    return needed


@dataclass(frozen=True)
class Use:
    """A call in the code that renders a template, and the names it passes."""

    module: str
    line: int
    package: str  # whose environment the module renders with
    template: str
    passes: frozenset[str]
    frame: bool  # through pages.render, which adds the frame's names


def _frame_names() -> frozenset[str]:
    """The names ``console.pages.render`` passes besides the page's own."""
    tree = ast.parse((SOURCE / "console" / "pages.py").read_text("utf-8"))
    (fn,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "render"]
    calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call)
             and isinstance(c.func, ast.Attribute) and c.func.attr == "render"]
    return frozenset(k.arg for c in calls for k in c.keywords if k.arg is not None)


def _html_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) \
            and node.value.endswith(".html"):
        return node.value
    return None


def _uses() -> Iterator[Use]:
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        envs = {a.value for c in ast.walk(tree) if isinstance(c, ast.Call)
                and isinstance(c.func, ast.Name) and c.func.id == "environment"
                for a in c.args if isinstance(a, ast.Constant)}
        for call in (c for c in ast.walk(tree) if isinstance(c, ast.Call)):
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "render" \
                    and isinstance(func.value, ast.Call) \
                    and isinstance(func.value.func, ast.Attribute) \
                    and func.value.func.attr == "get_template":
                names = [n for n in map(_html_name, func.value.args) if n]
                frame = False
            elif isinstance(func, ast.Attribute) and func.attr == "get_template":
                continue  # counted with its .render(...)
            else:
                names = [n for n in map(_html_name, call.args) if n]
                frame = isinstance(func, ast.Name) and func.id == "render"
            for name in names:
                assert len(envs) == 1, f"{module}:{call.lineno} renders {name} with " \
                                       f"environments {sorted(envs)}"
                assert all(k.arg is not None for k in call.keywords), \
                    f"{module}:{call.lineno}: **values hide what {name} is given"
                yield Use(module, call.lineno, next(iter(envs)),
                          name, frozenset(str(k.arg) for k in call.keywords), frame)


USES = list(_uses())


def test_given_source_tree_then_pages_found() -> None:
    assert {"callcenter.console", "callcenter.tickets", "callcenter.wallboard",
            "callcenter.desk", "callcenter.callbacks"} <= set(PACKAGES)
    assert ("callcenter.console", "base.html") in ALL
    assert len(USES) >= 13, USES


@pytest.mark.parametrize(("package", "name"), ALL, ids=[f"{p}:{n}" for p, n in ALL])
def test_given_template_then_it_compiles_and_what_it_names_exists(package: str,
                                                                  name: str) -> None:
    env = environment(package)
    env.get_template(name)  # a syntax error raises TemplateSyntaxError, naming file and line
    for other in _referenced(package, name):
        env.get_template(other)  # TemplateNotFound


@pytest.mark.parametrize(("package", "name"), ALL, ids=[f"{p}:{n}" for p, n in ALL])
def test_given_template_then_escaped_and_strict(package: str, name: str) -> None:
    env = environment(package)
    assert callable(env.autoescape) and env.autoescape(name) is True
    assert env.undefined is jinja2.StrictUndefined


@pytest.mark.parametrize("use", USES, ids=[f"{u.module}:{u.line}:{u.template}" for u in USES])
def test_given_code_rendering_a_template_then_it_passes_every_name_the_template_reads(
        use: Use) -> None:
    environment(use.package).get_template(use.template)
    given = use.passes | (_frame_names() if use.frame else frozenset())
    missing = _needs(*_where(use.package, use.template)) - given
    assert not missing, f"{use.module}:{use.line} renders {use.template} without {missing}"


def test_given_templates_then_each_rendered_by_code_or_used_by_another_template() -> None:
    used = {_where(u.package, u.template) for u in USES}
    used |= {_where(p, other) for p, n in ALL for other in _referenced(p, n)}
    assert not set(ALL) - used, sorted(set(ALL) - used)


def test_given_pyproject_then_every_templates_folder_is_package_data() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    package_data = data["tool"]["setuptools"]["package-data"]
    for package in PACKAGES:
        assert "templates/*.html" in package_data.get(package, []), package


@pytest.mark.parametrize(("package", "name"), ALL, ids=[f"{p}:{n}" for p, n in ALL])
def test_given_page_scripts_then_each_exists_and_console_js_comes_before_those_using_it(
        package: str, name: str) -> None:
    scripts = re.findall(r'<script src="/console/static/([^"]+)"', _source(package, name))
    for i, script in enumerate(scripts):
        assert (STATIC / script).is_file(), script
        if "Hotline." in (STATIC / script).read_text("utf-8"):
            assert "console.js" in scripts[:i], f"{name} loads {script} without console.js"


def test_given_markup_in_values_when_rendered_then_escaped() -> None:
    hostile = "<script>alert('x')</script> & \"quoted\""
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;quoted&#34;"
    page = environment(CONSOLE_PACKAGE).get_template("error.html").render(
        title=hostile, error_id="e", message=hostile, back="/console/", back_label=hostile)
    assert "<script>" not in page
    assert page.count(escaped) == 4  # the title twice (<title>, <h1>), message, link
    board = environment("callcenter.wallboard").get_template("wallboard.html").render(
        csrf="t", tenant="dn", tenant_name=hostile, timezone="Asia/Ho_Chi_Minh",
        ws="/console/wallboard/ws?tenant=dn")
    assert "<script>" not in board
    assert board.count(escaped) == 2  # <title>, <h1>


def test_given_slice_environment_then_its_own_templates_first_then_the_console_frame() -> None:
    env = environment("callcenter.tickets")
    assert env is environment("callcenter.tickets")  # built once
    assert env.get_template("tickets.html").filename.endswith("tickets/templates/tickets.html")
    assert env.get_template("base.html").filename.endswith("console/templates/base.html")
