"""An asyncio server with several tasks: a TCP echo server on loopback, a
client that talks to it, a periodic ticker and a slow background job.

    python examples/asyncio_server.py &
    inspector stack $!
Works on CPython 3.8+.
"""

import asyncio
import os

stats = {"connections": 0, "echoed": 0, "ticks": 0}


async def handle(reader, writer):
    stats["connections"] += 1
    while True:
        line = await reader.readline()
        if not line:
            break
        stats["echoed"] += 1
        writer.write(line)
        await writer.drain()
    writer.close()


async def client(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    while True:
        writer.write(b"ping %d\n" % n)
        await writer.drain()
        await reader.readline()
        n += 1
        await asyncio.sleep(0.05)


async def ticker():
    while True:
        stats["ticks"] += 1
        await asyncio.sleep(0.1)


async def slow_job(name, seconds):
    while True:
        await asyncio.sleep(seconds)


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tasks = [
        asyncio.ensure_future(client(port)),
        asyncio.ensure_future(ticker()),
        asyncio.ensure_future(slow_job("nightly-report", 30)),
    ]
    print("ready pid=%d port=%d" % (os.getpid(), port), flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), *tasks)


if __name__ == "__main__":
    asyncio.run(main())
