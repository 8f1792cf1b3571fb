"""The CargoAi Track & Trace simulator (see `server`)."""

from simulators.cargoai.delivery import sign_callback
from simulators.cargoai.paths import awb_check_digit_ok
from simulators.cargoai.server import CargoAiSimulatorServer, create_simulator

__all__ = ["CargoAiSimulatorServer", "awb_check_digit_ok", "create_simulator", "sign_callback"]
