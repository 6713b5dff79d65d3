"""Packaging that pyproject.toml cannot declare: two root folders shipped inside the package.

Everything else is in pyproject.toml. Package discovery lives here because a package mapped
onto another folder cannot be added to `[tool.setuptools.packages.find]`:

- `deploy/` (systemd units, monitoring rules and dashboard, logrotate files) is shipped as
  `callcenter.ops.deploy`, for `callcenter install` to lay down;
- `config/` (the example `hotline.yaml` and its `ivr-*.yaml`) is shipped as
  `callcenter.ops.example_config`, so an installer can lay it down and `check-config` of the
  shipped config works from a wheel.

Why map rather than move: `config/` is also the live config of `make run` (the console edits
it in place and keeps `.history/` beside it, tests and benchmarks read it), and `deploy/` is
where an administrator looks for unit files in the source tree. One copy of each, found by
`callcenter.ops.package_data` in a wheel and in a source tree alike.
"""

from setuptools import find_namespace_packages, setup

MAPPED = {"callcenter.ops.deploy": "deploy", "callcenter.ops.example_config": "config"}

setup(
    packages=[*find_namespace_packages(include=["callcenter*"], exclude=["*.__pycache__"]),
              *MAPPED],
    package_dir=MAPPED,
)
