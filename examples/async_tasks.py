"""Drive 1 000 tasks from asyncio: a cluster started with `async with`,
tasks submitted as futures and awaited together, while the event loop
stays free for other work (here a ticker that counts its turns).

    python3 async_tasks.py [N_TASKS] [N_ENGINES]

Prints how many tasks ran on how many engines, the wall time, and how
often the loop ticked meanwhile.
"""
import asyncio
import sys
import time

from plexa.cluster import Cluster


def work(i):
    """A task: a little computation on an engine."""
    import os
    return sum(k * k for k in range(i % 100)), os.getpid()


async def ticker(counter):
    while True:
        counter[0] += 1
        await asyncio.sleep(0.005)


async def main(n_tasks, n_engines):
    async with Cluster(n=n_engines, profile='async_example') as cluster:
        tc = cluster.task_client()
        ticks = [0]
        tick = asyncio.ensure_future(ticker(ticks))
        t0 = time.monotonic()
        futures = [tc.apply_async(work, i) for i in range(n_tasks)]
        results = await asyncio.gather(*futures)
        elapsed = time.monotonic() - t0
        tick.cancel()
        tc.close()
    assert [v for v, _ in results] == [sum(k * k for k in range(i % 100))
                                       for i in range(n_tasks)]
    engines = len(set(pid for _, pid in results))
    print('%d tasks on %d engines in %.2f s; the event loop ticked %d times meanwhile'
          % (n_tasks, engines, elapsed, ticks[0]))


if __name__ == '__main__':
    n_tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    n_engines = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    asyncio.run(main(n_tasks, n_engines))
