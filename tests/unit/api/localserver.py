"""A local HTTP server in a thread of its own, for tests of the command line (which runs its
own event loop with `asyncio.run`, so it cannot share the test's)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.Response]]


def serve(handlers: dict[str, Handler]) -> tuple[str, Callable[[], None]]:
    """Serve `handlers` (path → GET handler) on 127.0.0.1 at a free port; returns the base URL
    and the function that stops the server (and its thread)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []

    async def start() -> web.AppRunner:
        app = web.Application()
        for path, handler in handlers.items():
            app.router.add_get(path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]  # noqa: SLF001
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the local test server did not start within 10 s")

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return f"http://127.0.0.1:{port[0]}", stop
