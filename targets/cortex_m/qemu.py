"""Build bare-metal C programs for the Corstone-300 CPU and run them under QEMU.

The emulated machine is QEMU's ``mps3-an547``: a Cortex-M55 with Helium (MVE),
but no Ethos-U55 model. Programs are linked against the small runtime in
``runtime/`` (startup, linker script, semihosting output helpers) and newlib's
semihosting library (rdimon), so ``printf`` reaches the host and ``main``'s
return value becomes QEMU's exit status.

Output: QEMU's stdout and stderr go to files, read whole after it exits, and
no stdio character device is created (``-nographic`` would make stdout
non-blocking, and QEMU drops semihosting output a slow pipe reader has not taken
yet). A run counts as complete only when the end-of-run markers the runtime
prints last (or a fault report) are there; otherwise ``QemuIncompleteError``.

What is measured, and what is not: QEMU has **no cycle model**. Every count this
module returns is a number of *executed guest instructions*, counted exactly by
a TCG plugin (``runtime/insn_count_plugin.c``) under ``-icount shift=0``, which
makes runs deterministic. Instructions are not cycles: an MVE ``vmladava`` and a
scalar ``add`` each count as one, and memory wait states are not modelled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from tvmse.errors import ToolError

log = logging.getLogger(__name__)

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
LINKER_SCRIPT = RUNTIME_DIR / "corstone300.ld"
RUNTIME_SOURCES = (RUNTIME_DIR / "startup.c", RUNTIME_DIR / "tvmse_rt.c")
PLUGIN_SOURCE = RUNTIME_DIR / "insn_count_plugin.c"
INSTALL_SCRIPT = "scripts/install_system_packages.sh"

#: Debian package that provides each external tool used here.
TOOL_PACKAGES: Mapping[str, str] = {
    "qemu-system-arm": "qemu-system-arm",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi",
    "arm-none-eabi-nm": "binutils-arm-none-eabi",
    "arm-none-eabi-size": "binutils-arm-none-eabi",
    "clang": "clang",
    "gcc": "gcc",
}

#: Flags selecting the Cortex-M55 with FPU and Helium for each compiler. clang
#: needs -fshort-enums to match the enum ABI of arm-none-eabi GCC and newlib.
CPU_FLAGS: Mapping[str, tuple[str, ...]] = {
    "gcc": ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
    "clang": ("--target=thumbv8.1m.main-none-eabi", "-mcpu=cortex-m55", "-mfloat-abi=hard",
              "-fshort-enums"),
}
COMMON_CFLAGS = ("-g", "-ffunction-sections", "-fdata-sections", "-Wall")
DEFAULT_STACK_SIZE = 0x10000
#: Exit status the runtime uses after an unexpected exception (see tvmse_rt.h).
FAULT_EXIT_CODE = 125
#: The plugin keeps at most this many counting ranges.
MAX_COUNTED_FUNCTIONS = 512

_MARKER = re.compile(r"@@tvmse:(\w+)=(\w+)\n?")
_HEX_LINE = re.compile(r"^@@(\w+)=([0-9a-f]*)$", re.MULTILINE)


class ToolNotFoundError(RuntimeError, ToolError):
    """An external tool is missing; the message names the Debian package."""


class BuildError(RuntimeError):
    """Compiling or linking a program failed; the message holds the tool's output."""


class QemuTimeoutError(TimeoutError, ToolError):
    """The emulated program did not exit within the allowed wall-clock time."""


class QemuIncompleteError(RuntimeError, ToolError):
    """The emulated program's output ends before the markers the runtime prints last."""


