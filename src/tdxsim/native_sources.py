"""The sources of tdxsim's compiled hooks and their digest (standard library
only: setup.py runs this file before tdxsim can be imported).

setup.py writes the digest into the library it builds; native.py compares
it with the sources beside it when it loads the library, so that a library
built from other sources (an editable install not rebuilt after a pull)
is never used with structures it does not match.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

HERE = Path(__file__).parent
NATIVE = ["_native.c", "vcpu/counter.c", "vcpu/traps.c", "vcpu/tdcall.c", "vcpu/slice.c",
          "vcpu/deliver.c",
          "module/vmcall.c", "module/veinfo.c", "host/fast.c", "host/kvm.c", "host/cpuid.c",
          "host/msr.c", "host/io.c", "host/halt.c", "devices/devices.c", "devices/lapic.c"]
HEADERS = ["native.h", "native_host.h"]


def source_digest(root: Path = HERE) -> str | None:
    """SHA-256 (16 hex digits) of the C sources and headers under root;
    None when they are not there (a wheel ships only the library)."""
    digest = hashlib.sha256()
    for name in HEADERS + NATIVE:
        try:
            digest.update(name.encode() + b"\0" + (root / name).read_bytes())
        except OSError:
            return None
    return digest.hexdigest()[:16]
