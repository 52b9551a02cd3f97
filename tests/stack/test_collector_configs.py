"""The collector configs are consistent and their sampling/redaction rules name the
attributes otel_db really emits. Static checks; the real Collector reads the same files
in test_real_binaries.py (validate, components, start-up)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from opentelemetry.semconv.attributes import exception_attributes

from otel_db import attributes as attr

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "collector-config"
COLLECTOR_CONFIGS = ["collector.yaml", "agent.yaml", "gateway.yaml"]
KINDS = ["receivers", "processors", "exporters", "connectors", "extensions"]
OTEL_DB_NAMES = {v for k, v in vars(attr).items() if k.isupper() and isinstance(v, str)}
# names otel_db's spans carry that the semantic conventions own (not in attributes.py)
SEMCONV_NAMES = {exception_attributes.EXCEPTION_MESSAGE}


def load(name: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / name).read_text())


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


@pytest.fixture(params=COLLECTOR_CONFIGS)
def config(request) -> dict:
    return load(request.param)


def used_ids(config: dict) -> dict[str, set[str]]:
    used = {kind: set() for kind in KINDS}
    used["extensions"] = set(config["service"].get("extensions", []))
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(kind, []):
                # a connector is used as an exporter of one pipeline and a receiver of another
                if component_id in config.get("connectors", {}):
                    used["connectors"].add(component_id)
                else:
                    used[kind].add(component_id)
    return used


def test_every_used_component_is_declared_and_every_declared_one_used(config):
    used = used_ids(config)
    for kind in KINDS:
        declared = set(config.get(kind) or {})
        assert used[kind] <= declared, f"{kind} used but not declared: {used[kind] - declared}"
        assert declared <= used[kind], f"{kind} declared but unused: {declared - used[kind]}"


def test_connectors_have_both_ends(config):
    pipelines = config["service"]["pipelines"].values()
    for connector in config.get("connectors", {}):
        assert any(connector in p.get("exporters", []) for p in pipelines), connector
        assert any(connector in p.get("receivers", []) for p in pipelines), connector


def test_memory_limiter_first_in_every_pipeline(config):
    for name, pipeline in config["service"]["pipelines"].items():
        processors = pipeline.get("processors", [])
        assert processors and processors[0] == "memory_limiter", name


def reaches(config: dict, start: str, exporter_type: str) -> bool:
    """Does pipeline `start` reach an exporter of `exporter_type`, following connectors?"""
    pipelines = config["service"]["pipelines"]
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for exporter in pipelines[name].get("exporters", []):
            if component_type(exporter) == exporter_type and exporter not in config.get(
                "connectors", {}
            ):
                return True
            todo += [p for p, spec in pipelines.items() if exporter in spec.get("receivers", [])]
    return False


@pytest.mark.parametrize("name", ["collector.yaml", "gateway.yaml"])
def test_traces_reach_jaeger_through_tail_sampling(name):
    config = load(name)
    assert reaches(config, "traces", "otlp_grpc")
    jaeger = config["exporters"]["otlp_grpc/jaeger"]
    assert jaeger["retry_on_failure"]["enabled"] is True
    storage = jaeger["sending_queue"]["storage"]
    assert component_type(storage) == "file_storage" and storage in config["extensions"]
    sampled = [
        p
        for p in config["service"]["pipelines"].values()
        if "otlp_grpc/jaeger" in p.get("exporters", [])
    ]
    assert all("tail_sampling" in p["processors"] for p in sampled)
    assert all(
        p["processors"].index("batch") > p["processors"].index("tail_sampling") for p in sampled
    )


def test_agent_routes_by_trace_id_to_gateways_found_by_dns():
    agent = load("agent.yaml")
    assert reaches(agent, "traces", "load_balancing")
    lb = agent["exporters"]["load_balancing"]
    assert lb["routing_key"] == "traceID"
    assert "dns" in lb["resolver"]


@pytest.mark.parametrize("name", ["collector.yaml", "gateway.yaml"])
def test_span_metrics_dimensions(name):
    dims = [d["name"] for d in load(name)["connectors"]["span_metrics"]["dimensions"]]
    assert dims == [attr.DB_SYSTEM_NAME, attr.DB_OPERATION_NAME, attr.DB_QUERY_SUMMARY]


# ---- sampling rules name real otel_db attributes ---------------------------------------


def tail_policies(name: str) -> dict[str, dict]:
    return {p["name"]: p for p in load(name)["processors"]["tail_sampling"]["policies"]}


@pytest.mark.parametrize("name", ["collector.yaml", "gateway.yaml"])
def test_tail_sampling_keeps_what_otel_db_flags(name):
    policies = tail_policies(name)
    assert policies["errors"]["status_code"]["status_codes"] == ["ERROR"]
    booleans = {
        p["boolean_attribute"]["key"]: p["boolean_attribute"]["value"]
        for p in policies.values()
        if p["type"] == "boolean_attribute"
    }
    assert booleans == {attr.QUERY_SLOW: True, attr.N_PLUS_ONE_DETECTED: True}
    strings = {
        p["string_attribute"]["key"]: p["string_attribute"]["values"]
        for p in policies.values()
        if p["type"] == "string_attribute"
    }
    assert strings == {attr.TRANSACTION_OUTCOME: [attr.OUTCOME_ROLLED_BACK]}
    # kept by naming rolled_back, never by "not committed": a read-only unit of work ends
    # `released` and is healthy traffic, thinned like any other
    for policy in policies.values():
        assert not policy.get(policy["type"], {}).get("invert_match"), policy["name"]
        assert policy["type"] in {
            "status_code",
            "boolean_attribute",
            "string_attribute",
            "probabilistic",
        }, policy["name"]
    rate = policies["baseline"]["probabilistic"]["sampling_percentage"]
    assert re.fullmatch(r"\$\{env:[A-Z_]+:-\d+(\.\d+)?\}", str(rate)), rate


def keys_in_rules(name: str) -> set[str]:
    processors = load(name)["processors"]
    keys = {
        p[p["type"]]["key"]
        for p in processors.get("tail_sampling", {}).get("policies", [])
        if "key" in p.get(p["type"], {})
    }
    for group in processors["transform/redact"]["trace_statements"]:
        for statement in group["statements"]:
            keys |= set(re.findall(r'attributes\["([^"]+)"\]', statement))
    return keys


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_rule_attribute_names_are_the_ones_otel_db_emits(name):
    keys = keys_in_rules(name)
    assert keys, "no attribute names found in the rules"
    unknown = keys - OTEL_DB_NAMES - SEMCONV_NAMES
    assert not unknown, f"not otel_db names (src/otel_db/attributes.py): {unknown}"


# ---- redaction works on real statements -------------------------------------------------


def redaction_groups(name: str) -> list[dict]:
    return load(name)["processors"]["transform/redact"]["trace_statements"]


def test_redaction_identical_in_every_config():
    first = redaction_groups(COLLECTOR_CONFIGS[0])
    for name in COLLECTOR_CONFIGS[1:]:
        assert redaction_groups(name) == first, name


STATEMENT = re.compile(
    r'^replace_pattern\(attributes\["(?P<key>[^"]+)"\], "(?P<regex>(?:\\.|[^"\\])*)", '
    r'"(?P<replacement>(?:\\.|[^"\\])*)"\)(?: where .*)?$'
)


def ottl_string(literal: str) -> str:
    """Undo collector-config `$$` escaping and OTTL string escapes (\\\\ and \\")."""
    return re.sub(r"\\(.)", r"\1", literal.replace("$$", "$"))


def redactors(context: str) -> dict[str, list]:
    """attribute -> [(compiled regex, python replacement)] from collector.yaml."""
    rules: dict[str, list] = {}
    for group in redaction_groups("collector.yaml"):
        if group["context"] != context:
            continue
        for statement in group["statements"]:
            match = STATEMENT.match(statement)
            assert match, f"unexpected statement shape: {statement}"
            regex = re.compile(ottl_string(match["regex"]))
            # Go's ${1} -> Python's \g<1>; RE2 and Python agree on these constructs
            replacement = re.sub(r"\$\{(\d+)\}", r"\\g<\1>", ottl_string(match["replacement"]))
            rules.setdefault(match["key"], []).append((regex, replacement))
    return rules


def redact(rules: list, value: str) -> str:
    for regex, replacement in rules:
        value = regex.sub(replacement, value)
    return value


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "SELECT * FROM users WHERE email = 'bob@example.com' AND id = 42",
            "SELECT * FROM users WHERE email = ? AND id = ?",
        ),
        ("INSERT INTO t1 (a, b) VALUES ('it''s', -3.5)", "INSERT INTO t1 (a, b) VALUES (?, ?)"),
        (
            "SELECT * FROM orders WHERE id = $1 LIMIT 10",
            "SELECT * FROM orders WHERE id = $1 LIMIT ?",
        ),
        ('SELECT "col2" FROM "table3"', 'SELECT "col2" FROM "table3"'),
    ],
)
def test_redaction_scrubs_sql_literals(query, expected):
    rules = redactors("span")
    assert set(rules) == {attr.DB_QUERY_TEXT, attr.LEGACY_DB_STATEMENT}
    for key in rules:
        assert redact(rules[key], query) == expected


def test_redaction_scrubs_exception_message_values():
    rules = redactors("spanevent")[exception_attributes.EXCEPTION_MESSAGE]
    message = (
        'duplicate key value violates unique constraint "users_email_key"\n'
        "DETAIL:  Key (email)=(bob@example.com) already exists. password='hunter2'"
    )
    scrubbed = redact(rules, message)
    assert "bob@example.com" not in scrubbed and "hunter2" not in scrubbed
    assert "Key (email)=(?)" in scrubbed and "password='?'" in scrubbed


# ---- every knob comes from the environment ----------------------------------------------


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_env_references_all_have_defaults(name):
    text = (CONFIG_DIR / name).read_text()
    references = re.findall(r"(?<!\$)\$\{([^}]*)\}", text)
    assert references
    for ref in references:
        if re.fullmatch(r"\d+", ref):
            continue  # ${1}: a regex capture group reference in OTTL (written $${1})
        assert re.fullmatch(r"env:[A-Z][A-Z0-9_]*:-[^}]+", ref), f"no default: ${{{ref}}}"
