"""Interrupt delivery through the guest's IDT in C (vcpu/deliver.c) against
the Python reference (vcpu/interrupts.py): on random IDT entries (present
or not, interrupt, trap and other gate types, ISTs), IDT limits, stacks
(frames across a page included), flags, vectors and error codes, the two
leave the same registers and memory, or C declines and Python says why.

TD(native=True) fails loudly when the compiled library is missing, so these
tests can never pass by skipping it.
"""
from __future__ import annotations

import random

from unicorn import x86_const as X

from conftest import compiled
from tdxsim.vcpu import interrupts

pytestmark = compiled
PAGE = 0x1000
GUEST = """
        .globl  _start
_start: hlt
        .data
        .balign 4096
        .globl  idt
idt:    .space  8192
"""


def _case(rng: random.Random, idt: int, stack: int):
    vector = rng.choice([2, 14, 20, 0x20, 0xEC, 0xFF, rng.randrange(256)])
    attr = rng.choice([0x8E, 0x8F] * 6 + [0x0E, 0x8C, 0xEE, rng.randrange(256)])
    ist = rng.choice([0] * 12 + [1, rng.randrange(256)])
    handler = rng.choice([0x100000, rng.getrandbits(64), rng.getrandbits(48)])
    gate = (handler & 0xFFFF | 0x08 << 16 | ist << 32 | attr << 40
            | (handler >> 16 & 0xFFFF) << 48).to_bytes(8, "little") \
        + (handler >> 32).to_bytes(4, "little") + rng.getrandbits(32).to_bytes(4, "little")
    base = rng.choice([idt, idt, idt + 8, idt + PAGE - 16 * rng.randrange(256) - 8, 0])
    limit = rng.choice([0xFFF] * 8 + [16 * vector + 15, 16 * vector + 14, 0])
    top = stack + rng.choice([0x800, rng.randrange(PAGE), 0x28, 0x30, 0x18, 0x38, PAGE - 8])
    top |= rng.choice([0, 0, rng.randrange(16)])
    rflags = 0x2 | rng.getrandbits(22) & ~0x8 & ~0x20  # reserved bits 3 and 5 clear
    error = rng.choice([None, None, 0, rng.getrandbits(32)])
    return vector, gate, base, limit, top, rflags, error, rng.getrandbits(48)


def _deliver(td, case, native: bool):
    vector, gate, base, limit, top, rflags, error, rip = case
    vcpu = td.vcpu
    idt = td.symbol("idt")
    td.write(idt + (base - idt if base else 0) + 16 * vector, gate) if base else None
    vcpu.uc.reg_write(X.UC_X86_REG_IDTR, (0, base, limit, 0))
    vcpu.regs.set(4, top)
    vcpu.regs.rflags = rflags
    vcpu.regs.rip = rip
    try:
        if native:
            out = interrupts.enter_handler(vcpu, vector, error)
        else:
            out = interrupts._enter_handler(vcpu, vector, error)
    except interrupts.DeliveryError as exc:
        out = str(exc)
    stack = td.read(td.stack_top - 4 * PAGE, 4 * PAGE)
    return out, vcpu.regs.rip, vcpu.regs.get(4), vcpu.regs.rflags, stack


def test_native_delivery_matches_python(asm):
    tds = [asm(GUEST, native=True) for _ in range(2)]
    used = []
    original = tds[0].vcpu.deliver_natively

    def counted(vector, error_code=None):
        done = original(vector, error_code)
        used.append(done is not None)
        return done

    tds[0].vcpu.deliver_natively = counted
    rng = random.Random(7)
    stack = tds[0].stack_top - 3 * PAGE
    for i in range(3000):
        case = _case(rng, tds[0].symbol("idt"), stack)
        a, b = _deliver(tds[0], case, True), _deliver(tds[1], case, False)
        assert a == b, f"case {i}: {case}"
    assert sum(used) > 300 and not all(used)
    tds[0].vcpu.mmu.flush_tlb()  # C's copy of the walks goes with Python's cache
    assert not any(tds[0].vcpu.fast.walk_keys)
