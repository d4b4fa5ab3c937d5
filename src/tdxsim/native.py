"""tdxsim's compiled hooks (tdxsim/_native.c and the .c files beside the
Python they speed up), loaded with ctypes; None when the build had no C
compiler, and every user then falls back to Python."""
from __future__ import annotations

import ctypes

from unicorn.unicorn_py3 import unicorn as _binding

_library = None

uc_emu_stop = ctypes.cast(_binding.uclib.uc_emu_stop, ctypes.c_void_p)


def library():
    """The compiled library, loaded once per process (or None)."""
    global _library
    if _library is None:
        try:
            from . import _native
        except ImportError:
            _library = False
        else:
            _library = ctypes.CDLL(_native.__file__)
    return _library or None


def add_hook(uc, kind: int, function: str, state, begin: int = 1, end: int = 0):
    """Install the library's `function` as a Unicorn hook with `state` (a
    ctypes object, kept alive by the caller) as its user data."""
    handle = _binding.uc_hook_h()
    err = _binding.uclib.uc_hook_add(
        uc._uch, ctypes.byref(handle), kind,
        ctypes.cast(getattr(library(), function), ctypes.c_void_p),
        ctypes.cast(ctypes.byref(state), ctypes.c_void_p),
        ctypes.c_uint64(begin), ctypes.c_uint64(end))
    if err:
        raise RuntimeError(f"uc_hook_add({function}) failed with error {err}")
    return handle.value