@dataclasses.dataclass(frozen=True)
class SectionSizes:
    """Static memory footprint of an ELF, in bytes (from ``arm-none-eabi-size -A``).

    ``text`` includes the vector table and unwind tables; ``bss`` includes the
    large zeroed buffers placed in SRAM; the stack region is not counted here.
    """

    text: int
    rodata: int
    data: int
    bss: int


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Outcome of one emulated run.

    All instruction figures are executed guest instructions, not cycles: QEMU
    has no cycle model. ``per_function_instructions`` counts only instructions
    whose address lies inside the function's own body (callees are not
    included); ``per_function_calls`` counts executions of its first
    instruction.
    """

    exit_code: int
    stdout: str
    stderr: str
    total_instructions: int
    per_function_instructions: dict[str, int]
    per_function_calls: dict[str, int]
    sizes: SectionSizes
    stack_high_water_bytes: int | None
    stack_size_bytes: int | None
    fault_ipsr: int | None
    wall_seconds: float

    @property
    def text_bytes(self) -> int:
        return self.sizes.text

    @property
    def rodata_bytes(self) -> int:
        return self.sizes.rodata

    @property
    def data_bytes(self) -> int:
        return self.sizes.data

    @property
    def bss_bytes(self) -> int:
        return self.sizes.bss

    def arrays(self) -> dict[str, bytes]:
        """Arrays the program printed with ``tvmse_print_hex``, by name."""
        return parse_hex_arrays(self.stdout)

    def instructions_per_call(self, function: str) -> float:
        """Executed instructions inside ``function`` divided by its call count."""
        calls = self.per_function_calls[function]
        if calls == 0:
            raise ValueError(f"{function} was never called")
        return self.per_function_instructions[function] / calls


# --------------------------------------------------------------------------- tools


def require_tool(name: str) -> str:
    """Return the path of an external tool, or raise naming its Debian package.

    Looked up on the current ``PATH`` at call time, so callers (and tests) can
    change ``PATH`` to select or hide tools.
    """
    path = shutil.which(name)
    if path is None:
        package = TOOL_PACKAGES.get(name, name)
        raise ToolNotFoundError(
            f"{name} not found: apt-get install {package} (or run {INSTALL_SCRIPT})"
        )
    return path


def _run_tool(cmd: Sequence[str], what: str) -> subprocess.CompletedProcess:
    """Run a build tool, turning a non-zero exit into a BuildError with its output."""
    log.debug("%s: %s", what, " ".join(map(str, cmd)))
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True)
    if proc.stderr:
        log.debug("%s said:\n%s", what, proc.stderr)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed ({proc.returncode}):\n{' '.join(map(str, cmd))}\n"
                         f"{proc.stdout}{proc.stderr}")
    return proc


def cache_dir() -> Path:
    """Root of this project's caches: ``$TVMSE_CACHE_DIR`` or ``~/.cache/tvmse``.

    ``scripts/install_system_packages.sh`` uses the same rule, so the plugin
    header it stores there is found here.
    """
    env = os.environ.get("TVMSE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tvmse"


def _newlib_check(gcc: str) -> None:
    """Fail early, naming the package, if newlib's semihosting specs are missing."""
    proc = subprocess.run([gcc, "-print-file-name=rdimon.specs"], capture_output=True, text=True)
    if not os.path.isabs(proc.stdout.strip()):
        raise ToolNotFoundError(
            "newlib for arm-none-eabi (rdimon.specs) not found: "
            f"apt-get install libnewlib-arm-none-eabi (or run {INSTALL_SCRIPT})"
        )


# ------------------------------------------------------------------------- plugin


def plugin_header_dir() -> Path:
    """Directory holding ``qemu-plugin.h`` for the installed QEMU.

    No Debian binary package ships this header; the install script extracts it
    from Debian's qemu source package into ``<cache>/qemu-plugin-api``.
    ``$TVMSE_QEMU_PLUGIN_INCLUDE`` overrides the location.
    """
    env = os.environ.get("TVMSE_QEMU_PLUGIN_INCLUDE")
    directory = Path(env) if env else cache_dir() / "qemu-plugin-api"
    if not (directory / "qemu-plugin.h").is_file():
        raise ToolNotFoundError(
            f"qemu-plugin.h not found in {directory}: run {INSTALL_SCRIPT} "
            "(it takes the header from Debian's qemu source package)"
        )
    return directory


