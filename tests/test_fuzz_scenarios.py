"""The fuzzer's scenarios are those of random.Random(seed << 64 | index)
drawn through its public methods (the generator as first written): the
faster spelling in fuzz.Scenarios must give the same campaign, so that a
seed and an index found before still name the same execution."""
from __future__ import annotations

import random

import pytest

from tdxsim import abi
from tdxsim.check import load
from tdxsim.check.fuzz import (P_FAILURE, P_INJECT, P_VALUE, SPECIAL, STATUSES, Scenarios,
                               scenario)
from tdxsim.check.scenario import Scenario
from tdxsim.check.schema import BUILTIN


def _value(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.7:
        return rng.getrandbits(64)
    if roll < 0.85:
        return rng.choice(SPECIAL)
    return rng.getrandbits(rng.choice((8, 16, 32)))


def reference(c, seed: int, index: int, boundaries: int) -> Scenario:
    rng = random.Random(seed << 64 | index)
    flags = rng.choice(c.flag_values())
    registers = sorted(set(c.fields) | set(c.reg_args))
    inputs = tuple((r, _value(rng)) for r in registers if rng.random() < P_VALUE)
    host = tuple((r, _value(rng)) for r in range(abi.RDX, 16)
                 if r != abi.RSP and rng.random() < P_VALUE)
    status = rng.choice(STATUSES) if rng.random() < P_FAILURE else 0
    chance = P_INJECT if c.interrupts.holds(flags) else P_INJECT / 6
    inject = rng.randrange(boundaries + 1) if rng.random() < chance and not status else None
    return Scenario(flags, status, inject, inputs, host)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_scenarios_are_the_reference_draws(name):
    c = load(name)
    for seed, span in ((0, 31), (7, 0), (2**40 + 3, 1000)):
        draws = Scenarios(c, seed, span)
        for index in range(400):
            assert draws.at(index) == reference(c, seed, index, span), (seed, index)
    assert scenario(c, 3, 12345, 40) == reference(c, 3, 12345, 40)
