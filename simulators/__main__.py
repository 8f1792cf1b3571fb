"""Run the 17TRACK simulator on its own: `python -m simulators --key K --webhook URL`.

Then point the service at it (SEVENTEENTRACK_API_URL=http://HOST:PORT) and watch /_sim/pushes.
"""

from __future__ import annotations

import argparse
import signal
import threading

from simulators.seventeentrack import SimulatorServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--key", required=True, help="the API key (17token; also signs pushes)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8917)
    parser.add_argument("--webhook", help="where pushes go (the service's /webhooks/17track)")
    parser.add_argument("--step-seconds", type=float, default=5.0, help="time between two parcel steps")
    parser.add_argument("--duplicate-rate", type=float, default=0.0)
    parser.add_argument("--reorder-rate", type=float, default=0.0)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    options = {
        "webhook_url": args.webhook,
        "step_seconds": args.step_seconds,
        "duplicate_rate": args.duplicate_rate,
        "reorder_rate": args.reorder_rate,
    }
    with SimulatorServer(args.key, args.host, args.port, **options) as sim:
        print(f"17TRACK simulator on {sim.url} (control API: {sim.url}/_sim/)", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
