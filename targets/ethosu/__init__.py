"""Ethos-U target: integer form → int8 TFLite (checked bit-exact) → Vela → deployable model + figures."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tvmse.ir import IntegerGraph
from tvmse.targets.ethosu.lower_to_tflite import check_against_host, lower_to_tflite
from tvmse.targets.ethosu.vela_driver import VelaConfig, VelaResult, compile_tflite

logger = logging.getLogger(__name__)


@dataclass
class EthosUBuild:
    tflite: bytes          # the int8 model handed to Vela (runs in the TFLite interpreter)
    vela: VelaResult       # Vela's optimised model and performance estimates
    verified_trials: int   # random input sets on which TFLite == host reference, bit for bit


def build(graph: IntegerGraph, config: VelaConfig, reference=None, verify_trials: int = 8,
          name: str = "model") -> EthosUBuild:
    """Lower, verify against ``reference`` (a HostReference; skipped when None), compile with Vela."""
    tflite = lower_to_tflite(graph, description=f"tvmse: {name}")
    if reference is not None and verify_trials > 0:
        logger.info("checking the TFLite model against the host reference (%d random inputs)", verify_trials)
        check_against_host(graph, tflite, reference, n_trials=verify_trials)
    logger.info("compiling with Vela (%s)", config.describe() if config.system_config else config.accelerator)
    vela = compile_tflite(tflite, config, name=name)
    return EthosUBuild(tflite, vela, verify_trials if reference is not None else 0)
