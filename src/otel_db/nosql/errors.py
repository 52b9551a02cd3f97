"""Error facts of MongoDB (pymongo) and DynamoDB (botocore) failures.

Three inputs, one classification: a pymongo ``CommandFailedEvent``'s failure document
or a write error in a reply (``code``, ``codeName``, ``errorLabels``), a raised
exception (pymongo's ``OperationFailure.code``, botocore's ``ClientError`` error code,
their connection errors by class), and what a span's exception event keeps (type name
and message, for botocore's spans). Throttling has no category of its own in the
contract: it is ``other`` and retryable. Nothing here raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from otel_db.sql.errors import (
    CONNECTION,
    CONSTRAINT_VIOLATION,
    DEADLOCK,
    LOCK_TIMEOUT,
    OTHER,
    QUERY_CANCELED,
    SERIALIZATION_FAILURE,
    SYNTAX,
    ErrorFacts,
)

AUTHENTICATION: Final = "authentication"
_RETRYABLE_CATEGORIES: Final = frozenset({DEADLOCK, SERIALIZATION_FAILURE})

# --- MongoDB --------------------------------------------------------------------------

# Server error codes (src/mongo/base/error_codes.yml), by what the application can do.
_MONGO_CATEGORY: Final = {
    **dict.fromkeys((11000, 11001, 12582, 121), CONSTRAINT_VIOLATION),
    112: SERIALIZATION_FAILURE,  # WriteConflict
    **dict.fromkeys((24, 46), LOCK_TIMEOUT),  # LockTimeout, LockBusy
    **dict.fromkeys((50, 262, 11601), QUERY_CANCELED),  # MaxTimeMSExpired, ...
    **dict.fromkeys(
        (6, 7, 89, 91, 189, 9001, 10058, 10107, 11600, 11602, 13435, 13436), CONNECTION
    ),
    18: AUTHENTICATION,  # AuthenticationFailed
    **dict.fromkeys((2, 9, 14, 59, 168, 40324), SYNTAX),
}
#: Code names for the codes a write error carries without one (``writeErrors`` entries
#: have ``code`` and ``errmsg`` only); contrib names failed commands by ``codeName``.
_MONGO_CODE_NAMES: Final = {
    11000: "DuplicateKey",
    11001: "DuplicateKey",
    12582: "DuplicateKey",
    121: "DocumentValidationFailure",
    112: "WriteConflict",
    50: "MaxTimeMSExpired",
    64: "WriteConcernFailed",
}
#: The driver's connection errors (pymongo.errors.ConnectionFailure and its subclasses).
_MONGO_CONNECTION_CLASSES: Final = frozenset(
    {
        "ConnectionFailure",
        "AutoReconnect",
        "NetworkTimeout",
        "ServerSelectionTimeoutError",
        "NotPrimaryError",
        "WaitQueueTimeoutError",
        # a socket error the driver reports as it is, in a failure document's errtype
        "OSError",
        "ConnectionError",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "TimeoutError",
    }
)
_MONGO_TRANSIENT_LABELS: Final = frozenset({"TransientTransactionError", "RetryableWriteError"})
_MONGO_DUPLICATE_KEY: Final = re.compile(r"\bE11000\b")


def mongo_failure_facts(failure: Mapping[str, Any], error_type: str | None = None) -> ErrorFacts:
    """Facts from a server error document (``{"code": 11000, "codeName": ...}``) or a
    driver-side failure (``{"errtype": "AutoReconnect", "errmsg": ...}``)."""
    code = failure.get("code")
    errtype = failure.get("errtype")
    code_name = failure.get("codeName")
    name = str(
        error_type
        or code_name
        or errtype
        or (_MONGO_CODE_NAMES.get(code, "WriteError") if isinstance(code, int) else None)
        or "UnknownError"
    )
    labels = failure.get("errorLabels") or ()
    if isinstance(errtype, str) and errtype in _MONGO_CONNECTION_CLASSES:
        return ErrorFacts(None, CONNECTION, False, name)
    if isinstance(code, int) and not isinstance(code, bool):
        category = _MONGO_CATEGORY.get(code, OTHER)
        status: str | None = str(code)
    else:
        message = str(failure.get("errmsg") or "")
        category = CONSTRAINT_VIOLATION if _MONGO_DUPLICATE_KEY.search(message) else OTHER
        status = None
    retryable = category in _RETRYABLE_CATEGORIES or bool(
        isinstance(labels, Iterable) and _MONGO_TRANSIENT_LABELS.intersection(labels)
    )
    return ErrorFacts(status, category, retryable, name)


def mongo_reply_failure(reply: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first write error (or write concern error) of an ``ok: 1`` reply: pymongo
    raises it (``DuplicateKeyError``, ``BulkWriteError``), but the command succeeded."""
    errors = reply.get("writeErrors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        return errors[0]
    concern = reply.get("writeConcernError")
    return concern if isinstance(concern, Mapping) else None


def pymongo_exception_facts(
    exc: BaseException, class_names: set[str], error_type: str
) -> ErrorFacts:
    if class_names & _MONGO_CONNECTION_CLASSES:
        return ErrorFacts(None, CONNECTION, False, error_type)
    details = getattr(exc, "details", None)
    if isinstance(details, Mapping):
        first = mongo_reply_failure(details)
        if first is not None:
            return mongo_failure_facts(first, error_type)
        return mongo_failure_facts(details, error_type)
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return mongo_failure_facts({"code": code}, error_type)
    return ErrorFacts(None, OTHER, False, error_type)


def pymongo_event_facts(name: str, message: str, error_type: str) -> ErrorFacts:
    if name in _MONGO_CONNECTION_CLASSES:
        return ErrorFacts(None, CONNECTION, False, error_type)
    if name == "DuplicateKeyError" or _MONGO_DUPLICATE_KEY.search(message):
        return ErrorFacts("11000", CONSTRAINT_VIOLATION, False, error_type)
    return ErrorFacts(None, OTHER, False, error_type)


_MONGO_NUMBER: Final = re.compile(r"(?<![\w.$])-?\d+(?:\.\d+)?(?![\w.])")


def mongo_error_message(message: str) -> str:
    """A server message without the values it may quote: cut at the first document or
    quote (``dup key: { email: "..." }``), other lone numbers as ``?``."""
    cut = len(message)
    for mark in ("{", '"', "'", " dup key"):
        found = message.find(mark)
        if found != -1:
            cut = min(cut, found)
    return _MONGO_NUMBER.sub("?", message[:cut].rstrip(" :,"))[:1000]


# --- DynamoDB (botocore) -------------------------------------------------------------

_DYNAMODB_CATEGORY: Final = {
    "ConditionalCheckFailedException": CONSTRAINT_VIOLATION,
    "DuplicateItemException": CONSTRAINT_VIOLATION,
    "TransactionConflictException": SERIALIZATION_FAILURE,
    **dict.fromkeys(
        (
            "ValidationException",
            "SerializationException",
            "ResourceNotFoundException",
            "UnknownOperationException",
        ),
        SYNTAX,
    ),
    **dict.fromkeys(
        (
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "MissingAuthenticationToken",
            "MissingAuthenticationTokenException",
            "AccessDeniedException",
            "ExpiredTokenException",
            "IncompleteSignatureException",
        ),
        AUTHENTICATION,
    ),
    "ServiceUnavailable": CONNECTION,
}
#: Retrying later can succeed: throttled, busy, or the service's own hiccup.
_DYNAMODB_RETRYABLE: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TransactionInProgressException",
        "TransactionConflictException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_BOTOCORE_CONNECTION_CLASSES: Final = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ProxyConnectionError",
        "SSLError",
        "ConnectionError",
        "HTTPClientError",
    }
)
_BOTOCORE_AUTH_CLASSES: Final = frozenset({"NoCredentialsError", "PartialCredentialsError"})
_CLIENT_ERROR_CODE: Final = re.compile(r"An error occurred \((\w+)\)")


