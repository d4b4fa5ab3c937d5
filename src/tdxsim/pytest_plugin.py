"""tdxsim's pytest plugin, registered through the `pytest11` entry point:
installed tdxsim gives every test suite these fixtures.

    td_from            factory: td_from(source_or_elf, host=..., config=...) -> TD
    tdxsim_conforms    tdxsim.testing.assert_conforms (stub, symbol, abi)
"""
from __future__ import annotations

import pytest

from . import testing


@pytest.fixture
def td_from():
    """td_from(source_or_elf, host="kvm", config=None, **options) -> a fresh TD."""
    return testing.td_from


@pytest.fixture
def tdxsim_conforms():
    """assert_conforms(stub, symbol, abi): fails the test with the checker's report."""
    return testing.assert_conforms
