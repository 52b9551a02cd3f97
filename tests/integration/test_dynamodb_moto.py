"""DynamoDB through boto3 and PynamoDB against moto's stand-alone server (its HTTP API).

Through the session pipeline, with contrib's botocore instrumentation as otel_db loads
it: the conventions' attributes, value-free call shapes (expressions kept, keys, items
and expression values never read), error facts (conditional check failures, cancelled
transactions, a refused endpoint).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from otel_db import attributes as attr
from tests.conftest import SpanCapture, free_port

pytestmark = pytest.mark.moto

CANARY_EMAIL = "alice.canary@example.com"
CANARY_TOKEN = "s3cr3t-t0ken"


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def client(moto_endpoint: str) -> object:
    return boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def table(client: object) -> Iterator[str]:
    name = f"orders_{uuid.uuid4().hex[:8]}"
    client.create_table(  # type: ignore[attr-defined]
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        yield name
    finally:
        client.delete_table(TableName=name)  # type: ignore[attr-defined]


def _calls(spans: SpanCapture, operation: str) -> list:
    return [
        s
        for s in spans.db_spans()
        if s.attributes.get(attr.DB_OPERATION_NAME) == operation
        and s.attributes.get(attr.DB_SYSTEM_NAME) == "aws.dynamodb"
    ]


def test_calls_are_database_spans_with_value_free_shapes(
    client: object, table: str, spans: SpanCapture
) -> None:
    item = {"pk": {"S": CANARY_EMAIL}, "sk": {"S": "1"}, "token": {"S": CANARY_TOKEN}}
    client.put_item(TableName=table, Item=item)  # type: ignore[attr-defined]
    got = client.get_item(TableName=table, Key={"pk": {"S": CANARY_EMAIL}, "sk": {"S": "1"}})  # type: ignore[attr-defined]
    assert got["Item"]["token"]["S"] == CANARY_TOKEN
    for condition in ("#pk = :pk", "#pk = :pk AND begins_with(#sk, :sk)"):
        values = {":pk": {"S": CANARY_EMAIL}}
        if ":sk" in condition:
            values[":sk"] = {"S": CANARY_TOKEN}
        result = client.query(  # type: ignore[attr-defined]
            TableName=table,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#pk": "pk", **({"#sk": "sk"} if ":sk" in condition else {})},
            ExpressionAttributeValues=values,
        )
        assert result["Count"] == (1 if ":sk" not in condition else 0)
    client.query(  # type: ignore[attr-defined]
        TableName=table,
        KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": "pk"},
        ExpressionAttributeValues={":pk": {"S": "bob@example.org"}},
    )

    (put,) = _calls(spans, "PutItem")
    assert put.attributes[attr.DB_QUERY_TEXT] == f"PutItem {table}"
    assert put.attributes[attr.DB_COLLECTION_NAME] == table
    assert put.attributes[attr.DB_QUERY_SUMMARY] == f"PutItem {table}"
    assert put.name == f"PutItem {table}"
    assert put.attributes[attr.SERVER_ADDRESS] == "127.0.0.1"
    (get,) = _calls(spans, "GetItem")
    assert get.attributes[attr.DB_RESPONSE_RETURNED_ROWS] == 1
    queries = _calls(spans, "Query")
    assert [q.attributes[attr.DB_QUERY_TEXT] for q in queries] == [
        f"Query {table} KeyConditionExpression: #pk = :pk",
        f"Query {table} KeyConditionExpression: #pk = :pk AND begins_with(#sk, :sk)",
        f"Query {table} KeyConditionExpression: #pk = :pk",
    ]
    fingerprints = [q.attributes[attr.QUERY_FINGERPRINT] for q in queries]
    assert fingerprints[0] == fingerprints[2] != fingerprints[1]
    assert [q.attributes[attr.DB_RESPONSE_RETURNED_ROWS] for q in queries] == [1, 0, 0]


def test_conditional_check_failure_is_a_constraint_violation(
    client: object, table: str, spans: SpanCapture
) -> None:
    item = {"pk": {"S": CANARY_EMAIL}, "sk": {"S": "1"}}
    client.put_item(TableName=table, Item=item)  # type: ignore[attr-defined]
    spans.clear()
    with pytest.raises(ClientError) as raised:
        client.put_item(  # type: ignore[attr-defined]
            TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"

    (put,) = _calls(spans, "PutItem")
    assert put.status.status_code.name == "ERROR"
    assert put.attributes[attr.DB_QUERY_TEXT] == (
        f"PutItem {table} ConditionExpression: attribute_not_exists(pk)"
    )
    assert put.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert put.attributes[attr.DB_RESPONSE_STATUS_CODE] == "ConditionalCheckFailedException"
    assert put.attributes[attr.ERROR_RETRYABLE] is False


def test_cancelled_transaction_is_classified_by_its_reason(
    client: object, table: str, spans: SpanCapture
) -> None:
    item = {"pk": {"S": CANARY_EMAIL}, "sk": {"S": "1"}}
    client.put_item(TableName=table, Item=item)  # type: ignore[attr-defined]
    spans.clear()
    with pytest.raises(ClientError):
        client.transact_write_items(  # type: ignore[attr-defined]
            TransactItems=[
                {
                    "Put": {
                        "TableName": table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": {"TableName": table, "Item": {"pk": {"S": "b"}, "sk": {"S": "2"}}}},
            ]
        )
    (span,) = _calls(spans, "TransactWriteItems")
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == "TransactionCanceledException"
    assert span.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert span.attributes[attr.DB_OPERATION_BATCH_SIZE] == 2
    assert span.attributes[attr.DB_QUERY_TEXT] == (
        f"TransactWriteItems [Put {table} ConditionExpression: attribute_not_exists(pk)"
        f" | Put {table}]"
    )


def test_refused_endpoint_is_a_connection_error(spans: SpanCapture) -> None:
    port = free_port()  # nothing listens there
    refused = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2),
    )
    with pytest.raises(EndpointConnectionError):
        refused.get_item(TableName="orders", Key={"pk": {"S": CANARY_EMAIL}})

    (span,) = _calls(spans, "GetItem")
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[attr.ERROR_CATEGORY] == "connection"
    assert span.attributes[attr.ERROR_TYPE] == "botocore.exceptions.EndpointConnectionError"
    assert span.attributes[attr.SERVER_PORT] == port


def test_pynamodb_models(moto_endpoint: str, spans: SpanCapture) -> None:
    from pynamodb.attributes import UnicodeAttribute
    from pynamodb.exceptions import PutError
    from pynamodb.models import Model

    class User(Model):
        class Meta:
            table_name = f"users_{uuid.uuid4().hex[:8]}"
            host = moto_endpoint
            region = "us-east-1"
            billing_mode = "PAY_PER_REQUEST"

        email = UnicodeAttribute(hash_key=True)
        token = UnicodeAttribute()

    User.create_table(wait=True)
    try:
        User(email=CANARY_EMAIL, token=CANARY_TOKEN).save()
        assert [u.token for u in User.query(CANARY_EMAIL)] == [CANARY_TOKEN]
        with pytest.raises(PutError):
            User(email=CANARY_EMAIL, token="other").save(condition=User.email.does_not_exist())
    finally:
        User.delete_table()

    table = User.Meta.table_name
    (query,) = _calls(spans, "Query")
    assert query.attributes[attr.DB_QUERY_TEXT] == f"Query {table} KeyConditionExpression: #0 = :0"
    assert query.attributes[attr.DB_RESPONSE_RETURNED_ROWS] == 1
    puts = _calls(spans, "PutItem")
    assert [p.attributes.get(attr.ERROR_CATEGORY) for p in puts] == [None, "constraint_violation"]
    assert puts[1].attributes[attr.DB_QUERY_TEXT] == (
        f"PutItem {table} ConditionExpression: attribute_not_exists (#0)"
    )
