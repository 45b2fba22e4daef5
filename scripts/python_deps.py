"""Install the Python packages of requirements.txt that are missing (or at a wrong version).

Nothing is installed when every requirement is already met. pip never installs Odoo itself:
Odoo is a prerequisite installed the official way, and PyPI addons (odoo-addon-*) would
otherwise pull an "odoo" distribution from PyPI as their dependency.
"""

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # packaging ships inside pip when it is not installed on its own
    from pip._vendor.packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"


def read_requirements():
    requirements = []
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirements.append(Requirement(line))
    return requirements


def installed_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_met(requirement):
    version = installed_version(requirement.name)
    return version is not None and requirement.specifier.contains(version, prereleases=True)


def odoo_importable():
    try:
        import odoo  # noqa: F401  imported here: this script must run where Odoo is missing
    except ImportError:
        return False
    return True


def pip_install(args):
    env = dict(os.environ, PIP_ROOT_USER_ACTION="ignore", PIP_DISABLE_PIP_VERSION_CHECK="1")
    in_venv = sys.prefix != sys.base_prefix
    marker = Path(sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED"
    if marker.exists() and not in_venv:
        # Odoo runs on this interpreter, so its packages must go here (PEP 668 would refuse).
        print(
            f"    note: {sys.executable} is marked externally managed; installing with "
            "--break-system-packages because Odoo runs on this interpreter "
            "(use a virtualenv with Odoo installed in it to avoid this)"
        )
        env["PIP_BREAK_SYSTEM_PACKAGES"] = "1"
    command = [sys.executable, "-m", "pip", "install", "--no-input", *args]
    print("    $ " + " ".join(command), flush=True)
    return subprocess.run(command, env=env, check=False).returncode == 0


def install(missing):
    addons = [req for req in missing if req.name.startswith("odoo-addon-")]
    others = [req for req in missing if req not in addons]
    ok = True
    if others:
        ok = pip_install([str(req) for req in others])
    if addons and not odoo_importable():
        print("    skipping " + ", ".join(str(req) for req in addons) + ": they need Odoo 19")
        return ok
    for addon in addons:
        if installed_version("odoo") is not None:
            ok = pip_install([str(addon)]) and ok
            continue
        # Odoo is importable but pip does not know it (e.g. the Debian package): install the
        # addon alone, then its own dependencies except Odoo.
        ok = pip_install(["--no-deps", str(addon)]) and ok
        extra = [
            str(dep)
            for dep in map(Requirement, importlib.metadata.requires(addon.name) or [])
            if dep.name != "odoo"
            and (dep.marker is None or dep.marker.evaluate({"extra": ""}))
            and not is_met(dep)
        ]
        if extra:
            ok = pip_install(extra) and ok
    return ok


def main():
    requirements = read_requirements()
    missing = [req for req in requirements if not is_met(req)]
    if not missing:
        print(f"    all {len(requirements)} Python requirements are met")
        return 0
    print("    missing or at another version: " + ", ".join(str(req) for req in missing))
    install(missing)
    still_missing = [
        str(req)
        for req in missing
        if not is_met(req) and not (req.name.startswith("odoo-addon-") and not odoo_importable())
    ]
    if still_missing:
        print("ERROR: could not install " + ", ".join(still_missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
