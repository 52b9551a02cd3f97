"""MongoDB and DynamoDB: command shapes hide every value; errors are classified.

The servers' side is in tests/integration/test_pymongo_ferretdb.py and
test_dynamodb_moto.py; here, what no test server produces (throttling, write
conflicts, item collection metrics) and the shapes' guarantees over many inputs.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from otel_db.instrumentation import botocore as botocore_instrumentation
from otel_db.instrumentation.selection import instrumentor_for
from otel_db.nosql import dynamodb_shape, mongo_shape
from otel_db.nosql.errors import mongo_error_message, mongo_failure_facts
from otel_db.sql.errors import classify_exception, classify_exception_event

CANARY = "alice.canary@example.com"
CANARY_NUMBER = 918273

_keys = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
_values = st.one_of(
    st.just(CANARY),
    st.just(CANARY_NUMBER),
    st.text(max_size=12),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
_documents = st.recursive(
    _values,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4)
    ),
    max_leaves=30,
)


@given(filter_=st.dictionaries(_keys, _documents, max_size=5), sort=_documents)
def test_mongo_shape_has_no_value_and_reads_back_as_itself(filter_: dict, sort: object) -> None:
    command = {"find": "orders", "filter": filter_, "sort": sort, "limit": CANARY_NUMBER}
    text = mongo_shape.command_text("find", "orders", command)
    scalars = [CANARY, str(CANARY_NUMBER)]
    for value in scalars:
        assert value not in text.replace(json.dumps(CANARY), "")  # (a key may be the canary)
    assert mongo_shape.safe_text(text, "orders") == (text, "find")


def test_mongo_shapes_tell_filters_apart_and_values_do_not() -> None:
    def fingerprint(filter_: dict) -> str:
        text = mongo_shape.command_text("find", "o", {"find": "o", "filter": filter_})
        return mongo_shape.statement_shape(text, "o").fingerprint

    assert fingerprint({"status": "paid"}) == fingerprint({"status": "open"})
    assert fingerprint({"status": "paid"}) != fingerprint({"user_id": 1, "created": {"$gt": 2}})
    assert fingerprint({"id": {"$in": [1, 2]}}) == fingerprint({"id": {"$in": [1, 2, 3, 4]}})


@pytest.mark.parametrize(
    "text",
    [
        "find {'status': 'alice.canary@example.com'}",  # contrib's capture_statement
        'find orders {"filter": {"status": "alice.canary@example.com"}}',
        'find orders {"filter": {"status": 918273}}',
        'distinct orders {"key": "status", "query": {"a": "alice.canary@example.com"}}',
    ],
)
def test_a_mongo_text_with_values_is_cut_to_its_command(text: str) -> None:
    safe, name = mongo_shape.safe_text(text, "orders")
    assert name in ("find", "distinct")
    assert CANARY not in safe and "918273" not in safe


def test_dynamodb_shape_keeps_expressions_and_never_values() -> None:
    params = {
        "TableName": "orders",
        "Key": {"pk": {"S": CANARY}},
        "KeyConditionExpression": "#pk = :pk",
        "FilterExpression": "contains(#tags, :t)",
        "ExpressionAttributeValues": {":pk": {"S": CANARY}, ":t": {"S": CANARY}},
        "ScanFilter": {"email": {"ComparisonOperator": "EQ", "AttributeValueList": [CANARY]}},
    }
    text = dynamodb_shape.call_text("Query", params)
    assert text == (
        "Query orders KeyConditionExpression: #pk = :pk; FilterExpression: contains(#tags, :t);"
        " ScanFilter: email EQ"
    )
    quoted = dynamodb_shape.call_text(
        "Scan", {"TableName": "t", "FilterExpression": f"a = '{CANARY}'"}
    )
    assert quoted == "Scan t FilterExpression: ?"
    assert dynamodb_shape.safe_text(f"Scan t FilterExpression: a = '{CANARY}'") == ("Scan", "Scan")


# --- errors -------------------------------------------------------------------------


def _client_error(code: str, operation: str = "PutItem", message: str = "m") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("code", "category", "retryable"),
    [
        ("ProvisionedThroughputExceededException", "other", True),
        ("ThrottlingException", "other", True),
        ("RequestLimitExceeded", "other", True),
        ("TransactionConflictException", "serialization_failure", True),
        ("ConditionalCheckFailedException", "constraint_violation", False),
        ("ResourceNotFoundException", "syntax", False),
        ("UnrecognizedClientException", "authentication", False),
    ],
)
def test_dynamodb_errors(code: str, category: str, retryable: bool) -> None:
    error = _client_error(code)
    for facts in (
        classify_exception(error),
        classify_exception_event(f"botocore.errorfactory.{code}", str(error)),
    ):
        assert facts is not None
        assert (facts.status_code, facts.category, facts.retryable) == (code, category, retryable)


def test_dynamodb_cancelled_transaction_by_reason() -> None:
    conflict = _client_error(
        "TransactionCanceledException",
        "TransactWriteItems",
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[None, TransactionConflict]",
    )
    facts = classify_exception(conflict)
    assert (facts.category, facts.retryable) == ("serialization_failure", True)


def test_botocore_connection_errors() -> None:
    error = EndpointConnectionError(endpoint_url="http://127.0.0.1:1/")
    assert classify_exception(error).category == "connection"
    facts = classify_exception_event("botocore.exceptions.EndpointConnectionError", str(error))
    assert facts is not None and facts.category == "connection"


def test_pymongo_errors() -> None:
    duplicate = DuplicateKeyError("E11000 duplicate key error", 11000, {"code": 11000})
    assert classify_exception(duplicate).category == "constraint_violation"
    assert classify_exception(duplicate).status_code == "11000"
    bulk = BulkWriteError({"writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000"}]})
    assert classify_exception(bulk).category == "constraint_violation"
    conflict = OperationFailure("WriteConflict", 112, {"code": 112, "codeName": "WriteConflict"})
    assert (classify_exception(conflict).category, classify_exception(conflict).retryable) == (
        "serialization_failure",
        True,
    )
    for error in (AutoReconnect("connection closed"), ServerSelectionTimeoutError("no server")):
        assert classify_exception(error).category == "connection"
    transient = {
        "code": 251,
        "codeName": "NoSuchTransaction",
        "errorLabels": ["TransientTransactionError"],
    }
    assert mongo_failure_facts(transient).retryable is True
    assert mongo_failure_facts({"errtype": "AutoReconnect", "errmsg": "x"}).category == "connection"
    assert mongo_failure_facts({"code": 50, "codeName": "MaxTimeMSExpired"}).category == (
        "query_canceled"
    )


def test_mongo_error_message_drops_quoted_values() -> None:
    message = (
        "E11000 duplicate key error collection: shop.users index: email_1 dup key: "
        f'{{ email: "{CANARY}", n: {CANARY_NUMBER} }}'
    )
    assert mongo_error_message(message) == (
        "E11000 duplicate key error collection: shop.users index: email_1"
    )
    assert mongo_error_message(f"cannot compare {CANARY_NUMBER} here") == "cannot compare ? here"


# --- hooks and selection -------------------------------------------------------------


def test_item_collection_metrics_lose_their_key_values() -> None:
    span = TracerProvider().get_tracer("t").start_span("DynamoDB.PutItem")
    span.set_attribute(botocore_instrumentation._ITEM_COLLECTION_METRICS, "{}")
    result = {
        "ItemCollectionMetrics": {
            "ItemCollectionKey": {"pk": {"S": CANARY}},
            "SizeEstimateRangeGB": [0.0, 1.0],
        }
    }
    botocore_instrumentation._response(span, "dynamodb", "PutItem", result)
    span.end()
    exported = span.attributes[botocore_instrumentation._ITEM_COLLECTION_METRICS]
    assert json.loads(exported) == {
        "ItemCollectionKey": {"pk": "?"},
        "SizeEstimateRangeGB": [0.0, 1.0],
    }


def test_the_distro_loads_otel_dbs_subclasses() -> None:
    from otel_db.instrumentation.botocore import BotocoreStatementInstrumentor
    from otel_db.instrumentation.pymongo import PymongoStatementInstrumentor

    assert instrumentor_for("pymongo", lambda: None, ()) is PymongoStatementInstrumentor
    assert instrumentor_for("botocore", lambda: None, ()) is BotocoreStatementInstrumentor
