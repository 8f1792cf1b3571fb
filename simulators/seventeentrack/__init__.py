"""The 17TRACK API simulator (see `server`) and the push bodies it sends (`pushes`)."""

from simulators.seventeentrack.server import SimulatorServer, create_simulator, push

__all__ = ["SimulatorServer", "create_simulator", "push"]
