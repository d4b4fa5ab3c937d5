"""A guest project's own tests, written as its authors would: only the
fixtures and helpers the installed tdxsim plugin provides."""
from pathlib import Path

import pytest

from tdxsim.testing import assert_conforms

HERE = Path(__file__).parent
STUB = HERE / "stub" / "hypercall.S"


def test_guest_boots(td_from):
    result = td_from(HERE / "guest" / "boot.c").run()
    assert result.ok, result.describe()
    assert result.console == "boot: up\nboot: done\n"


def test_guest_boots_on_every_host(td_from):
    for host in ("kvm", "kvm-legacy"):
        td = td_from(HERE / "guest" / "boot.c", host=host, config={"no_rbp_mod": True})
        assert td.run().ok


def test_guest_survives_a_hostile_host(td_from):
    from tdxsim import Host
    for seed in range(5):
        result = td_from(HERE / "guest" / "boot.c", host=Host("hostile", seed=seed)).run()
        assert result.reason in ("exit", "fatal"), result.describe()


def test_stub_conforms_to_its_abi(tdxsim_conforms):
    tdxsim_conforms(STUB, "__tdx_hypercall", "seed")


def test_a_broken_stub_fails_with_the_checkers_report(tmp_path):
    broken = tmp_path / "broken.S"
    broken.write_text(STUB.read_text().replace("xor     %r10d, %r10d", "nop"))
    with pytest.raises(AssertionError, match="FAIL  scrub"):
        assert_conforms(broken, "__tdx_hypercall", "seed")
