"""The pytest plugin (issue 17 item 2): a sample guest project under
tests/external_project, with its own pytest.ini and tests that use only the
plugin's public fixtures, passes in a pytest run of its own."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tdxsim.testing import td_from

PROJECT = Path(__file__).resolve().parent / "external_project"


def test_sample_project_passes_with_the_plugin_alone():
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed" in run.stdout


def test_plugin_is_registered_through_pytest11(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("tdxsim")


def test_td_from_takes_a_tdconfig_dict_and_host_name():
    td = td_from(PROJECT / "guest" / "boot.c", host="kvm-legacy", config={"no_rbp_mod": False})
    assert td.config.no_rbp_mod is False and td.run().ok
