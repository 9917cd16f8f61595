"""What `/metrics` reports, in Prometheus' text format: plain counters and histograms kept
under one lock (a scrape is rare, updates are a few per batch)."""

from __future__ import annotations

import bisect
import threading
from collections import Counter

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus histograms are exposed."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str) -> list[str]:
        out, total = [], 0
        for bound, n in zip((*self.buckets, "+Inf"), self.counts):
            total += n
            out.append(f'{name}_bucket{{le="{bound}"}} {total}')
        return [*out, f"{name}_sum {self.sum:.6f}", f"{name}_count {total}"]


class Metrics:
    """The server's counters; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter = Counter()  # (route, status)
        self.inputs: Counter = Counter()  # modality
        self.failed: Counter = Counter()  # modality
        self.cached = 0
        self.dropped = 0  # queued inputs of clients that went away
        self.queued = 0
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.queue_wait = Histogram(SECONDS_BUCKETS)
        self.encode_seconds = Histogram(SECONDS_BUCKETS)

    def request(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[route, status] += 1

    def input_done(self, modality: str, *, failed: bool = False, cached: bool = False) -> None:
        with self._lock:
            self.inputs[modality] += 1
            self.failed[modality] += failed
            self.cached += cached

    def dropped_input(self) -> None:
        with self._lock:
            self.dropped += 1

    def queue(self, change: int) -> None:
        with self._lock:
            self.queued += change

    def batch(self, size: int, waits: list[float], seconds: float) -> None:
        with self._lock:
            self.batch_size.observe(size)
            self.encode_seconds.observe(seconds)
            for wait in waits:
                self.queue_wait.observe(wait)

    def text(self, towers: list[str]) -> str:
        """The exposition text of every metric."""
        with self._lock:
            lines = [
                "# HELP bind_requests_total HTTP requests answered, by route and status.",
                "# TYPE bind_requests_total counter",
                *(f'bind_requests_total{{route="{r}",status="{s}"}} {n}'
                  for (r, s), n in sorted(self.requests.items())),
                "# HELP bind_inputs_total Inputs answered, by modality.",
                "# TYPE bind_inputs_total counter",
                *(f'bind_inputs_total{{modality="{m}"}} {n}' for m, n in sorted(self.inputs.items())),
                "# HELP bind_inputs_failed_total Inputs answered with an error, by modality.",
                "# TYPE bind_inputs_failed_total counter",
                *(f'bind_inputs_failed_total{{modality="{m}"}} {n}' for m, n in sorted(self.failed.items())),
                "# HELP bind_inputs_cached_total Inputs answered from the embedding cache.",
                "# TYPE bind_inputs_cached_total counter",
                f"bind_inputs_cached_total {self.cached}",
                "# HELP bind_inputs_dropped_total Queued inputs dropped because their client went away.",
                "# TYPE bind_inputs_dropped_total counter",
                f"bind_inputs_dropped_total {self.dropped}",
                "# HELP bind_queue_depth Inputs decoded or decoding, waiting for the model.",
                "# TYPE bind_queue_depth gauge",
                f"bind_queue_depth {self.queued}",
                "# HELP bind_batch_size Inputs per encoded batch.",
                "# TYPE bind_batch_size histogram",
                *self.batch_size.lines("bind_batch_size"),
                "# HELP bind_queue_wait_seconds Time from arrival to the start of its batch.",
                "# TYPE bind_queue_wait_seconds histogram",
                *self.queue_wait.lines("bind_queue_wait_seconds"),
                "# HELP bind_encode_seconds Time the model spent on one batch.",
                "# TYPE bind_encode_seconds histogram",
                *self.encode_seconds.lines("bind_encode_seconds"),
                "# HELP bind_towers_loaded Towers held in memory.",
                "# TYPE bind_towers_loaded gauge",
                *(f'bind_towers_loaded{{tower="{t}"}} 1' for t in towers),
            ]
        return "\n".join(lines) + "\n"
