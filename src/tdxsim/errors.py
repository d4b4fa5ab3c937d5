"""Errors tdxsim reports to its user as a diagnostic, never as a traceback."""
from __future__ import annotations


class TdxsimError(Exception):
    """Bad input or an unusable environment: the CLI prints it and exits 2."""


class ToolMissing(TdxsimError):
    """A required external program (GNU binutils) is not installed."""


class BuildError(TdxsimError):
    """The assembler or linker rejected the guest sources."""


class ImageError(TdxsimError):
    """A guest image that cannot be loaded (not ELF, wrong machine, outside RAM)."""


class HostError(TdxsimError):
    """A host-side handler failed or was misused (e.g. touched private memory)."""
