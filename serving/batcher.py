"""Micro-batching for the HTTP API: concurrent requests share model batches.

A model forward pass over 32 sentences costs little more than over 2, so when many
clients each send a few texts, running them one request at a time wastes most of the
hardware. Requests are queued; a single worker takes everything waiting (up to
``max_sentences``, waiting at most ``max_wait_s`` for more to arrive) and runs it as one
predictor call in a thread, so the event loop keeps accepting requests meanwhile.
Requests with different thresholds are run as separate calls of the same round, so each
gets exactly the result it would get alone; and a request that makes the model fail gets
the error alone, the others of its call being run again without it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from veille.annotation.document import Example

from .pipeline import PredictOptions

RunBatch = Callable[[list[str], PredictOptions], list[Example]]


@dataclass
class _Job:
    texts: list[str]
    options: PredictOptions
    future: asyncio.Future


@dataclass
class BatcherStats:
    requests: int = 0
    sentences: int = 0
    model_calls: int = 0


class MicroBatcher:
    def __init__(self, run: RunBatch, max_sentences: int = 256, max_wait_s: float = 0.005) -> None:
        self.run, self.max_sentences, self.max_wait_s = run, max_sentences, max_wait_s
        self.stats = BatcherStats()
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        """Finish every queued request, then stop (graceful shutdown)."""
        if self._worker is not None:
            await self._queue.put(None)
            await self._worker
            self._worker = None

    async def predict(self, texts: list[str], options: PredictOptions) -> list[Example]:
        if self._worker is None:
            raise RuntimeError("the batcher is not running (server starting or shutting down)")
        if not texts:
            return []
        job = _Job(texts, options, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.future

    async def _serve(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            jobs, stopping = await self._gather(first)
            await self._run_round(jobs)
            if stopping:
                return

    async def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """Collect the jobs that arrive within ``max_wait_s`` of the first, up to ``max_sentences``."""
        jobs, count = [first], len(first.texts)
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while count < self.max_sentences:
            try:
                timeout = max(0.0, deadline - asyncio.get_running_loop().time())
                job = self._queue.get_nowait() if not self._queue.empty() else await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            count += len(job.texts)
        return jobs, False

    async def _run_round(self, jobs: list[_Job]) -> None:
        by_options: dict[PredictOptions, list[_Job]] = defaultdict(list)
        for job in jobs:
            by_options[job.options].append(job)
        for options, group in by_options.items():
            await self._run_group(group, options)

    async def _run_group(self, group: list[_Job], options: PredictOptions) -> None:
        """One model call for the group; if it fails, each request again on its own.

        A request whose texts make the model raise must not fail the requests that happened
        to share its call: they are retried without it, and only it gets the error.
        """
        group = [job for job in group if not job.future.done()]  # the client may have gone away
        if not group:
            return
        texts = [text for job in group for text in job.texts]
        try:
            examples = await asyncio.to_thread(self.run, texts, options)
        except Exception as exc:  # the server goes on
            if len(group) == 1:
                group[0].future.set_exception(exc)
            else:
                for job in group:
                    await self._run_group([job], options)
            return
        self.stats.model_calls += 1
        self.stats.requests += len(group)
        self.stats.sentences += len(texts)
        position = 0
        for job in group:
            if not job.future.done():
                job.future.set_result(examples[position : position + len(job.texts)])
            position += len(job.texts)
