"""QEMU's firmware configuration device (QEMU docs/specs/fw_cfg.rst,
hw/nvram/fw_cfg.c), x86 I/O interface: selector at port 0x510 (16-bit
write), data at 0x511 (byte reads advance through the selected item), DMA
address at 0x514 (64-bit big-endian: the guest writes the byte-swapped
high half to 0x514, then the low half to 0x518, which starts the transfer;
reading 0x514 gives "QEMU CFG").

Items: signature "QEMU" (0x0000), ID with the traditional and DMA features
(0x0001), RAM size (0x0003), CPU counts (0x0005, 0x000F), the file
directory (0x0019) and files from 0x0020 on.  Numbers are little-endian,
the directory big-endian.  DMA reads the FWCfgDmaAccess structure (control,
length, address; big-endian) and the buffer through the host's view of
guest memory, which is shared pages only, as on TDX.
"""
from __future__ import annotations

import struct

SELECTOR, DATA, DMA_HIGH, DMA_LOW = 0x510, 0x511, 0x514, 0x518
SIGNATURE, ID, RAM_SIZE, NB_CPUS, MAX_CPUS, FILE_DIR, FILE_FIRST = \
    0x00, 0x01, 0x03, 0x05, 0x0F, 0x19, 0x20
FEATURE_TRADITIONAL, FEATURE_DMA = 1 << 0, 1 << 1
DMA_SIGNATURE = b"QEMU CFG"
DMA_ERROR, DMA_READ, DMA_SKIP, DMA_SELECT, DMA_WRITE = 0x01, 0x02, 0x04, 0x08, 0x10
_ACCESS = struct.Struct(">IIQ")
FILE_NAME_SIZE = 56


def _big_endian(value: int) -> int:
    """The DMA address register is big-endian: the bytes of a 32-bit port
    write, most significant first."""
    return int.from_bytes(value.to_bytes(4, "little"), "big")


class FwCfg:
    ports = range(SELECTOR, DMA_LOW + 4)

    def __init__(self, ram_size: int, cpus: int = 1, files: dict[str, bytes] | None = None):
        self.items: dict[int, bytes] = {
            SIGNATURE: b"QEMU",
            ID: (FEATURE_TRADITIONAL | FEATURE_DMA).to_bytes(4, "little"),
            RAM_SIZE: ram_size.to_bytes(8, "little"),
            NB_CPUS: cpus.to_bytes(2, "little"),
            MAX_CPUS: cpus.to_bytes(2, "little"),
        }
        self.names: dict[int, str] = {}
        for name, data in (files or {}).items():
            self.add_file(name, data)
        self.selected, self.offset = 0, 0
        self.dma_high = 0
        self.memory = None  # HostMemory (shared pages), set by the platform
        self.log: list[str] = []  # items the guest selected, in order

    def add_file(self, name: str, data: bytes) -> None:
        key = FILE_FIRST + len(self.names)
        self.items[key], self.names[key] = data, name
        entries = [struct.pack(">IHH", len(self.items[k]), k, 0) + n.encode().ljust(FILE_NAME_SIZE, b"\0")
                   for k, n in sorted(self.names.items())]
        self.items[FILE_DIR] = len(entries).to_bytes(4, "big") + b"".join(entries)

    def item_name(self, key: int) -> str:
        return self.names.get(key, f"item {key:#06x}")

    def select(self, key: int) -> None:
        self.selected, self.offset = key, 0
        self.log.append(self.item_name(key) + ("" if key in self.items else " (absent)"))

    def _take(self, n: int) -> bytes:
        data = self.items.get(self.selected, b"")[self.offset:self.offset + n]
        self.offset += n
        return data.ljust(n, b"\0")  # past the end (or no item): zeros

    def read(self, port: int, size: int) -> int:
        if port == DATA:
            return int.from_bytes(self._take(size), "little")
        if DMA_HIGH <= port < DMA_LOW + 4:
            start = port - DMA_HIGH
            return int.from_bytes(DMA_SIGNATURE[start:start + size], "big")
        return 0

    def write(self, port: int, size: int, value: int) -> None:
        if port == SELECTOR:
            self.select(value & 0xFFFF)
        elif port == DMA_HIGH and size == 4:
            self.dma_high = _big_endian(value)
        elif port == DMA_LOW and size == 4:
            self._dma(self.dma_high << 32 | _big_endian(value))
            self.dma_high = 0
        # writes to the data port are ignored (QEMU >= 2.4)

    def _dma(self, address: int) -> None:
        """One FWCfgDmaAccess: select, then read, skip or (refused) write;
        control ends 0, or with the error bit."""
        memory = self.memory
        if memory is None or not memory.readable(address, _ACCESS.size):
            return  # the structure is private: the host cannot see it
        control, length, buffer = _ACCESS.unpack(memory.read(address, _ACCESS.size))
        if control & DMA_SELECT:
            self.select(control >> 16)
        status = 0
        if control & DMA_READ:
            data = self._take(length)
            if not length:
                pass
            elif memory.readable(buffer, length):
                memory.write(buffer, data)
            else:
                status = DMA_ERROR
        elif control & DMA_SKIP:
            self.offset += length
        elif control & DMA_WRITE:
            status = DMA_ERROR  # no writable items
        memory.write(address, status.to_bytes(4, "big"))
