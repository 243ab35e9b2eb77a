"""Cost estimate: known settings give known figures; the shipped dev stack stays under its budget."""
from __future__ import annotations

import re

import pytest

from infra import cost, prices
from infra.mocks import Registered
from infra.policies import DEV_BUDGET
from tests.infra.conftest import run_stack, shipped, variant


def priced(typ: str, state: dict) -> float:
    return cost.line_for(Registered("urn", typ, "r", "", True, state)).monthly


ESTIMATES = [
    # (resource type, declared state, USD/month worked out by hand from infra/prices.py)
    ("gcp:sql/databaseInstance:DatabaseInstance",  # 0.0105*730 + 10*0.17 + 10*0.08
     {"settings": {"tier": "db-f1-micro", "diskSize": 10, "availabilityType": "ZONAL",
                   "backupConfiguration": {"enabled": True}}}, 10.17),
    ("gcp:sql/databaseInstance:DatabaseInstance",  # 2*(2*0.0413*730 + 7.5*0.007*730) + 2*50*0.17 + 50*0.08
     {"settings": {"tier": "db-custom-2-7680", "diskSize": 50, "availabilityType": "REGIONAL",
                   "backupConfiguration": {"enabled": True}}}, 218.25),
    ("gcp:redis/instance:Instance", {"tier": "BASIC", "memorySizeGb": 1}, 35.77),  # 1*0.049*730
    ("gcp:redis/instance:Instance", {"tier": "STANDARD_HA", "memorySizeGb": 5}, 197.10),  # 5*0.054*730
    ("gcp:cloudrunv2/service:Service",  # 1*(2*0.0000025 + 1*0.0000025)*730*3600
     {"template": {"scaling": {"minInstanceCount": 1},
                   "containers": [{"resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}]}}, 19.71),
    ("gcp:cloudrunv2/service:Service",
     {"template": {"scaling": {"minInstanceCount": 0},
                   "containers": [{"resources": {"limits": {"cpu": "1", "memory": "512Mi"}}}]}}, 0.0),
    ("gcp:compute/instance:Instance",  # 0.016751*730 + 20*0.10
     {"machineType": "e2-small", "bootDisk": {"initializeParams": {"size": 20}}}, 14.23),
    ("gcp:compute/address:Address", {}, 3.65),
    ("gcp:monitoring/alertPolicy:AlertPolicy", {"conditions": [{}, {}]}, 0.20),
    ("gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig", {"period": "60s"}, 0.0),
]


@pytest.mark.parametrize("typ, state, expected", ESTIMATES)
def test_known_settings_give_known_figures(typ, state, expected):
    assert priced(typ, state) == pytest.approx(expected, abs=0.005)


@pytest.mark.parametrize("stack, total", [("dev", 46.78), ("prod", 435.96), ("local", 0.0)])
def test_shipped_stack_totals(stack, total):
    assert cost.estimate(shipped(stack)).total == pytest.approx(total, abs=0.005)


def test_shipped_dev_stack_is_under_budget():
    assert cost.estimate(shipped("dev")).total < DEV_BUDGET == 500


def test_cost_follows_config():
    bigger = run_stack(variant("dev", redis={"memory_gb": 5}))
    assert cost.estimate(bigger).total - cost.estimate(shipped("dev")).total == pytest.approx(
        5 * 0.027 * 730 - 35.77, abs=0.01)


def test_price_table_is_dated_and_sourced():
    assert re.match(r"^\d{4}-\d{2}-\d{2}$", prices.PRICES_DATE)
    assert "cloud.google.com/sql/pricing" in prices.__doc__ and "us-central1" in prices.BASIS
