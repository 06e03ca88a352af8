"""``deploy/scoreboard@.service`` as systemd reads it: ``systemd-analyze verify`` and the
sandbox's exposure as ``systemd-analyze security`` rates it, both offline (no running systemd
needed, so they run in a container too).

The unit's ``ExecStart`` names where docs/deploy.md installs the package; the copy checked here
points at the ``scoreboard`` next to the Python running the tests, since ``verify`` checks that
the command exists and is executable. What neither tool can check is the service running inside
its sandbox: that needs a booted systemd.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import services
from tests.support.timing import scaled

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "scoreboard@.service"
INSTALLED = "/opt/scoreboard/bin/scoreboard"
MAX_EXPOSURE = 1.2
"""``systemd-analyze security`` rates 0 (locked down) to 10 (unprotected); below 2 is "OK".
The unit rates 1.1 with systemd 252; a sandbox setting dropped raises it past this."""
REQUIRED = {
    "User=/DynamicUser=",
    "NoNewPrivileges=",
    "ProtectSystem=",
    "ProtectHome=",
    "PrivateTmp=",
    "RestrictAddressFamilies=~AF_PACKET",
    "RestrictAddressFamilies=~AF_NETLINK",
    "SystemCallFilter=~@privileged",
    "SystemCallFilter=~@mount",
    "CapabilityBoundingSet=~CAP_SYS_ADMIN",
}
"""Checks the unit must pass whatever the total: a worker running as root, say, only moves
the rating from 1.1 to 1.4."""


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        services.unavailable("systemd-analyze is not installed (apt-get install systemd)")
    assert found is not None
    return found


def unit_with(folder: Path, executable: Path) -> Path:
    """A copy of the unit in ``folder`` whose ``ExecStart`` is ``executable``."""
    assert executable.exists(), f"no {executable}"
    text = UNIT.read_text()
    assert text.count(f"ExecStart={INSTALLED} ") == 1, "ExecStart changed: update this test"
    copy = folder / UNIT.name
    copy.write_text(text.replace(INSTALLED, str(executable)))
    return copy


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ``ExecStart`` is this environment's ``scoreboard`` (the
    package tier verifies it again with the one installed from the wheel)."""
    return unit_with(tmp_path, Path(sys.executable).with_name("scoreboard"))


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), *args],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )


def assert_verified(unit: Path) -> None:
    done = analyze("verify", str(unit))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Unknown keys and bad values are only warnings (exit 0): they must not be there either.
    about_unit = [line for line in output.splitlines() if "scoreboard@" in line]
    assert about_unit == [], "\n".join(about_unit)


def test_systemd_analyze_verify_finds_nothing_to_say_about_the_unit(unit: Path) -> None:
    assert_verified(unit)


def test_systemd_analyze_security_rates_the_sandbox_ok(unit: Path) -> None:
    done = analyze("security", "--offline=true", str(unit))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    rated = re.search(r"Overall exposure level for scoreboard@\w*\.service: (\d+\.\d)", output)
    assert rated is not None, output
    exposure = float(rated.group(1))
    print(f"systemd-analyze security: exposure {exposure} (at most {MAX_EXPOSURE})")
    assert exposure <= MAX_EXPOSURE, output
    passed = {line.split()[1] for line in output.splitlines() if line.startswith("✓")}
    assert passed >= REQUIRED, f"not passed: {sorted(REQUIRED - passed)}"
