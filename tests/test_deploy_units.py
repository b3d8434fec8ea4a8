"""The example systemd units in deploy/ are valid for systemd and start real `delivery` commands."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from delivery.cli import parser

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNITS = sorted(p for p in DEPLOY.iterdir() if p.suffix in (".service", ".timer"))
INSTALLED = "/opt/delivery/.venv/bin/delivery"


def commands() -> list[tuple[str, list[str]]]:
    """(unit, the delivery command's arguments) for every Exec line, through `sh -c 'exec …'` too."""
    found = []
    for unit in UNITS:
        for line in unit.read_text().splitlines():
            key, _, value = line.partition("=")
            if not key.startswith("Exec"):
                continue
            words = shlex.split(value.replace("%%", "%"))
            if words[:2] == ["/bin/sh", "-c"]:
                words = shlex.split(words[2].removeprefix("exec "))
            assert words[0] == INSTALLED, f"{unit.name}: {value}"
            found.append((unit.name, words[1:]))
    return found


def test_the_units_cover_app_worker_and_a_backup_timer() -> None:
    assert {u.name for u in UNITS} == {"delivery-app.service", "delivery-worker.service",
                                       "delivery-backup.service", "delivery-backup.timer"}
    assert [args[0] for _, args in commands()] == ["db", "serve", "backup", "worker"]


@pytest.mark.parametrize(("unit", "args"), commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_each_unit_starts_a_real_command(unit: str, args: list[str]) -> None:
    """The command line parses with the `delivery` command's own parser (a renamed flag fails here)."""
    known = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    if args[0] not in known:
        pytest.skip(f"`delivery {args[0]}` is not in this checkout yet (another part of the work adds it)")
    parser().parse_args(args)


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts every unit, with no warning about any of them."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    script = Path(sys.executable).parent / "delivery"
    if not script.exists():
        pytest.skip("the delivery console script is not installed in this environment")
    for unit in UNITS:  # verify checks that ExecStart's program exists: point it at this install's
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, str(script)))
    result = subprocess.run([analyze, "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=60, check=False)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if any(unit.name in line for unit in UNITS)]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr
