"""A uvloop service: one uvloop loop on the main thread (uvloop.run) and a
second on a thread named "uv-worker", each serving TCP and running named
tasks. Prints "ready PID main=IDENT worker=IDENT" once both serve."""
import asyncio
import os
import sys
import threading

import uvloop

started = threading.Event()


async def handle(reader, writer):
    await reader.read(100)
    writer.close()


async def waiter(seconds):
    await asyncio.sleep(seconds)


async def serve(prefix, ready=None):
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    for i in range(3):
        asyncio.ensure_future(waiter(3600)).set_name("%s-waiter-%d" % (prefix, i))
    await asyncio.sleep(0.05)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def worker():
    uvloop.run(serve("worker", started))


async def main():
    thread = threading.Thread(target=worker, name="uv-worker", daemon=True)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, started.wait)
    print("ready %d main=%d worker=%d" % (os.getpid(), threading.get_ident(), thread.ident),
          flush=True)
    await serve("main")


if __name__ == "__main__":
    sys.exit(uvloop.run(main()))
