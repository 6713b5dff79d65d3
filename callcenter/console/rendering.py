"""The Jinja2 environments of the HTML pages: one per package, built once, loading the
package's ``templates/*.html`` (shipped as package data, see pyproject.toml).

A page module gets its environment with ``environment(__package__)`` (or the package's
name). A slice's environment looks in its own ``templates/`` first, then in the console's,
so its pages extend the console's frame (``{% extends "base.html" %}``, see
``console.pages.render``) and keep their own template names.

Every environment escapes: ``{{ value }}`` is HTML-escaped in ``.html`` templates and in
any other template too (``default=True``); text from citizens and users only becomes markup
through an explicit ``|safe``, which no page uses. Undefined names fail loudly
(``StrictUndefined``): a misspelt variable is an error, not an empty string. Templates are
read once and kept (``auto_reload=False``): a page costs no file look-up per request.
"""

from __future__ import annotations

import functools
from typing import Final

import jinja2

CONSOLE_PACKAGE: Final = "callcenter.console"
TEMPLATE_FOLDER: Final = "templates"


@functools.cache
def environment(package: str) -> jinja2.Environment:
    """The environment of ``package``'s templates (the console's behind them), cached."""
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader(package, TEMPLATE_FOLDER)]
    if package != CONSOLE_PACKAGE:
        loaders.append(jinja2.PackageLoader(CONSOLE_PACKAGE, TEMPLATE_FOLDER))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",),
                                            default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined, auto_reload=False)
