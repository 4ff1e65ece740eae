"""The AsyncAPI document reads as the hub's own, and the AsyncAPI project's parser accepts it.

The parser is the npm package @asyncapi/parser, installed once into a cache folder outside the
repository (~/.cache/hub-asyncapi/parser-<version>, or $XDG_CACHE_HOME) and reused by every
later run; the test skips only when node or npm is missing, and fails when the install fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from consumers.spec import PRODUCTION_BOOTSTRAP, SCRAM, asyncapi
from hub.config import Settings
from hub.core.topics import QUEUES, STREAMS
from schemas.export import COMMITTED_DIR

ASYNCAPI_PARSER_VERSION = "3.6.6"  # @asyncapi/parser, pinned: a new release may add rules
ROOT = Path(__file__).parents[1]
DOC = asyncapi()
TEXT = json.dumps(DOC)
DEFAULTS = Settings.model_construct()

VALIDATE_JS = """
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';
const { document, diagnostics } = await new Parser().parse(readFileSync(process.argv[2], 'utf8'));
console.log(JSON.stringify({
  parsed: document !== undefined,
  diagnostics: diagnostics.map(d => ({ severity: d.severity, code: d.code, message: d.message, path: d.path })),
}));
"""


# --- no generator leftovers; servers, keys, examples ---------------------------------------------


def test_the_committed_document_is_this_one():
    assert json.loads((COMMITTED_DIR / "asyncapi.json").read_text(encoding="utf-8")) == DOC


@pytest.mark.parametrize("leftover", ["SubscribeMessage", ":Message", ":Publisher", "correlation", "Payload"])
def test_no_generator_leftovers(leftover: str):
    assert leftover not in TEXT


def test_every_topic_is_a_channel_with_one_operation():
    topics = [DEFAULTS.topic(s.topic_setting) for s in STREAMS] + [DEFAULTS.topic(q.topic_setting) for q in QUEUES]
    topics.append(DEFAULTS.dead_letter_topic)
    assert sorted(DOC["channels"]) == sorted(topics)
    by_channel = {op["channel"]["$ref"].removeprefix("#/channels/"): op["action"] for op in DOC["operations"].values()}
    assert by_channel == {t: "receive" if i < len(STREAMS) else "send" for i, t in enumerate(topics)}


def _message(ref: dict[str, str]) -> dict[str, Any]:
    return DOC["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]


def test_every_message_describes_its_key_as_a_kafka_binding_and_has_examples():
    for topic, channel in DOC["channels"].items():
        [ref] = channel["messages"].values()
        message = _message(ref)
        assert message["bindings"]["kafka"]["key"]["description"], topic
        assert message["bindings"]["kafka"]["bindingVersion"] == "0.5.0"
        assert len(message["examples"]) >= 2, topic
        assert message.get("summary") and message.get("title"), topic


def test_inbound_keys_are_the_fields_the_contract_keys_by():
    for stream in STREAMS:
        message = DOC["components"]["messages"][stream.model.__name__]
        key = message["bindings"]["kafka"]["key"]
        assert f"`{stream.model.topic_key}`" in key["description"]
        assert key["maxLength"] == 64 and key["type"] == "string"
        for example in message["examples"]:
            assert example["summary"] == f"Kafka key: {example['payload'][stream.model.topic_key]}"


def test_servers_are_as_deployed_with_their_security():
    configmap = yaml.safe_load((ROOT / "deploy" / "k8s" / "configmap.yaml").read_text())["data"]
    production = DOC["servers"]["production"]
    assert production["host"] in configmap["HUB_KAFKA_BOOTSTRAP"].split(",")
    assert production["host"] == PRODUCTION_BOOTSTRAP
    assert configmap["HUB_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and production["protocol"] == "kafka-secure"
    assert configmap["HUB_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512" and SCRAM == "scramSha512"
    assert production["security"] == [{"$ref": f"#/components/securitySchemes/{SCRAM}"}]
    assert DOC["components"]["securitySchemes"][SCRAM]["type"] == "scramSha512"
    local = DOC["servers"]["local"]
    assert local["protocol"] == "kafka" and local["host"].endswith(
        f":{Settings.model_fields['embedded_kafka_port'].default}"
    )


def test_dead_letters_carry_the_hub_errors_headers():
    message = DOC["components"]["messages"]["DeadLetter"]
    headers = DOC["components"]["schemas"]["DeadLetterHeaders"]
    assert message["headers"] == {"$ref": "#/components/schemas/DeadLetterHeaders"}
    assert set(headers["required"]) == {
        f"hub.errors.{n}" for n in ("reason", "class", "message", "topic", "partition", "offset", "timestamp")
    }


def _examples() -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    for name, message in DOC["components"]["messages"].items():
        for example in message["examples"]:
            for part in ("payload", "headers"):
                if part in example:
                    yield name, example["name"], example[part], message[part]


@pytest.mark.parametrize(("message", "name", "value", "schema"), list(_examples()), ids=lambda v: str(v)[:40])
def test_every_example_is_valid_for_its_message(message: str, name: str, value: Any, schema: dict[str, Any]):
    # AsyncAPI 3.0 schemas are JSON Schema draft 7 plus a few keywords; the parser does not check
    # examples for 3.0 documents, so this test does, resolving references within the document.
    validator = Draft7Validator({**DOC, **schema}, format_checker=Draft7Validator.FORMAT_CHECKER)
    errors = [e.message for e in validator.iter_errors(value)]
    assert not errors, f"{message} example {name}: {errors}"


# --- the AsyncAPI project's parser ---------------------------------------------------------------


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hub-asyncapi" / f"parser-{ASYNCAPI_PARSER_VERSION}"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One installer at a time (test workers share the cache)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _installed_version(directory: Path) -> str | None:
    manifest = directory / "node_modules" / "@asyncapi" / "parser" / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


@pytest.fixture(scope="session")
def asyncapi_parser() -> Path:
    """The validating script, with @asyncapi/parser installed beside it (once; later runs reuse it)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the AsyncAPI parser")
    directory = _cache_dir()
    with _locked(directory):
        if _installed_version(directory) != ASYNCAPI_PARSER_VERSION:
            (directory / "package.json").write_text(
                json.dumps({"private": True, "type": "module", "dependencies": {}}), encoding="utf-8"
            )
            result = subprocess.run(
                [
                    npm,
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--save-exact",
                    f"@asyncapi/parser@{ASYNCAPI_PARSER_VERSION}",
                ],
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if result.returncode != 0:
                pytest.fail(
                    f"npm could not install @asyncapi/parser {ASYNCAPI_PARSER_VERSION}:\n{result.stderr[-3000:]}"
                )
        assert _installed_version(directory) == ASYNCAPI_PARSER_VERSION
        script = directory / "validate.mjs"
        if not script.exists() or script.read_text(encoding="utf-8") != VALIDATE_JS:
            script.write_text(VALIDATE_JS, encoding="utf-8")
    return script


def parse(script: Path, document: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["node", str(script), str(document)], capture_output=True, text=True, timeout=120, cwd=script.parent
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


ERROR, WARNING = 0, 1  # Spectral's severities; 2 (information) and 3 (hint) are advice


def test_the_asyncapi_parser_accepts_the_document_without_errors_or_warnings(asyncapi_parser: Path):
    report = parse(asyncapi_parser, COMMITTED_DIR / "asyncapi.json")
    serious = [d for d in report["diagnostics"] if d["severity"] in (ERROR, WARNING)]
    assert report["parsed"] and not serious, json.dumps(serious, indent=2)


def test_the_parser_would_catch_a_broken_document(asyncapi_parser: Path, tmp_path: Path):
    broken = json.loads(json.dumps(DOC))
    del broken["servers"]["production"]["host"]
    broken["operations"]["sendDeadLetters"]["channel"] = {"$ref": "#/channels/nowhere"}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    report = parse(asyncapi_parser, path)
    codes = {d["code"] for d in report["diagnostics"] if d["severity"] == ERROR}
    assert not report["parsed"] and {"invalid-ref", "asyncapi-document-resolved"} <= codes, codes