def ensure_plugin() -> Path:
    """Build the instruction-counting plugin once and return the ``.so`` path.

    The file name carries a hash of the plugin source and the header, so an
    edited plugin is rebuilt automatically; building takes well under a second.
    """
    header_dir = plugin_header_dir()
    digest = hashlib.sha256(
        PLUGIN_SOURCE.read_bytes() + (header_dir / "qemu-plugin.h").read_bytes()
    ).hexdigest()[:16]
    out = cache_dir() / "qemu-plugins" / f"insn_count-{digest}.so"
    if out.is_file():
        return out
    gcc = require_tool("gcc")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_so = Path(tmp) / out.name
        _run_tool([gcc, "-O2", "-shared", "-fPIC", "-Wall", f"-I{header_dir}",
                   "-o", tmp_so, PLUGIN_SOURCE], "building the QEMU plugin")
        os.replace(tmp_so, out)  # atomic: concurrent builders cannot see half a file
    log.info("built QEMU instruction-count plugin %s", out)
    return out


# -------------------------------------------------------------------------- build


def _compile_flags(compiler: str, opt: str, include_dirs: Iterable[Path],
                   defines: Iterable[str], gcc: str) -> list[str]:
    """Compiler-specific flags for one translation unit of the program."""
    flags = [*CPU_FLAGS[compiler], opt, *COMMON_CFLAGS, f"-I{RUNTIME_DIR}"]
    if compiler == "clang":
        # clang finds no C library on its own for a bare-metal target: use newlib's
        # headers from the arm-none-eabi GCC installation.
        sysroot = subprocess.run([gcc, "-print-sysroot"], capture_output=True,
                                 text=True).stdout.strip() or "/usr/lib/arm-none-eabi"
        flags.append(f"--sysroot={sysroot}")
    flags += [f"-I{d}" for d in include_dirs]
    flags += [f"-D{d}" for d in defines]
    return flags


def build_elf(c_sources: Sequence[str | Path], include_dirs: Sequence[str | Path] = (),
              out_dir: str | Path = "build/cortex_m", compiler: str = "gcc",
              opt: str = "-O2", *, defines: Sequence[str] = (),
              extra_cflags: Sequence[str] = (), name: str = "program",
              stack_size: int = DEFAULT_STACK_SIZE,
              source_cflags: Mapping[str | Path, Sequence[str]] | None = None) -> Path:
    """Compile and link C sources with the runtime into ``out_dir/<name>.elf``.

    ``compiler`` ("gcc" or "clang") and ``opt`` apply to ``c_sources``; the
    runtime is always built with arm-none-eabi-gcc -O2 so that start-up costs do
    not change with the compiler under test. Linking uses arm-none-eabi-gcc with
    newlib-nano and rdimon (semihosting). ``stack_size`` sizes the measured stack.
    ``source_cflags`` adds flags for single sources (keyed by path), e.g. vectorizer
    settings that pay for one kernel file only.
    """
    if compiler not in CPU_FLAGS:
        raise ValueError(f"compiler must be one of {sorted(CPU_FLAGS)}, not {compiler!r}")
    gcc = require_tool("arm-none-eabi-gcc")
    _newlib_check(gcc)
    cc = gcc if compiler == "gcc" else require_tool("clang")
    out_dir = Path(out_dir)
    obj_dir = out_dir / f"{name}.obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    include_dirs = [Path(d).resolve() for d in include_dirs]
    user_flags = _compile_flags(compiler, opt, include_dirs, defines, gcc) + list(extra_cflags)
    runtime_flags = _compile_flags("gcc", "-O2", (), (), gcc)

    objects = []
    per_source = {Path(k).resolve(): list(v) for k, v in (source_cflags or {}).items()}
    units = [(Path(s), cc, user_flags + per_source.get(Path(s).resolve(), [])) for s in c_sources]
    units += [(s, gcc, runtime_flags) for s in RUNTIME_SOURCES]
    for index, (source, tool, flags) in enumerate(units):
        obj = obj_dir / f"{index:03d}_{source.stem}.o"
        _run_tool([tool, *flags, "-c", source, "-o", obj], f"compiling {source.name}")
        objects.append(obj)

    elf = out_dir / f"{name}.elf"
    _run_tool([gcc, *CPU_FLAGS["gcc"], "--specs=nano.specs", "--specs=rdimon.specs",
               "-nostartfiles", "-T", LINKER_SCRIPT, "-Wl,--gc-sections",
               f"-Wl,--defsym=__stack_size={stack_size}",
               f"-Wl,-Map={out_dir / (name + '.map')}", *objects, "-lm", "-o", elf],
              f"linking {elf.name}")
    log.info("built %s with %s %s", elf, compiler, opt)
    return elf


