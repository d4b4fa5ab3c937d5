"""The deterministic vCPU scheduler (scheduler.py): earliest virtual time
first, quanta perturbed per seed, halted vCPUs consume no quanta."""
from __future__ import annotations

import pytest

from tdxsim.scheduler import Scheduler


def run(sched: Scheduler, steps: int) -> list[int]:
    """Let the picked vCPU run whole quanta; the order they ran in."""
    order = []
    for _ in range(steps):
        vcpu = sched.pick()
        order.append(vcpu)
        sched.ran(vcpu, sched.quantum_end(vcpu))
    return order


def test_earliest_time_runs_first_and_nobody_gets_ahead():
    sched = Scheduler(3, quantum_ns=100, jitter=0)
    assert run(sched, 6) == [0, 1, 2, 0, 1, 2]
    assert sched.time == [200, 200, 200]


def test_same_seed_same_interleaving_other_seed_another():
    orders = {seed: run(Scheduler(4, seed=seed), 40) for seed in (1, 1, 2)}
    assert run(Scheduler(4, seed=1), 40) == orders[1]
    assert orders[1] != orders[2]


def test_quanta_stay_within_the_jitter():
    sched = Scheduler(1, seed=5, quantum_ns=1000, jitter=0.5)
    lengths = {sched.quantum_end(0) for _ in range(200)}
    assert min(lengths) >= 500 and max(lengths) <= 1500 and len(lengths) > 50


def test_a_halted_vcpu_consumes_no_quanta():
    sched = Scheduler(3, quantum_ns=100, jitter=0)
    sched.halt(1, wake_at=None)
    assert run(sched, 4) == [0, 2, 0, 2]
    assert sched.time[1] == 0


def test_a_halted_vcpu_comes_up_at_its_wake_time():
    """Its timer at 250: picked once the others' time passes it."""
    sched = Scheduler(2, quantum_ns=100, jitter=0)
    sched.halt(1, wake_at=250)
    assert run(sched, 3) == [0, 0, 0]  # vCPU 0 at 0, 100, 200
    assert sched.pick() == 1  # 250 < 300


def test_wake_moves_the_halted_time_forward():
    sched = Scheduler(2, quantum_ns=100, jitter=0)
    sched.halt(1, wake_at=None)
    run(sched, 5)
    sched.wake(1, 420)
    assert sched.time[1] == 420 and sched.pick() == 1  # 0 is at 500


def test_everyone_halted_for_good_is_none():
    sched = Scheduler(2)
    sched.halt(0, None)
    sched.halt(1, None)
    assert sched.pick() is None


def test_directed_yield_runs_the_target_next_once():
    sched = Scheduler(3, quantum_ns=100, jitter=0)
    sched.yield_to(2)
    assert sched.pick() == 2
    assert sched.pick() == 0


def test_yield_to_a_halted_vcpu_is_ignored():
    sched = Scheduler(2, quantum_ns=100, jitter=0)
    sched.halt(1, None)
    sched.yield_to(1)
    assert sched.pick() == 0


@pytest.mark.parametrize("quantum,jitter", [(0, 0.1), (100, 1.0), (100, -0.1)])
def test_bad_quantum(quantum, jitter):
    with pytest.raises(ValueError):
        Scheduler(2, quantum_ns=quantum, jitter=jitter)


def test_a_plan_comes_first_then_the_usual_order():
    sched = Scheduler(3, quantum_ns=100, jitter=0)
    sched.plan([(2, 7), (1, None)])
    assert sched.pick() == 2 and sched.quantum_end(2) == 7
    sched.ran(2, 7)
    assert sched.pick() == 1 and sched.quantum_end(1) == 1 << 62
    sched.ran(1, 50)
    assert sched.pick() == 0


def test_a_planned_turn_of_a_vcpu_halted_for_good_is_skipped():
    sched = Scheduler(2, quantum_ns=100, jitter=0)
    sched.halt(1, None)
    sched.plan([(1, 10)])
    assert sched.pick() == 0
