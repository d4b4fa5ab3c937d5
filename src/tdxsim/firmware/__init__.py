"""Booting TDX virtual firmware (TDVF, e.g. Debian's OVMF.fd) as a TD (spec 14)."""
from .tdvf import Section, SectionType, Tdvf, parse

__all__ = ["Section", "SectionType", "Tdvf", "parse"]