# ---------------------------------------------------------------------------- ELF


def function_ranges(elf: str | Path) -> dict[str, tuple[int, int]]:
    """Map each sized function symbol of the ELF to its ``[start, end)`` addresses.

    ``arm-none-eabi-nm`` already clears the Thumb bit of function addresses.
    """
    nm = require_tool("arm-none-eabi-nm")
    out = _run_tool([nm, "-S", "--defined-only", elf], "reading symbols").stdout
    ranges = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "TtWw":
            start, size = int(parts[0], 16), int(parts[1], 16)
            if size:
                ranges.setdefault(parts[3], (start, start + size))
    return ranges


def section_sizes(elf: str | Path) -> SectionSizes:
    """Text, read-only data, initialised data and zeroed data sizes of the ELF."""
    size_tool = require_tool("arm-none-eabi-size")
    out = _run_tool([size_tool, "-A", elf], "reading section sizes").stdout
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    return SectionSizes(
        text=sum(sections.get(s, 0) for s in (".vectors", ".text", ".ARM.extab", ".ARM.exidx")),
        rodata=sections.get(".rodata", 0) + sections.get(".flash_rodata", 0),
        data=sections.get(".data", 0),
        bss=sections.get(".bss", 0) + sections.get(".sram_bss", 0),
    )


# ---------------------------------------------------------------------------- run


def _plugin_argument(plugin: Path, report: Path,
                     ranges: Mapping[str, tuple[int, int]]) -> str:
    """The ``-plugin`` option value: the .so, its report file and counted ranges."""
    parts = [str(plugin), f"out={report}"]
    parts += [f"range={name}:{lo:#x}:{hi:#x}" for name, (lo, hi) in ranges.items()]
    return ",".join(parts)


def _parse_report(text: str) -> tuple[int, dict[str, int], dict[str, int]]:
    """Read the plugin report: total, per-range instructions and entry counts."""
    total, insns, calls = None, {}, {}
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["total"]:
            total = int(parts[1])
        elif parts[:1] == ["range"]:
            insns[parts[1]], calls[parts[1]] = int(parts[4]), int(parts[5])
    if total is None:
        raise RuntimeError(f"QEMU plugin report has no total:\n{text}")
    return total, insns, calls


def parse_hex_arrays(stdout: str) -> dict[str, bytes]:
    """Decode the ``@@name=<hex>`` lines written by ``tvmse_print_hex``."""
    return {m.group(1): bytes.fromhex(m.group(2)) for m in _HEX_LINE.finditer(stdout)}


def qemu_command(elf: str | Path, plugin_arg: str) -> list[str]:
    """The QEMU command line used for every run (deterministic, semihosted)."""
    return [require_tool("qemu-system-arm"), "-M", "mps3-an547", "-display", "none",
            "-serial", "null", "-monitor", "none", "-semihosting", "-icount", "shift=0",
            "-plugin", plugin_arg, "-kernel", str(elf)]


