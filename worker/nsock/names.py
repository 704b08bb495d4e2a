"""Name lookups off the event loop: getaddrinfo blocks, so it runs in a few threads and the
answer comes back to the loop as a callback."""
from __future__ import annotations

import socket
from collections.abc import Callable


class Lookups:
    def __init__(self, loop, threads: int = 4):
        self.loop = loop
        self.threads = threads
        self._pool = None

    def resolve(self, host: str, family: int, on_done: Callable[[list[str]], None]) -> None:
        """``on_done(addresses)`` later, on the loop; an empty list when it fails."""
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self.threads,
                                            thread_name_prefix="lookups")

        def work():
            try:
                infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
                found = list(dict.fromkeys(info[4][0] for info in infos))
            except (OSError, UnicodeError):
                found = []
            self.loop.call_soon_threadsafe(lambda: on_done(found))

        self._pool.submit(work)
