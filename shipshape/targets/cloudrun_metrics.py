"""The canary gate's input on Cloud Run: one revision's requests, 5xx and p95 latency from Cloud Monitoring.

Cloud Run writes `run.googleapis.com/request_count` (labels response_code, response_code_class) and
`run.googleapis.com/request_latencies` (a distribution, ms) per revision. Two reads cover a canary step:
the count summed per response_code_class, and the 95th percentile per series (the highest is taken).
Alignment periods are at least 60 s, as the API requires. Google ingests these samples with a delay (up
to about 3 minutes): on a real stack, set shipshape:canary.interval above that (docs/cloudrun.md).
"""
from __future__ import annotations

import math

from google.cloud import monitoring_v3
from google.protobuf import duration_pb2, timestamp_pb2

from shipshape.nginx import TrafficStats

COUNT, LATENCY = "run.googleapis.com/request_count", "run.googleapis.com/request_latencies"
Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer


def series_filter(metric: str, service: str, revision: str) -> str:
    return (f'metric.type = "{metric}" AND resource.type = "cloud_run_revision" AND '
            f'resource.labels.service_name = "{service}" AND resource.labels.revision_name = "{revision}"')


def request(project: str, metric: str, service: str, revision: str, start: float, end: float) -> dict:
    """ListTimeSeries for one revision over [start, end]: counts per class, or p95 latency per series."""
    period = max(60, math.ceil(end - start))
    aggregation = ({"alignment_period": duration_pb2.Duration(seconds=period), "per_series_aligner": Aligner.ALIGN_DELTA,
                    "cross_series_reducer": Reducer.REDUCE_SUM, "group_by_fields": ["metric.labels.response_code_class"]}
                   if metric == COUNT else
                   {"alignment_period": duration_pb2.Duration(seconds=period),
                    "per_series_aligner": Aligner.ALIGN_PERCENTILE_95})
    return {"name": f"projects/{project}", "filter": series_filter(metric, service, revision),
            "interval": monitoring_v3.TimeInterval(start_time=_stamp(start), end_time=_stamp(end)),
            "aggregation": monitoring_v3.Aggregation(aggregation),
            "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL}


def stats_from(count_series, latency_series, now: float) -> TrafficStats:
    requests = errors = 0
    for series in count_series:
        total = sum(point.value.int64_value for point in series.points)
        requests += total
        if series.metric.labels.get("response_code_class") == "5xx":
            errors += total
    p95 = max((point.value.double_value for series in latency_series for point in series.points), default=0.0)
    return TrafficStats(requests, errors, p95, now)


def revision_stats(clients, service: str, revision: str, start: float, end: float) -> TrafficStats:
    read = clients.metrics.list_time_series
    counts = clients.call("read request counts (Cloud Monitoring)", read,
                          request=request(clients.project, COUNT, service, revision, start, end))
    latencies = clients.call("read request latencies (Cloud Monitoring)", read,
                             request=request(clients.project, LATENCY, service, revision, start, end))
    return stats_from(list(counts), list(latencies), end)


def _stamp(epoch: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(epoch * 1e9))
    return stamp
