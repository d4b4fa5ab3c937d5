"""Builds tdxsim's optional compiled hooks; tdxsim falls back to Python without them.

The C code spells no ABI number: tdxsim_abi.h is generated here from
tdxsim/abi.py, the one place each number is written.
"""
import ast
import runpy
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SRC = Path(__file__).parent / "src" / "tdxsim"
SOURCES = runpy.run_path(str(SRC / "native_sources.py"))
NATIVE = SOURCES["NATIVE"]


def constants(module: str, **names: str) -> dict:
    """Numbers a device model spells at its top level (NAME = expression of
    literals and names defined before it, or A, B = x, y), read without
    importing it: {C name: value} for {C name: Python name}."""
    found: dict = {}
    for node in ast.parse((SRC / module).read_text()).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        try:
            value = eval(compile(ast.Expression(node.value), module, "eval"),
                         {"__builtins__": {}}, dict(found))
        except Exception:  # not a number of its own (abi.X, a call): skip it
            continue
        if isinstance(target, ast.Name):
            found[target.id] = value
        elif isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
            found.update(zip((t.id for t in target.elts), value))
    return {c: found[python] for c, python in names.items()}


def abi_header() -> str:
    abi = runpy.run_path(str(SRC / "abi.py"))
    values = {f"REG_{name.upper()}": i for i, name in enumerate(abi["GPR_NAMES"])}
    values.update(
        TDCALL_LEN=abi["TDCALL_LEN"], LEAF_VP_VMCALL=abi["Leaf"].VP_VMCALL,
        LEAF_VP_VEINFO_GET=abi["Leaf"].VP_VEINFO_GET, RAX_VERSION_SHIFT=abi["RAX_VERSION_SHIFT"],
        VEINFO_MAX_VERSION=abi["VERSIONED_LEAVES"][abi["Leaf"].VP_VEINFO_GET],
        STATUS_NO_VALID_VE_INFO=abi["Status"].NO_VALID_VE_INFO,
        GPR_SELECT_MASK=abi["GPR_SELECT_MASK"], XMM_SELECT_SHIFT=abi["XMM_SELECT_SHIFT"],
        XMM_SELECT_MASK=abi["XMM_SELECT_MASK"], RCX_RESERVED_MASK=abi["RCX_RESERVED_MASK"],
        NEVER_SELECTABLE=abi["NEVER_SELECTABLE"], RBP_SELECT=abi["RBP_SELECT"],
        EXIT_REASON_TDCALL=abi["EXIT_REASON_TDCALL"], STATUS_SUCCESS=abi["Status"].SUCCESS,
        VMCALL_SUCCESS=abi["VmcallStatus"].SUCCESS,
        VMCALL_INVALID_OPERAND=abi["VmcallStatus"].INVALID_OPERAND,
        SUBFN_IO=abi["SubFn"].IO, IO_READ=abi["IO_READ"], IO_WRITE=abi["IO_WRITE"],
        IO_SIZE_BITS=sum(1 << size for size in abi["IO_SIZES"]),
        SUBFN_MMIO=abi["SubFn"].MMIO, MMIO_READ=abi["MMIO_READ"], MMIO_WRITE=abi["MMIO_WRITE"],
        MMIO_SIZE_BITS=sum(1 << size for size in abi["MMIO_SIZES"]),
        **constants("devices/pm_timer.py", PM_SIZE="PM_SIZE", PM_TIMER="PM_TIMER",
                    PM_TIMER_HZ="PM_TIMER_HZ", PM_TIMER_MASK="PM_TIMER_MASK"),
        **constants("devices/pci_host.py", PCI_CONFIG_ADDRESS="CONFIG_ADDRESS",
                    PCI_CONFIG_DATA="CONFIG_DATA", PCI_ADDRESS_MASK="ADDRESS_MASK",
                    PCI_COMMAND="COMMAND", PCI_CACHE_LINE_SIZE="CACHE_LINE_SIZE",
                    PCI_INTERRUPT_LINE="INTERRUPT_LINE", PCI_HEADER_END="HEADER_END",
                    PCI_COMMAND_WRITABLE="COMMAND_WRITABLE"),
        **constants("devices/mmio_device.py", MMIO_DEVICE_ID_SIZE="MMIO_DEVICE_ID_SIZE"),
        **constants("vcpu/regs.py", RFLAGS_IF="RFLAGS_IF"),
        **constants("vcpu/interrupts.py", GATE_INTERRUPT="GATE_INTERRUPT",
                    GATE_TRAP="GATE_TRAP", RFLAGS_TF="RFLAGS_TF", RFLAGS_NT="RFLAGS_NT",
                    RFLAGS_RF="RFLAGS_RF"),
        **constants("devices/lapic.py", LVT_VECTOR_MASK="LVT_VECTOR_MASK",
                    LVT_MASKED="LVT_MASKED", LVT_MODE_SHIFT="LVT_MODE_SHIFT",
                    LVT_MODE_PERIODIC="LVT_MODE_PERIODIC",
                    LVT_MODE_TSC_DEADLINE="LVT_MODE_TSC_DEADLINE",
                    LVT_TIMER_WRITABLE="LVT_TIMER_WRITABLE",
                    DIVIDE_CONFIG_WRITABLE="DIVIDE_CONFIG_WRITABLE"),
        APIC_BUS_CYCLE_NS=abi["APIC_BUS_CYCLE_NS"],
        MSR_IA32_TSC_DEADLINE=abi["MSR_IA32_TSC_DEADLINE"], MSR_X2APIC_EOI=abi["MSR_X2APIC_EOI"],
        MSR_X2APIC_LVT_TIMER=abi["MSR_X2APIC_LVT_TIMER"],
        MSR_X2APIC_TIMER_INITIAL_COUNT=abi["MSR_X2APIC_TIMER_INITIAL_COUNT"],
        MSR_X2APIC_TIMER_CURRENT_COUNT=abi["MSR_X2APIC_TIMER_CURRENT_COUNT"],
        MSR_X2APIC_TIMER_DIVIDE_CONFIG=abi["MSR_X2APIC_TIMER_DIVIDE_CONFIG"],
        SUBFN_CPUID=abi["SubFn"].CPUID, SUBFN_RDMSR=abi["SubFn"].RDMSR, SUBFN_HLT=abi["SubFn"].HLT,
        SUBFN_WRMSR=abi["SubFn"].WRMSR,
        SUBFN_GET_TD_VM_CALL_INFO=abi["SubFn"].GET_TD_VM_CALL_INFO,
        SUBFN_SETUP_EVENT_NOTIFY_INTERRUPT=abi["SubFn"].SETUP_EVENT_NOTIFY_INTERRUPT,
        EVENT_NOTIFY_FIRST=abi["EVENT_NOTIFY_VECTORS"][0],
        EVENT_NOTIFY_LAST=abi["EVENT_NOTIFY_VECTORS"][-1],
        **{f"KVM_HC_{hc.name}": hc.value for hc in abi["KvmHc"]},
        **{f"KVM_{e}_STATUS": abi["kvm_error"](abi[f"KVM_{e}"])
           for e in ("ENOSYS", "EINVAL", "EOPNOTSUPP")},
        KVM_CPUID_FEATURES=abi["KVM_CPUID_FEATURES"],
        KVM_FEATURE_PV_UNHALT=abi["KVM_FEATURE_PV_UNHALT"],
        KVM_FEATURE_PV_SEND_IPI=abi["KVM_FEATURE_PV_SEND_IPI"],
        KVM_FEATURE_PV_SCHED_YIELD=abi["KVM_FEATURE_PV_SCHED_YIELD"],
        ICR_DEST_LOGICAL=abi["ICR_DEST_LOGICAL"], ICR_SHORTHAND=abi["ICR_SHORTHAND"],
        SERIAL_THR=abi["UART_THR"], SERIAL_LSR=abi["UART_LSR"], SERIAL_LCR=abi["UART_LCR"],
        SERIAL_LCR_DLAB=abi["UART_LCR_DLAB"],
        SERIAL_LSR_READY=abi["UART_LSR_THRE"] | abi["UART_LSR_TEMT"])
    lines = [f"#define {name} {int(value):#x}ull" for name, value in values.items()]
    tdcall = ", ".join(f"{b:#04x}" for b in abi["TDCALL_BYTES"])
    lines.append(f"#define TDCALL_BYTES {{{tdcall}}}")
    lines.append(f'#define TDXSIM_SOURCE_DIGEST "{SOURCES["source_digest"](SRC)}"')
    return "/* Generated by setup.py from tdxsim/abi.py. */\n" \
           + "\n".join(lines) + "\n"


def compiler_present() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return any(shutil.which(c) for c in (compiler, "cc", "gcc", "clang"))


class BuildNative(build_ext):
    def run(self):
        if not compiler_present():  # one notice, not a compiler error
            print("tdxsim: no C compiler found; the compiled hooks are not built and tdxsim "
                  "runs in pure Python (about 40 times slower per hypercall)", file=sys.stderr)
            return
        include = Path(self.build_temp) / "include"
        include.mkdir(parents=True, exist_ok=True)
        (include / "tdxsim_abi.h").write_text(abi_header())
        for extension in self.extensions:
            extension.include_dirs.append(str(include))
        super().run()


setup(cmdclass={"build_ext": BuildNative},
      ext_modules=[Extension("tdxsim._native", [f"src/tdxsim/{f}" for f in NATIVE],
                             depends=[f"src/tdxsim/{h}" for h in SOURCES["HEADERS"]],
                             optional=True,
                             extra_compile_args=["-O2", "-fvisibility=hidden"])])
