"""Check the log of installing the suite's addons: nothing from our code at WARNING or above.

Usage: python3 scripts/check_install_log.py LOGFILE

The rule (README.md, "Test tiers"):
- a WARNING, ERROR or CRITICAL record is *ours* when its logger is ``odoo.addons.<our addon>``
  (or below), or when its text (message and traceback) names one of our addons (module name,
  XML id, file path) or one of the models our addons declare (``_name``);
- the check fails on any record of ours at WARNING or above, and on any ERROR or CRITICAL
  record at all (an install that logs errors is broken, whoever logs them);
- other warnings (Odoo core or the environment, e.g. a deprecated library) are listed, not fatal.
"""

import re
import sys
from dataclasses import dataclass, field

from odoo_env import suite_addons, suite_model_names

# "2026-01-31 12:00:00,123 4242 WARNING dbname odoo.modules.loading: message"
RECORD_START = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ (?P<level>[A-Z]+) (?P<db>\S+) (?P<logger>[^:\s]+): "
)
SERIOUS = ("WARNING", "ERROR", "CRITICAL")


@dataclass
class Record:
    level: str
    logger: str
    lines: list = field(default_factory=list)

    @property
    def text(self):
        return "\n".join(self.lines)


def parse_records(text):
    """Split an Odoo log into records; continuation lines (tracebacks) join their record."""
    records = []
    for line in text.splitlines():
        start = RECORD_START.match(line)
        if start:
            records.append(Record(start["level"], start["logger"], [line]))
        elif records:
            records[-1].lines.append(line)
        else:  # what Odoo prints before logging is set up (e.g. "Running as user 'root'")
            records.append(Record("", "", [line]))
    return records


def ours_matcher():
    addons = suite_addons()
    names = [re.escape(addon) for addon in addons] + [
        re.escape(model) for model in suite_model_names()
    ]
    mentions = re.compile(r"(?<![\w.])(?:" + "|".join(names) + r")(?![\w])") if names else None
    loggers = tuple(f"odoo.addons.{addon}" for addon in addons)

    def is_ours(record):
        if any(record.logger == name or record.logger.startswith(name + ".") for name in loggers):
            return True
        return bool(mentions and mentions.search(record.text))

    return is_ours


def check(text):
    """Return (fatal records, tolerated records) of the install log ``text``."""
    is_ours = ours_matcher()
    fatal, tolerated = [], []
    for record in parse_records(text):
        if record.level not in SERIOUS:
            continue
        if is_ours(record) or record.level != "WARNING":
            fatal.append(record)
        else:
            tolerated.append(record)
    return fatal, tolerated


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8", errors="replace") as log:
        fatal, tolerated = check(log.read())
    for record in tolerated:
        print("    tolerated (not from our addons): " + record.lines[0])
    for record in fatal:
        print("    FATAL: " + "\n    ".join(record.lines))
    if fatal:
        print(f"    install log: {len(fatal)} WARNING/ERROR record(s) from our addons or errors")
        return 1
    print(f"    install log: clean ({len(tolerated)} tolerated warning(s) from outside the suite)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
