"""pymongo against a real MongoDB wire-protocol server: FerretDB v1.24.2 (SQLite backend).

Through the session pipeline, with contrib's pymongo instrumentation as otel_db loads
it: command shapes without values, fingerprints that tell ``find`` shapes apart, error
facts (duplicate key, connection), connect spans when no server can be selected.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, ServerSelectionTimeoutError

from otel_db import attributes as attr
from tests.conftest import SpanCapture, free_port
from tests.support.nosql_servers import ferretdb

pytestmark = pytest.mark.ferretdb

CANARY_EMAIL = "alice.canary@example.com"
CANARY_NUMBER = 918273


@pytest.fixture
def collection(ferretdb_uri: str) -> Iterator[pymongo.collection.Collection]:
    client: pymongo.MongoClient = pymongo.MongoClient(ferretdb_uri, serverSelectionTimeoutMS=10_000)
    coll = client["otel_db_tests"][f"orders_{uuid.uuid4().hex[:8]}"]
    try:
        yield coll
    finally:
        coll.drop()
        client.close()


def _command_spans(spans: SpanCapture, command: str) -> list:
    return [
        s
        for s in spans.db_spans()
        if s.attributes.get(attr.DB_OPERATION_NAME) == command
        and s.attributes.get(attr.DB_SYSTEM_NAME) == "mongodb"
    ]


def test_find_shapes_are_value_free_and_fingerprinted_apart(
    collection: pymongo.collection.Collection, spans: SpanCapture
) -> None:
    collection.insert_many(
        [
            {"status": "paid", "email": CANARY_EMAIL, "user_id": CANARY_NUMBER},
            {"status": "open", "email": "bob@example.org", "user_id": 7},
        ]
    )
    spans.clear()
    since = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)

    assert len(list(collection.find({"status": "paid"}))) == 1
    assert len(list(collection.find({"status": "open"}))) == 1
    list(collection.find({"user_id": CANARY_NUMBER, "created": {"$gt": since}}))
    list(collection.find({"email": {"$in": [CANARY_EMAIL, "x@example.org"]}}).sort("user_id", -1))

    finds = _command_spans(spans, "find")
    assert len(finds) == 4
    name = collection.name
    texts = [s.attributes[attr.DB_QUERY_TEXT] for s in finds]
    assert texts == [
        f'find {name} {{"filter": {{"status": ?}}}}',
        f'find {name} {{"filter": {{"status": ?}}}}',
        f'find {name} {{"filter": {{"user_id": ?, "created": {{"$gt": ?}}}}}}',
        f'find {name} {{"filter": {{"email": {{"$in": ?}}}}, "sort": {{"user_id": ?}}}}',
    ]
    fingerprints = [s.attributes[attr.QUERY_FINGERPRINT] for s in finds]
    assert fingerprints[0] == fingerprints[1]
    assert len(set(fingerprints)) == 3
    for span in finds:
        assert span.name == f"find {name}"
        assert span.attributes[attr.DB_QUERY_SUMMARY] == f"find {name}"
        assert span.attributes[attr.DB_COLLECTION_NAME] == name
        assert span.attributes[attr.DB_NAMESPACE] == "otel_db_tests"
        assert span.attributes[attr.SERVER_ADDRESS] == "127.0.0.1"
        assert isinstance(span.attributes[attr.SERVER_PORT], int)
    assert finds[0].attributes[attr.DB_RESPONSE_RETURNED_ROWS] == 1


def test_writes_have_shapes_and_batch_sizes(
    collection: pymongo.collection.Collection, spans: SpanCapture
) -> None:
    collection.insert_many([{"n": i, "email": CANARY_EMAIL} for i in range(3)])
    collection.update_one({"n": 1}, {"$set": {"email": CANARY_EMAIL}})
    collection.delete_many({"email": CANARY_EMAIL})

    (insert,) = _command_spans(spans, "insert")
    assert insert.attributes[attr.DB_QUERY_TEXT] == f'insert {collection.name} {{"documents": ?}}'
    assert insert.attributes[attr.DB_OPERATION_BATCH_SIZE] == 3
    (update,) = _command_spans(spans, "update")
    assert update.attributes[attr.DB_QUERY_TEXT].startswith(
        f'update {collection.name} {{"updates": [{{"q": {{"n": ?}}, "u": {{"$set": {{"email": ?}}}}'
    )
    (delete,) = _command_spans(spans, "delete")
    assert '"q": {"email": ?}' in delete.attributes[attr.DB_QUERY_TEXT]


def test_duplicate_key_is_a_constraint_violation(
    collection: pymongo.collection.Collection, spans: SpanCapture
) -> None:
    collection.create_index("email", unique=True)
    collection.insert_one({"email": CANARY_EMAIL})
    spans.clear()

    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"email": CANARY_EMAIL})

    (insert,) = _command_spans(spans, "insert")
    assert insert.status.status_code.name == "ERROR"
    assert insert.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert insert.attributes[attr.DB_RESPONSE_STATUS_CODE] == "11000"
    assert insert.attributes[attr.ERROR_RETRYABLE] is False
    assert insert.attributes[attr.ERROR_TYPE] == "DuplicateKey"


def test_unknown_command_is_a_failed_span_with_the_server_code(
    ferretdb_uri: str, spans: SpanCapture
) -> None:
    client: pymongo.MongoClient = pymongo.MongoClient(ferretdb_uri, serverSelectionTimeoutMS=10_000)
    try:
        with pytest.raises(pymongo.errors.OperationFailure) as raised:
            client["otel_db_tests"].command({"otelDbNoSuchCommand": 1})
    finally:
        client.close()
    (span,) = _command_spans(spans, "otelDbNoSuchCommand")
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == str(raised.value.code)
    assert span.attributes[attr.ERROR_CATEGORY] == "syntax"  # CommandNotFound (59)


def test_no_server_to_select_is_a_connect_span(spans: SpanCapture) -> None:
    port = free_port()  # nothing listens there
    client: pymongo.MongoClient = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=300, connect=False
    )
    try:
        with pytest.raises(ServerSelectionTimeoutError):
            client["shop"]["orders"].find_one({"email": CANARY_EMAIL})
    finally:
        client.close()
    connects = [s for s in spans.finished() if s.name == "connect"]
    assert len(connects) == 1  # find_one iterates a cursor: still one span
    span = connects[0]
    assert span.attributes[attr.DB_SYSTEM_NAME] == "mongodb"
    assert span.attributes[attr.ERROR_CATEGORY] == "connection"
    assert span.attributes[attr.ERROR_RETRYABLE] is True
    assert span.attributes[attr.SERVER_ADDRESS] == "127.0.0.1"
    assert span.attributes[attr.SERVER_PORT] == port
    assert span.attributes[attr.DB_NAMESPACE] == "shop"
    assert span.attributes[attr.ERROR_TYPE] == "pymongo.errors.ServerSelectionTimeoutError"


def test_server_gone_mid_session_is_classified_connection(
    tmp_path: Path, spans: SpanCapture
) -> None:
    """The server dies under an open connection: pymongo raises AutoReconnect (from the
    pool's checkout, which finds the connection dead and cannot open another: a connect
    span; or from the command: its failed span) or, when its monitor saw it first, a
    server selection timeout (a connect span). Either way, one span says ``connection``."""
    with ferretdb(tmp_path) as uri:
        client: pymongo.MongoClient = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=500, retryReads=False, retryWrites=False
        )
        client["otel_db_tests"].command("ping")
    spans.clear()
    try:
        with pytest.raises(AutoReconnect) as raised:  # ServerSelectionTimeoutError is one
            client["otel_db_tests"]["gone"].find_one({"email": CANARY_EMAIL})
    finally:
        client.close()
    classified = [
        s
        for s in spans.finished()
        if s.attributes.get(attr.DB_SYSTEM_NAME) == "mongodb"
        and s.attributes.get(attr.ERROR_CATEGORY) == "connection"
    ]
    assert len(classified) == 1, [(s.name, dict(s.attributes)) for s in spans.finished()]
    (span,) = classified
    assert span.name in ("connect", "find gone"), span.name
    assert span.attributes[attr.ERROR_TYPE] in (
        "pymongo.errors.AutoReconnect",
        "pymongo.errors.ServerSelectionTimeoutError",
        "AutoReconnect",
    ), (span.attributes, raised.value)


def test_under_the_launcher(ferretdb_uri: str, moto_endpoint: str, tmp_path: Path) -> None:
    """The user's path: ``opentelemetry-instrument`` loads otel_db's pymongo and botocore
    instrumentors from contrib's entry points; no value reaches the console exporter."""
    from tests.integration.launcher import run_inline
    from tests.support.console_output import console_spans

    app = f"""
    import boto3, pymongo
    client = pymongo.MongoClient({ferretdb_uri!r})
    client.otel_db_tests.launcher.find_one({{"email": {CANARY_EMAIL!r}}})
    client.close()
    db = boto3.client("dynamodb", endpoint_url={moto_endpoint!r}, region_name="us-east-1")
    try:
        db.get_item(TableName="otel_db_launcher_missing", Key={{"pk": {{"S": {CANARY_EMAIL!r}}}}})
    except db.exceptions.ResourceNotFoundException:
        pass
    print("DONE")
    """
    result = run_inline(
        tmp_path,
        app,
        env={
            "OTEL_TRACES_EXPORTER": "console",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "DONE" in result.stdout
    assert CANARY_EMAIL not in result.stdout
    by_operation = {
        s["attributes"].get(attr.DB_OPERATION_NAME): s["attributes"]
        for s in console_spans(result.stdout)
        if s["attributes"].get(attr.DB_SYSTEM_NAME) in ("mongodb", "aws.dynamodb")
    }
    find = by_operation["find"]
    assert find[attr.DB_QUERY_TEXT] == 'find launcher {"filter": {"email": ?}}'
    get = by_operation["GetItem"]
    assert get[attr.DB_QUERY_TEXT] == "GetItem otel_db_launcher_missing"
    assert get[attr.ERROR_CATEGORY] == "syntax"
    assert get[attr.DB_RESPONSE_STATUS_CODE] == "ResourceNotFoundException"
