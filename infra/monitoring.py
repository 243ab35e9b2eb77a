"""Monitoring: an uptime check on the health path and the alert policies the plans ask for
(5xx ratio > 5% for 5 min, database down immediately, memory > 85% for 10 min), sent to one channel."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pulumi
import pulumi_gcp as gcp

from shipshape.config import Monitoring as MonitoringSettings, Stack
from shipshape.secrets import SecretRef


@dataclass(frozen=True)
class ChannelSpec:
    """A Cloud Monitoring notification channel: type, plain labels, and secret labels."""

    type: str
    labels: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    sensitive: dict[str, pulumi.Input[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitoringArgs:
    settings: MonitoringSettings
    project: str
    health_url: pulumi.Input[str]  # https://host/healthz
    service_name: str | None = None  # Cloud Run service: 5xx ratio and memory alerts
    database_id: pulumi.Input[str] | None = None  # project:instance, for the database-down alert
    channel: ChannelSpec | None = None


def channel_spec(stack: Stack, resolve: Callable[[SecretRef], pulumi.Input[str]]) -> ChannelSpec | None:
    """The channel the config asks for; secret references are resolved by `resolve` (never logged)."""
    settings, webhook = stack.monitoring, stack.notifications.webhook
    kind = settings.channel or ("webhook" if webhook else "email" if settings.email else None)
    if kind == "webhook" and webhook:
        return ChannelSpec("webhook_tokenauth", labels={"url": pulumi.Output.secret(resolve(webhook))})
    if kind == "slack":
        return ChannelSpec("slack", labels={"channel_name": settings.slack_channel},
                           sensitive={"auth_token": pulumi.Output.secret(resolve(settings.slack_token))})
    if kind == "email" and settings.email:
        return ChannelSpec("email", labels={"email_address": settings.email})
    return None


def _threshold(filter_: str, value: float, duration: str, aligner: str, comparison: str) -> dict:
    return {"filter": filter_, "threshold_value": value, "duration": duration, "comparison": comparison,
            "aggregations": [{"alignment_period": "60s", "per_series_aligner": aligner}],
            "trigger": {"count": 1}}


class Monitoring(pulumi.ComponentResource):
    """Uptime check, alert policies and the notification channel they use."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:Monitoring", name, None, opts)
        self.args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self.channel = (gcp.monitoring.NotificationChannel(
            f"{name}-channel", display_name=f"{name} alerts", type=args.channel.type,
            labels=args.channel.labels, sensitive_labels=args.channel.sensitive or None, opts=self._child)
            if args.channel else None)
        self.uptime = self._uptime(name)
        self.policies = [self._policy(name, slug, title, condition)
                         for slug, title, condition in self._conditions()]
        self.register_outputs({"uptime_check": self.uptime.uptime_check_id,
                               "policies": [p.name for p in self.policies],
                               "channel": self.channel.name if self.channel else None})

    def _uptime(self, name: str) -> gcp.monitoring.UptimeCheckConfig:
        url = pulumi.Output.from_input(self.args.health_url)
        https = url.apply(lambda u: u.startswith("https://"))
        return gcp.monitoring.UptimeCheckConfig(
            f"{name}-uptime", display_name=f"{name} health", timeout="10s",
            period=self.args.settings.uptime_period,
            http_check={"path": url.apply(lambda u: "/" + u.split("://", 1)[1].split("/", 1)[1]),
                        "use_ssl": https, "validate_ssl": https,
                        "port": https.apply(lambda tls: 443 if tls else 80)},
            monitored_resource={"type": "uptime_url", "labels": {
                "project_id": self.args.project,
                "host": url.apply(lambda u: u.split("://", 1)[1].split("/", 1)[0])}},
            opts=self._child)

    def _conditions(self):
        s, service, db = self.args.settings, self.args.service_name, self.args.database_id
        yield ("health", "Health check failing", {"condition_threshold": _threshold(
            self.uptime.uptime_check_id.apply(lambda i: (
                'metric.type="monitoring.googleapis.com/uptime_check/check_passed" '
                f'AND resource.type="uptime_url" AND metric.labels.check_id="{i}"')),
            1, "120s", "ALIGN_NEXT_OLDER", "COMPARISON_LT")})
        if service:
            requests = (f'run_googleapis_com:request_count{{monitored_resource="cloud_run_revision",'
                        f'service_name="{service}"')
            yield ("errors", f"5xx ratio > {s.error_rate:.0%} for {s.error_window_minutes} min", {
                "condition_prometheus_query_language": {
                    "query": f'sum(rate({requests},response_code_class="5xx"}}[{s.error_window_minutes}m]))'
                             f' / sum(rate({requests}}}[{s.error_window_minutes}m])) > {s.error_rate}',
                    "duration": f"{s.error_window_minutes * 60}s", "evaluation_interval": "60s"}})
            yield ("memory", f"Memory > {s.memory_ratio:.0%} for {s.memory_window_minutes} min", {
                "condition_threshold": _threshold(
                    'metric.type="run.googleapis.com/container/memory/utilizations" AND '
                    f'resource.type="cloud_run_revision" AND resource.labels.service_name="{service}"',
                    s.memory_ratio, f"{s.memory_window_minutes * 60}s", "ALIGN_PERCENTILE_99",
                    "COMPARISON_GT")})
        if db is not None:
            yield ("database", "Database down", {"condition_threshold": _threshold(
                pulumi.Output.from_input(db).apply(lambda d: (
                    'metric.type="cloudsql.googleapis.com/database/up" AND '
                    f'resource.type="cloudsql_database" AND resource.labels.database_id="{d}"')),
                1, "0s", "ALIGN_MIN", "COMPARISON_LT")})

    def _policy(self, name: str, slug: str, title: str, condition: dict) -> gcp.monitoring.AlertPolicy:
        return gcp.monitoring.AlertPolicy(
            f"{name}-{slug}", display_name=f"{name}: {title}", combiner="OR",
            conditions=[{"display_name": title, **condition}], severity="CRITICAL",
            notification_channels=[self.channel.name] if self.channel else [],
            alert_strategy={"auto_close": "1800s"}, opts=self._child)
