"""Fixtures giving the Cortex-M target modules, installed or straight from the tree.

The tests need the Debian packages installed by scripts/install_system_packages.sh;
when one is missing they fail with a message naming it (they never skip).
"""
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def _import_modules():
    """Prefer the installed package; fall back to the source tree (no install)."""
    try:
        from tvmse.targets.cortex_m import cmsis_dsp, qemu
    except ImportError:
        sys.path.insert(0, str(REPO_ROOT))
        from targets.cortex_m import cmsis_dsp, qemu
    return SimpleNamespace(qemu=qemu, cmsis_dsp=cmsis_dsp)


_MODULES = _import_modules()


@pytest.fixture(scope="session")
def qemu():
    return _MODULES.qemu


@pytest.fixture(scope="session")
def cmsis_dsp():
    return _MODULES.cmsis_dsp


@pytest.fixture
def write_c(tmp_path):
    """Write a C source file into the test's temporary directory."""
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write
