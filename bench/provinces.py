"""How long the national config takes to load and render (issue 19, item 6).

For 1, 10 and 63 provinces (``callcenter config provinces``): the time to read, parse and
validate the file (``load_config``, what `callcenter check-config` and every reload do) and
to render Asterisk's configuration from it (``render_texts``: every .conf as text, nothing
written, no prompts synthesised), and the size of the rendered dialplan. Each figure is the
median of ``--repeat`` runs in this process (the first run, which imports and compiles the
templates, is left out). ``--operators N`` gives each province N operators' softphones
(PJSIP endpoints, passwords in the environment), to see the PBX config at national size.

    .venv/bin/python bench/provinces.py [--repeat 7] [--operators 4]

Nothing is started and nothing is sent: the whole run is in memory and a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callcenter.config.file import load_config  # noqa: E402
from callcenter.config.national import national_config, national_yaml  # noqa: E402
from callcenter.config.provinces import PROVINCES  # noqa: E402
from callcenter.config.secrets import Secrets, operator_passwords  # noqa: E402
from callcenter.pbx.install import AsteriskInstall  # noqa: E402
from callcenter.pbx.layout import PbxLayout  # noqa: E402
from callcenter.pbx.render import render_texts  # noqa: E402

SECRETS = Secrets("ari", "ari-password-bench", "ami", "ami-password-bench")
SIZES = (1, 10, 63)


def config_text(count: int, operators: int) -> tuple[str, dict[str, str]]:
    """The first ``count`` provinces' config text, and the operators' passwords by env name."""
    codes = [p.area_code for p in PROVINCES[:count]]
    if not operators:
        return national_yaml(codes), {}
    data = national_config(codes)
    env: dict[str, str] = {}
    for i, tenant in enumerate(data["tenants"]):
        tenant["operators"] = []
        for j in range(operators):
            ext = str(1000 + i * 10 + j)
            env[f"HOTLINE_OP_{ext}"] = f"bench-password-{ext}-long-enough"
            tenant["operators"].append({"extension": ext, "name": f"Tổng đài viên {ext}",
                                        "secret_env": f"HOTLINE_OP_{ext}"})
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False), env


def measure(count: int, operators: int, repeat: int, folder: Path) -> dict[str, float]:
    text, env = config_text(count, operators)
    path = folder / f"provinces-{count}.yaml"
    path.write_text(text, encoding="utf-8")
    os.environ.update(env)
    install = AsteriskInstall(binary="/usr/sbin/asterisk", root=folder / "rootfs",
                              version="22")
    layout = PbxLayout.for_instance(install, "bench", folder / "state")
    loads, renders = [], []
    texts: dict[str, str] = {}
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        config = load_config(path)
        t1 = time.perf_counter()
        texts = render_texts(config, layout, SECRETS, passwords=operator_passwords(config))
        t2 = time.perf_counter()
        if i:  # the first run imports modules and compiles the templates
            loads.append((t1 - t0) * 1000)
            renders.append((t2 - t1) * 1000)
    return {"tenants": len(config.tenants), "file_kb": len(text.encode()) / 1024,
            "load_ms": statistics.median(loads), "render_ms": statistics.median(renders),
            "dialplan_kb": len(texts["extensions.conf"].encode()) / 1024,
            "pjsip_kb": len(texts["pjsip.conf"].encode()) / 1024}


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPU ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--operators", type=int, default=0, help="operators per province")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"operators per province: {args.operators}; median of {args.repeat} runs")
    print(f"{'tenants':>7} {'file kB':>8} {'parse+validate ms':>18} {'render ms':>10} "
          f"{'dialplan kB':>12} {'pjsip.conf kB':>14}")
    with tempfile.TemporaryDirectory(prefix="bench-provinces-") as tmp:
        for count in SIZES:
            r = measure(count, args.operators, args.repeat, Path(tmp))
            print(f"{r['tenants']:>7} {r['file_kb']:>8.1f} {r['load_ms']:>18.1f} "
                  f"{r['render_ms']:>10.1f} {r['dialplan_kb']:>12.1f} {r['pjsip_kb']:>14.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
