"""Facts about the local Odoo and the suite, for the Makefile scripts.

Usage: python3 scripts/odoo_env.py COMMAND
  check          exit 0 when Odoo 19 is importable; otherwise print one loud line and exit 3
  addons-path    Odoo's own addons directories (found from the installed ``odoo`` package) + ours
  suite-addons   our installable addons (every addons/*/__manifest__.py), comma-separated
  write-config TEMPLATE OUT KEY=VALUE...
                 copy TEMPLATE to OUT, setting each [options] KEY (comments are kept)
"""

import ast
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE_ADDONS_DIR = ROOT / "addons"
ODOO_SERIES = 19
INSTALL_HINT = (
    "install Odoo 19 Community the official way (packaged installer or source install, see "
    "https://www.odoo.com/documentation/19.0/administration/on_premise.html) "
    "for this Python, or set PYTHON=/path/to/odoo's/python"
)


def odoo_problem():
    """Why Odoo 19 cannot be used from this Python, or None when it can."""
    try:
        from odoo import release  # imported here: this script must run where Odoo is missing
    except ImportError as error:
        return f"`import odoo` fails for {sys.executable} ({error})"
    if release.version_info[0] != ODOO_SERIES:
        return f"{sys.executable} imports Odoo {release.version}, not Odoo {ODOO_SERIES}"
    return None


def _is_addons_dir(path):
    return path.is_dir() and any(path.glob("*/__manifest__.py"))


def odoo_addons_dirs():
    """Odoo's addons directories, derived from where the ``odoo`` package lives.

    A source checkout keeps the core addons in ``<root>/odoo/addons`` and the others in
    ``<root>/addons``; the Debian/RPM packages keep all of them in ``odoo/addons``; PyPI addons
    such as queue_job land in ``site-packages/odoo/addons``.
    """
    import odoo  # imported here: this script must run where Odoo is missing

    found = []
    for entry in odoo.__path__:
        package_dir = Path(entry)
        if not package_dir.is_dir():
            continue
        for candidate in (package_dir / "addons", package_dir.parent / "addons"):
            candidate = candidate.resolve()
            if candidate not in found and _is_addons_dir(candidate):
                found.append(candidate)
    return found


def read_manifest(addon_dir):
    return ast.literal_eval((addon_dir / "__manifest__.py").read_text(encoding="utf-8"))


def suite_addons():
    """Our installable addons: every directory of addons/ that has a __manifest__.py."""
    names = []
    for manifest in sorted(SUITE_ADDONS_DIR.glob("*/__manifest__.py")):
        if read_manifest(manifest.parent).get("installable", True):
            names.append(manifest.parent.name)
    return names


def suite_model_names():
    """Model names our addons declare (``_name = "..."``), used to attribute log lines to us."""
    pattern = re.compile(r"""^\s*_name\s*=\s*["']([\w.]+)["']""", re.MULTILINE)
    names = set()
    for addon in suite_addons():
        for source in (SUITE_ADDONS_DIR / addon).rglob("*.py"):
            names.update(pattern.findall(source.read_text(encoding="utf-8")))
    return sorted(names)


def write_config(template, out, settings):
    """Copy ``template`` to ``out`` with [options] keys set; every other line stays as written."""
    remaining = dict(settings)
    lines = []
    section = None
    for line in Path(template).read_text(encoding="utf-8").splitlines():
        header = re.match(r"^\[(\w+)\]", line)
        if header:
            if section == "options":
                lines.extend(f"{key} = {value}" for key, value in remaining.items())
                remaining.clear()
            section = header.group(1)
        else:
            setting = re.match(r"^(\w+)\s*=", line)
            if section == "options" and setting and setting.group(1) in remaining:
                key = setting.group(1)
                line = f"{key} = {remaining.pop(key)}"
        lines.append(line)
    if remaining:
        raise SystemExit(f"{template} has no [options] section to hold {sorted(remaining)}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(out, 0o600)  # it holds the database password


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "check":
        problem = odoo_problem()
        if problem:
            print(f"!!! ODOO 19 NOT FOUND: {problem}. To fix: {INSTALL_HINT}.", file=sys.stderr)
            return 3
        return 0
    if command == "addons-path":
        print(",".join(str(path) for path in [*odoo_addons_dirs(), SUITE_ADDONS_DIR]))
        return 0
    if command == "suite-addons":
        print(",".join(suite_addons()))
        return 0
    if command == "write-config" and len(argv) >= 4:
        settings = dict(item.split("=", 1) for item in argv[4:])
        write_config(argv[2], argv[3], settings)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
