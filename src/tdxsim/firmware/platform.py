"""The platform a QEMU-hosted TDVF talks to, plugged into the host."""
from __future__ import annotations


def install(td) -> None:
    pass
