"""The one boundary to Arm Vela: check the options, compile a TFLite file, read back the figures.

Vela runs in-process (its command-line entry point, output captured) in a private temporary
folder; tvmse reads its summary CSV and its debug database (per-op cycles, MACs and encoded
weight bytes) and returns them with the optimised model. Vela's performance model is the source
of every NPU figure tvmse reports; it gives zero weights no credit in compute (see TOOLCHAIN.md).
"""

from __future__ import annotations

import configparser
import contextlib
import csv
import io
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tvmse.errors import ConfigError, ToolError

DEFAULT_ACCELERATOR = "ethos-u55-128"
# (system config, memory mode) used when only an accelerator is given, per NPU family
FAMILY_DEFAULTS = {
    "ethos-u55": ("Ethos_U55_High_End_Embedded", "Shared_Sram"),
    "ethos-u65": ("Ethos_U65_High_End", "Shared_Sram"),
    "ethos-u85": ("Ethos_U85_SYS_DRAM_High", "Shared_Sram"),
}
DEDICATED_SRAM = "Dedicated_Sram"
# Vela's own rule: U55 has no dedicated SRAM mode (its AXI ports cannot hold the arena off-chip)
FAMILY_MEMORY_MODES_EXCLUDED = {"ethos-u55": ("Dedicated_Sram",)}


@lru_cache(maxsize=1)
def _vela_ini() -> tuple[Path, configparser.ConfigParser]:
    from ethosu import config_files
    path = Path(config_files.__path__[0]) / "Arm" / "vela.ini"
    parser = configparser.ConfigParser()
    parser.read(path)
    return path, parser


def accelerators() -> list[str]:
    from ethosu.vela.architecture_features import Accelerator
    return list(Accelerator.member_list())


def system_configs() -> list[str]:
    return [s.split(".", 1)[1] for s in _vela_ini()[1].sections() if s.startswith("System_Config.")]


def memory_modes() -> list[str]:
    return [s.split(".", 1)[1] for s in _vela_ini()[1].sections() if s.startswith("Memory_Mode.")]


def family(accelerator: str) -> str:
    return accelerator.rsplit("-", 1)[0]


@dataclass(frozen=True)
class VelaConfig:
    """What Vela compiles for. ``arena_cache_size`` (bytes, Dedicated_Sram only: Ethos-U65/U85 keep the
    arena in DRAM and cache it in this much SRAM) is Vela's ``--arena-cache-size``; None is Vela's default,
    the system's whole SRAM."""

    accelerator: str = DEFAULT_ACCELERATOR
    system_config: str | None = None
    memory_mode: str | None = None
    arena_cache_size: int | None = None

    def resolved(self) -> "VelaConfig":
        """Fill defaults for the accelerator's family and check every combination; ConfigError lists valid values."""
        if self.accelerator not in accelerators():
            raise ConfigError(f"unknown accelerator config '{self.accelerator}'; valid: {', '.join(accelerators())}")
        fam = family(self.accelerator)
        sys_default, mem_default = FAMILY_DEFAULTS[fam]
        system_config = self.system_config or sys_default
        memory_mode = self.memory_mode or mem_default
        fitting = [s for s in system_configs() if s.lower().startswith(fam.replace("-", "_").replace("ethos_u", "ethos_u"))]
        if system_config not in system_configs():
            raise ConfigError(f"unknown system config '{system_config}'; valid for {self.accelerator}: {', '.join(fitting)}")
        if system_config not in fitting:
            raise ConfigError(f"system config '{system_config}' is not for {self.accelerator}; "
                              f"valid for it: {', '.join(fitting)}")
        excluded = [m for m in memory_modes() if m.startswith(FAMILY_MEMORY_MODES_EXCLUDED.get(fam, ("\0",)))]
        valid_modes = [m for m in memory_modes() if m not in excluded]
        if memory_mode not in valid_modes:
            raise ConfigError(f"memory mode '{memory_mode}' is not valid for {self.accelerator}; "
                              f"valid: {', '.join(valid_modes)}")
        if self.arena_cache_size is not None and memory_mode != DEDICATED_SRAM:
            raise ConfigError(f"--arena-cache-size applies only to --memory-mode {DEDICATED_SRAM} (Ethos-U65/U85: the "
                              f"arena in DRAM, cached in SRAM); in {memory_mode} the whole arena is in SRAM")
        if self.arena_cache_size is not None and (isinstance(self.arena_cache_size, bool)
                                                  or not isinstance(self.arena_cache_size, int)
                                                  or self.arena_cache_size < 16):
            raise ConfigError(f"--arena-cache-size {self.arena_cache_size}: must be a whole number of bytes ≥ 16")
        return VelaConfig(self.accelerator, system_config, memory_mode, self.arena_cache_size)

    @property
    def core_clock_hz(self) -> float:
        return float(_vela_ini()[1][f"System_Config.{self.system_config}"]["core_clock"])

    def describe(self) -> str:
        cache = f", arena cache {self.arena_cache_size:,} B" if self.arena_cache_size is not None else ""
        return f"{self.accelerator}, {self.system_config}, {self.memory_mode}{cache}"