def dynamodb_code_facts(code: str, message: str, error_type: str) -> ErrorFacts:
    category = _DYNAMODB_CATEGORY.get(code, OTHER)
    if code == "TransactionCanceledException":
        # The cancellation reasons, in order: the first real one decides.
        if "TransactionConflict" in message:
            category = SERIALIZATION_FAILURE
        elif "ConditionalCheckFailed" in message:
            category = CONSTRAINT_VIOLATION
    retryable = code in _DYNAMODB_RETRYABLE or category in _RETRYABLE_CATEGORIES
    return ErrorFacts(code, category, retryable, error_type)


def botocore_exception_facts(
    exc: BaseException, class_names: set[str], error_type: str
) -> ErrorFacts:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error") or {}
        code = error.get("Code") if isinstance(error, Mapping) else None
        if isinstance(code, str) and code:
            return dynamodb_code_facts(code, str(exc), error_type)
    return _botocore_class_facts(class_names, error_type)


def _botocore_class_facts(class_names: set[str], error_type: str) -> ErrorFacts:
    if class_names & _BOTOCORE_CONNECTION_CLASSES:
        # (botocore has already retried it, as configured: like the other drivers'
        # statement-level connection errors, not retryable)
        return ErrorFacts(None, CONNECTION, False, error_type)
    if class_names & _BOTOCORE_AUTH_CLASSES:
        return ErrorFacts(None, AUTHENTICATION, False, error_type)
    return ErrorFacts(None, OTHER, False, error_type)


def botocore_event_facts(name: str, message: str, error_type: str) -> ErrorFacts:
    match = _CLIENT_ERROR_CODE.match(message)
    if match:
        return dynamodb_code_facts(match.group(1), message, error_type)
    return _botocore_class_facts({name}, error_type)
