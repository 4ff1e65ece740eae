"""The dispatcher of `python -m bench dispatch`, in its own process: `python -m bench.dispatch_hub`.

It is built and run exactly as `hub run` builds and runs it with HUB_DISPATCH_ENABLED
(hub/runtime.py: `Dispatcher(settings, rules, settings.destinations, on_round=...).run()`),
configured by the same HUB_* variables, and nothing else runs beside it: no Kafka consumer, relay
or clock, so its CPU is the dispatcher's alone. SIGTERM stops it as `hub run` stops it.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from hub.config import Settings
from hub.core.rules import load_rules
from hub.dispatch.dispatcher import Dispatcher, RoundReport


async def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    rounds = {"n": 0, "sent": 0}

    def on_round(report: RoundReport) -> None:
        rounds["n"] += 1
        rounds["sent"] += sum(report.sent.values())

    dispatcher = Dispatcher(settings, load_rules(settings.rules_file), settings.destinations, on_round=on_round)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, dispatcher.stop)
    print("dispatcher running", flush=True)
    await dispatcher.run()
    print(f"dispatcher stopped after {rounds['n']} rounds, {rounds['sent']} sent", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
