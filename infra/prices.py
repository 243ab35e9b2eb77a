"""The price table the offline review estimates with. Small on purpose, and dated.

PRICES_DATE: when these figures were compiled. Basis: Google Cloud public on-demand list prices in USD,
us-central1 (europe-west1 is the same or within ~10% for these SKUs), no committed-use or sustained-use
discounts, no free tiers except where noted. Sources (the public pricing pages):
  Cloud SQL       https://cloud.google.com/sql/pricing   (vCPU/RAM rates cross-checked with a May 2026 summary)
  Memorystore     https://cloud.google.com/memorystore/docs/redis/pricing
  Cloud Run       https://cloud.google.com/run/pricing   (request-based billing, tier 1 regions)
  Compute Engine  https://cloud.google.com/compute/vm-instance-pricing, /compute/disks-image-pricing,
                  /vpc/network-pricing (external IPv4 in use)
  Secret Manager  https://cloud.google.com/secret-manager/pricing
  Artifact Reg.   https://cloud.google.com/artifact-registry/pricing
  Monitoring      https://cloud.google.com/stackdriver/pricing (alerting conditions, uptime checks)
Update the figures and PRICES_DATE together; tests pin the estimate for known configs.
"""
from __future__ import annotations

PRICES_DATE = "2026-11-21"
BASIS = "GCP on-demand list prices, USD, us-central1, no discounts"
HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600

CLOUD_SQL = {
    "vcpu_hour": 0.0413,  # Enterprise edition, dedicated core
    "gb_ram_hour": 0.0070,
    "shared_core_hour": {"db-f1-micro": 0.0105, "db-g1-small": 0.0350},
    "ssd_gb_month": 0.17,
    "backup_gb_month": 0.08,  # automated backups + PITR logs, assumed ~ one disk's worth
    "ha_multiplier": 2,  # regional HA: a standby instance and its disk are billed too
}

# Memorystore for Redis, USD per GB-hour by tier and capacity band (upper bound of the band, GB).
MEMORYSTORE_GB_HOUR = {
    "BASIC": ((4, 0.049), (10, 0.027), (35, 0.023), (100, 0.019), (300, 0.016)),
    "STANDARD_HA": ((4, 0.064), (10, 0.054), (35, 0.046), (100, 0.038), (300, 0.032)),
}

CLOUD_RUN = {
    # A minimum instance that is idle is billed at the idle rates all month; traffic on top is not
    # estimated (it depends on load; the free tier covers 180,000 vCPU-seconds a month).
    "idle_vcpu_second": 0.0000025,
    "idle_gib_second": 0.0000025,
}

GCE_MACHINE_HOUR = {"e2-micro": 0.008376, "e2-small": 0.016751, "e2-medium": 0.033503,
                    "e2-standard-2": 0.067006, "e2-standard-4": 0.134012}
PD_BALANCED_GB_MONTH = 0.10
STATIC_IPV4_HOUR = 0.005

SECRET_VERSION_MONTH = 0.06  # per active secret version; access charges ($0.03/10k) not estimated
ARTIFACT_REGISTRY_GB_MONTH = 0.10
ARTIFACT_REGISTRY_ASSUMED_GB = 2.0  # a few kept images of a small Python app
ALERT_CONDITION_MONTH = 0.10
UPTIME_EXECUTION = 0.30 / 1000  # beyond 1M free executions a month per project
UPTIME_FREE_EXECUTIONS = 1_000_000
UPTIME_REGIONS = 6  # checker locations used when none are selected
