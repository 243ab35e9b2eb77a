"""Estimated monthly cost of a declared stack, per resource and in total, from infra/prices.py.

Estimators read what the program declared (the engine's view, schema names), so the figure follows the
config that produced it. Resources with no standing charge (VPC, IAM, service accounts...) cost $0.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from infra import prices as p
from infra.mocks import ProgramRun, Registered


@dataclass(frozen=True)
class CostLine:
    resource: str
    type: str
    monthly: float
    basis: str


@dataclass(frozen=True)
class CostReport:
    lines: tuple[CostLine, ...]

    @property
    def total(self) -> float:
        return round(sum(line.monthly for line in self.lines), 2)


def _sql(s: dict) -> tuple[float, str]:
    settings = s.get("settings", {})
    tier, disk = settings.get("tier", ""), float(settings.get("diskSize", 10))
    ha = settings.get("availabilityType") == "REGIONAL"
    factor = p.CLOUD_SQL["ha_multiplier"] if ha else 1
    custom = re.match(r"^db-custom-(\d+)-(\d+)$", tier)
    if custom:
        vcpu, ram_gb = int(custom.group(1)), int(custom.group(2)) / 1024
        hourly = vcpu * p.CLOUD_SQL["vcpu_hour"] + ram_gb * p.CLOUD_SQL["gb_ram_hour"]
    else:
        hourly = p.CLOUD_SQL["shared_core_hour"][tier]
    compute = hourly * p.HOURS_PER_MONTH * factor
    storage = disk * p.CLOUD_SQL["ssd_gb_month"] * factor
    backups = disk * p.CLOUD_SQL["backup_gb_month"] if settings.get("backupConfiguration", {}).get("enabled") else 0.0
    basis = f"{tier}{' HA x2' if ha else ''}: compute ${compute:.2f} + {disk:g} GB SSD ${storage:.2f}"
    return compute + storage + backups, basis + (f" + backups ${backups:.2f}" if backups else "")


def _redis(s: dict) -> tuple[float, str]:
    tier, size = s.get("tier", "BASIC"), float(s.get("memorySizeGb", 1))
    rate = next(r for bound, r in p.MEMORYSTORE_GB_HOUR[tier] if size <= bound)
    return size * rate * p.HOURS_PER_MONTH, f"{tier} {size:g} GB x ${rate}/GB-h"


def _memory_gib(text: str) -> float:
    number, unit = re.match(r"^(\d+)(Mi|Gi)$", text).groups()
    return int(number) / (1024 if unit == "Mi" else 1)


def _cloud_run(s: dict) -> tuple[float, str]:
    template = s.get("template", {})
    minimum = int(template.get("scaling", {}).get("minInstanceCount", 0))
    limits = template.get("containers", [{}])[0].get("resources", {}).get("limits", {})
    cpu, gib = float(limits.get("cpu", 1)), _memory_gib(limits.get("memory", "512Mi"))
    idle = minimum * (cpu * p.CLOUD_RUN["idle_vcpu_second"] + gib * p.CLOUD_RUN["idle_gib_second"])
    return idle * p.SECONDS_PER_MONTH, f"{minimum} min instance(s) x {cpu:g} vCPU/{gib:g} GiB idle; traffic extra"


def _vm(s: dict) -> tuple[float, str]:
    machine = s.get("machineType", "e2-small")
    disk = float(s.get("bootDisk", {}).get("initializeParams", {}).get("size", 10))
    cost = p.GCE_MACHINE_HOUR[machine] * p.HOURS_PER_MONTH + disk * p.PD_BALANCED_GB_MONTH
    return cost, f"{machine} + {disk:g} GB pd-balanced"


def _uptime(s: dict) -> tuple[float, str]:
    period = int(str(s.get("period", "60s")).rstrip("s"))
    executions = p.UPTIME_REGIONS * p.SECONDS_PER_MONTH / period
    billable = max(0.0, executions - p.UPTIME_FREE_EXECUTIONS)
    return billable * p.UPTIME_EXECUTION, f"{executions:,.0f} checks/month (1M free)"


ESTIMATORS: dict[str, Callable[[dict], tuple[float, str]]] = {
    "gcp:sql/databaseInstance:DatabaseInstance": _sql,
    "gcp:redis/instance:Instance": _redis,
    "gcp:cloudrunv2/service:Service": _cloud_run,
    "gcp:compute/instance:Instance": _vm,
    "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": _uptime,
    "gcp:compute/address:Address": lambda s: (p.STATIC_IPV4_HOUR * p.HOURS_PER_MONTH, "static IPv4 in use"),
    "gcp:secretmanager/secretVersion:SecretVersion": lambda s: (p.SECRET_VERSION_MONTH, "1 active version"),
    "gcp:artifactregistry/repository:Repository": lambda s: (
        p.ARTIFACT_REGISTRY_GB_MONTH * p.ARTIFACT_REGISTRY_ASSUMED_GB,
        f"~{p.ARTIFACT_REGISTRY_ASSUMED_GB:g} GB of images"),
    "gcp:monitoring/alertPolicy:AlertPolicy": lambda s: (
        p.ALERT_CONDITION_MONTH * len(s.get("conditions", [])), f"{len(s.get('conditions', []))} condition(s)"),
}


def line_for(resource: Registered) -> CostLine | None:
    estimator = ESTIMATORS.get(resource.type)
    if estimator is None:
        return None
    monthly, basis = estimator(resource.state)
    return CostLine(resource.name, resource.type, round(monthly, 2), basis)


def estimate(run: ProgramRun) -> CostReport:
    """Monthly estimate for every priced resource the run declared."""
    return CostReport(tuple(line for r in run.resources if (line := line_for(r)) is not None))


def describe_prices() -> dict[str, Any]:
    return {"date": p.PRICES_DATE, "basis": p.BASIS}
