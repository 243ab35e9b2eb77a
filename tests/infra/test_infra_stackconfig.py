"""Under the Pulumi CLI the program reads its config from the engine; same model, same messages."""
from __future__ import annotations

import json

import pytest
from pulumi.runtime import config as pulumi_config

from infra.stackconfig import stack_from_pulumi_config
from shipshape.stackfile import ConfigError, load_stack
from tests.infra.conftest import stack_document


def as_cli_config(document: dict) -> dict[str, str]:
    """What `pulumi up` hands the program: objects JSON-encoded, strings as they are."""
    return {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in document["config"].items()}


@pytest.fixture(autouse=True)
def clean_config():
    yield
    pulumi_config.set_all_config({})


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_cli_config_gives_the_same_stack_as_the_file(stack):
    pulumi_config.set_all_config(as_cli_config(stack_document(stack)))
    from_cli = stack_from_pulumi_config(stack)
    assert from_cli.model_dump(exclude={"source"}) == load_stack(stack).model_dump(exclude={"source"})


def test_a_value_set_with_the_cli_is_honoured():
    config = as_cli_config(stack_document("dev"))
    config["shipshape:gcp"] = json.dumps({**json.loads(config["shipshape:gcp"]), "max_instances": 7})
    pulumi_config.set_all_config(config)
    assert stack_from_pulumi_config("dev").gcp.max_instances == 7


def test_bad_cli_value_names_stack_file_and_key():
    config = as_cli_config(stack_document("dev", gcp={"region": "moon-base"}))
    pulumi_config.set_all_config(config)
    with pytest.raises(ConfigError, match=r"Pulumi\.dev\.yaml \(pulumi config\): shipshape:gcp\.region"):
        stack_from_pulumi_config("dev")
