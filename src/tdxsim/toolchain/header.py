"""tdx.h, the C header of tdxsim's guest library, generated from abi.py.

Constants come from abi.py (the one place each ABI number is written); the
function prototypes come from the library's own doc comments (the line
`# u64 name(args)` above each routine), so the header cannot drift from
either.  setup.py writes it into the wheel; `tdxsim include` finds it.
This file imports nothing from tdxsim: setup.py loads it on its own.
"""
from __future__ import annotations

import re
from pathlib import Path

_PROTOTYPE = re.compile(r"^# ((?:u64|void) \*?_*tdx_\w+\((?:[^)]|\n#)*\))", re.M)
_TYPES = (("u64", "uint64_t"), ("u32", "uint32_t"))

STRUCTS = """\
/* TDG.VP.VMCALL arguments of __tdx_hypercall (spec 9.1): R10..R15. */
struct tdx_hypercall_args {
    uint64_t r10, r11, r12, r13, r14, r15;
};
#define TDX_HCALL_HAS_OUTPUT 1ull
#define TDX_HCALL_ISSUE_STI 2ull

/* What __tdx_module_call and tdx_veinfo_get write back. */
struct tdx_module_output {
    uint64_t rcx, rdx, r8, r9, r10, r11;
};

/* The GetQuote buffer's header (spec 4.5). */
struct tdx_quote_header {
    uint64_t version;
    uint64_t status;
    uint32_t in_len;
    uint32_t out_len;
};
"""

RUNTIME = """\
/* The C runtime (crt0.S): _start clears .bss, switches to its own stack,
 * loads tdx_idt (vector 20 = tdx_ve_entry) and calls main(); main's return
 * value becomes the debug exit code. */
int main(void);
extern uint8_t tdx_idt[256 * 16];
/* Install `handler` (an __attribute__((interrupt)) function) at `vector`. */
void tdx_set_interrupt(uint64_t vector, void *handler);
void *memcpy(void *dst, const void *src, uint64_t n);
void *memmove(void *dst, const void *src, uint64_t n);
void *memset(void *dst, int c, uint64_t n);
int memcmp(const void *a, const void *b, uint64_t n);

/* The shared alias of a private address (tdxsim's default page tables map
 * guest RAM a second time at TDX_SHARED_WINDOW, with the shared bit set). */
static inline void *tdx_shared(const void *private_address) {
    return (void *)((uint64_t)private_address + TDX_SHARED_WINDOW);
}
static inline void tdx_cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void tdx_sti(void) { __asm__ volatile("sti" ::: "memory"); }
"""


def _constants(abi: dict) -> list[str]:
    groups = [("TDCALL leaves (spec 1.3)", "TDG_", abi["Leaf"]),
              ("GHCI sub-functions in R11 (spec 4.3)", "TDVMCALL_", abi["SubFn"]),
              ("GHCI statuses in R10 (spec 4.2)", "TDVMCALL_STATUS_", abi["VmcallStatus"]),
              ("TDX module completion statuses in RAX (spec 2)", "TDX_", abi["Status"]),
              ("KVM hypercalls (R10 = number)", "KVM_HC_", abi["KvmHc"])]
    lines = []
    for title, prefix, table in groups:
        lines.append(f"\n/* {title} */")
        items = table.__members__.items() if hasattr(table, "__members__") else \
            ((k, v) for k, v in vars(table).items() if k.isupper())
        lines += [f"#define {prefix}{name} {int(value):#x}ull" for name, value in items]
    lines.append("\n/* MSRs (RDMSR/WRMSR through tdx_rdmsr/tdx_wrmsr) */")
    lines += [f"#define TDX_{name} {int(value):#x}ull" for name, value in abi.items()
              if name.startswith(("MSR_", "LVT_")) and isinstance(value, int)]
    lines.append("\n/* Quotes, reports and event notification (spec 1.3, 4.5) */")
    for name in ("QUOTE_HEADER_SIZE", "QUOTE_VERSION", "QUOTE_STATUS_SUCCESS",
                 "QUOTE_STATUS_IN_FLIGHT", "QUOTE_STATUS_ERROR", "QUOTE_STATUS_UNAVAILABLE",
                 "QUOTE_MAX_BUFFER", "TDREPORT_SIZE", "REPORTDATA_OFFSET", "REPORTDATA_SIZE"):
        lines.append(f"#define TDX_{name} {int(abi[name]):#x}ull")
    vectors = abi["EVENT_NOTIFY_VECTORS"]
    lines.append(f"#define TDX_EVENT_NOTIFY_FIRST_VECTOR {vectors.start:#x}ull")
    lines.append(f"#define TDX_EVENT_NOTIFY_LAST_VECTOR {vectors.stop - 1:#x}ull")
    lines.append(f"#define TDX_VE_VECTOR {int(abi['VE_VECTOR']):#x}ull")
    lines.append(f"#define TDX_SHARED_WINDOW {int(abi['SHARED_WINDOW']):#x}ull")
    return lines


def prototypes(sources: list[Path]) -> list[str]:
    """`u64 f(u64 a, ...)` from each library routine's doc comment, in C."""
    found = []
    for source in sources:
        for match in _PROTOTYPE.finditer(source.read_text()):
            text = re.sub(r"\s*\n#\s*", " ", match.group(1))
            for short, full in _TYPES:
                text = re.sub(rf"\b{short}\b", full, text)
            found.append(text + ";")
    return found


def render(abi: dict, library: list[Path]) -> str:
    """The whole header.  `abi` is tdxsim.abi's namespace."""
    return "\n".join([
        "/* tdx.h - tdxsim's guest library for C guests.",
        " * Generated from tdxsim/abi.py and the library's sources; do not edit. */",
        "#ifndef TDXSIM_TDX_H",
        "#define TDXSIM_TDX_H",
        "#include <stdint.h>",
        *_constants(abi), "", STRUCTS,
        "/* The guest library (src/tdxsim/guest/, LIBRARY in toolchain/sdk.py); SysV ABI. */",
        *prototypes(library), "", RUNTIME,
        "#endif", ""])