def run_elf(elf: str | Path, timeout: float = 60.0,
            count_functions: Sequence[str] = ()) -> RunResult:
    """Run an ELF on the emulated Cortex-M55 and count executed instructions.

    ``count_functions`` names functions (ELF symbols) whose own instructions are
    counted separately. Raises ``QemuTimeoutError`` if the program has not
    exited after ``timeout`` wall-clock seconds, ``KeyError`` for an unknown
    function name. The counts are executed instructions, not cycles.
    """
    elf = Path(elf)
    symbols = function_ranges(elf) if count_functions else {}
    missing = [f for f in count_functions if f not in symbols]
    if missing:
        raise KeyError(f"functions not in {elf.name}: {', '.join(missing)}")
    if len(count_functions) > MAX_COUNTED_FUNCTIONS:
        raise ValueError(f"at most {MAX_COUNTED_FUNCTIONS} functions can be counted")
    ranges = {f: symbols[f] for f in count_functions}
    sizes = section_sizes(elf)
    plugin = ensure_plugin()

    with tempfile.TemporaryDirectory(prefix="tvmse-qemu-") as tmp:
        report = Path(tmp) / "counts.txt"
        cmd = qemu_command(elf, _plugin_argument(plugin, report, ranges))
        log.debug("running %s", " ".join(cmd))
        start = time.monotonic()
        out_path, err_path = Path(tmp) / "stdout.txt", Path(tmp) / "stderr.txt"
        with open(out_path, "wb") as out_file, open(err_path, "wb") as err_file:
            try:
                proc = subprocess.run(cmd, stdout=out_file, stderr=err_file, timeout=timeout,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as exc:
                raise QemuTimeoutError(f"{elf.name} did not exit within {timeout} s; output so far:\n"
                                       f"{_read_text(out_path)[-2000:]}") from exc
        wall = time.monotonic() - start
        stdout, stderr = _read_text(out_path), _read_text(err_path)
        if not report.is_file():
            raise QemuIncompleteError(f"QEMU wrote no instruction report (exit {proc.returncode}): the run did "
                                      f"not complete:\n{stderr[-2000:]}")
        total, insns, calls = _parse_report(report.read_text())
        proc = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)

    # The runtime's fault report uses SYS_WRITE0, which QEMU sends to its stderr.
    markers = {m.group(1): m.group(2)
               for m in _MARKER.finditer(proc.stdout + "\n" + proc.stderr)}
    result = RunResult(
        exit_code=proc.returncode,
        stdout=_MARKER.sub("", proc.stdout),
        stderr=_MARKER.sub("", proc.stderr),
        total_instructions=total,
        per_function_instructions=insns,
        per_function_calls=calls,
        sizes=sizes,
        stack_high_water_bytes=int(markers["stack_hwm"]) if "stack_hwm" in markers else None,
        stack_size_bytes=int(markers["stack_size"]) if "stack_size" in markers else None,
        fault_ipsr=int(markers["fault"]) if "fault" in markers else None,
        wall_seconds=wall,
    )
    if result.fault_ipsr is None and result.stack_size_bytes is None:
        raise QemuIncompleteError(
            f"the run of {elf.name} on QEMU did not complete: exit {proc.returncode} after {wall:.1f} s, but the "
            f"end-of-run markers are missing from its {len(proc.stdout):,} characters of output "
            f"(QEMU stderr: {proc.stderr.strip()[-300:] or 'empty'}); run it again")
    if result.fault_ipsr is not None:
        log.warning("%s took unexpected exception %d", elf.name, result.fault_ipsr)
    log.info("%s: exit %d, %d instructions executed", elf.name, result.exit_code, total)
    return result


def _read_text(path: Path) -> str:
    """A file QEMU wrote, whole; bytes that are not UTF-8 are kept visible, not fatal."""
    return path.read_bytes().decode("utf-8", errors="replace") if path.exists() else ""


# ------------------------------------------------------------------------ C data


def c_array(name: str, values: Iterable[int], ctype: str = "int8_t", *,
            const: bool = True, align: int = 16, per_line: int = 32, section: str | None = None) -> str:
    """C definition of an array holding ``values``: the way inputs reach a program.

    Baking inputs into the image keeps runs free of host I/O, so the measured
    instructions are the program's own.
    """
    items = [str(int(v)) for v in values]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    qualifier = "const " if const else ""
    body = ",\n    ".join(lines)
    where = f' __attribute__((section("{section}")))' if section else ""
    return (f"{qualifier}{ctype} {name}[{len(items)}] __attribute__((aligned({align}))){where} = {{\n"
            f"    {body}\n}};\n")