@dataclass
class VelaLayer:
    """One NPU op as Vela scheduled it (named by the TFLite tensor it writes)."""
    name: str
    operator: str
    op_cycles: int
    npu_cycles: int
    macs: int
    weight_bytes: int  # encoded weight stream + scales, 0 for ops without weights


@dataclass
class VelaResult:
    config: VelaConfig
    optimized_model: bytes
    summary: dict[str, float]
    layers: list[VelaLayer] = field(default_factory=list)
    log: str = ""

    @property
    def npu_cycles(self) -> int:
        return int(self.summary["cycles_npu"])

    @property
    def total_cycles(self) -> int:
        return int(self.summary["cycles_total"])

    @property
    def cpu_operators(self) -> list[str]:
        """Ops left for the CPU: every operator of the optimised model that is not an ethos-u custom op."""
        return cpu_operators(self.optimized_model)


def cpu_operators(optimized_model: bytes) -> list[str]:
    """'<op>:<output tensor>' for each operator of a Vela-optimised TFLite model that runs on the CPU."""
    import tflite

    model = tflite.Model.GetRootAsModel(optimized_model, 0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    found = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            if code.CustomCode() == b"ethos-u":
                continue
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            output = graph.Tensors(op.Outputs(0)).Name().decode() if op.OutputsLength() else "?"
            found.append(f"{names.get(builtin, builtin)}:{output}")
    return found


def compile_tflite(model: bytes, config: VelaConfig, name: str = "model",
                   ignore_ops: tuple[str, ...] = ()) -> VelaResult:
    """Compile int8 TFLite bytes with Vela; raises ToolError with Vela's own message on failure.

    ``ignore_ops``: TFLite builtin names Vela must leave on the CPU (its ``--ignore-ops``), e.g. to
    exercise the CPU-fallback glue, or to keep an op off the NPU on purpose.
    """
    from ethosu.vela import vela

    config = config.resolved()
    with tempfile.TemporaryDirectory(prefix="tvmse-vela-") as tmp:
        src = Path(tmp) / f"{name}.tflite"
        src.write_bytes(model)
        out = Path(tmp) / "out"
        argv = [str(src), "--accelerator-config", config.accelerator, "--system-config", config.system_config,
                "--memory-mode", config.memory_mode, "--config", str(_vela_ini()[0]),
                "--output-dir", str(out), "--enable-debug-db"]
        if ignore_ops:
            argv += ["--ignore-ops", ",".join(ignore_ops)]
        if config.arena_cache_size is not None and config.memory_mode == DEDICATED_SRAM:
            argv += ["--arena-cache-size", str(config.arena_cache_size)]
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                status = vela.main(argv)
        except SystemExit as e:  # argparse and some Vela errors exit
            status = e.code
        except Exception as e:  # Vela raises its own error classes for unsupported input
            raise ToolError(f"Vela failed on {name} ({config.describe()}): {type(e).__name__}: {e}") from None
        if status not in (0, None):
            raise ToolError(f"Vela failed on {name} ({config.describe()}), exit {status}:\n{log.getvalue()[-2000:]}")
        summary = _read_summary(out / f"{name}_summary_{config.system_config}.csv")
        layers = _read_layers(out / f"{name}_debug.xml")
        return VelaResult(config, (out / f"{name}_vela.tflite").read_bytes(), summary, layers, log.getvalue())


def _read_summary(path: Path) -> dict[str, float]:
    rows = list(csv.reader(path.open()))
    summary = {}
    for key, value in zip(rows[0], rows[1]):
        try:
            summary[key] = float(value)
        except ValueError:
            summary[key] = value
    return summary


def _debug_tables(path: Path) -> dict[str, list[dict[str, str]]]:
    text = path.read_text()
    tables = {}
    for m in re.finditer(r'<table name="([^"]+)">\s*<!\[CDATA\[(.*?)\]\]>', text, re.S):
        tables[m.group(1)] = list(csv.DictReader(io.StringIO(m.group(2).strip())))
    return tables


def _int(value: str) -> int:
    return int(float(value)) if value not in ("", None) else 0


def _read_layers(path: Path) -> list[VelaLayer]:
    tables = _debug_tables(path)
    debug = {row["id"]: row for row in tables.get("perf_debug", [])}
    layers = []
    for row in tables.get("perf", []):
        d = debug.get(row["id"], {})
        layers.append(VelaLayer(
            name=row["name"], operator=row["operator"],
            op_cycles=_int(row["op_cycles"]), npu_cycles=_int(row["npu_cycles"]), macs=_int(row["mac_count"]),
            weight_bytes=_int(d.get("weight_total_bytes", "")) + _int(d.get("scales_total_bytes", ""))))
    return layers
