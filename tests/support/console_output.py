"""Reading what the SDK's console exporters printed: one JSON document per span or
metrics export, between the application's own lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def json_documents(stdout: str) -> Iterator[dict[str, Any]]:
    """Every JSON object printed in ``stdout``, in order (other text is skipped)."""
    decoder, index = json.JSONDecoder(), 0
    while (start := stdout.find("{", index)) >= 0:
        try:
            document, index = decoder.raw_decode(stdout, start)
        except ValueError:
            index = start + 1
            continue
        if isinstance(document, dict):
            yield document


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The spans the console span exporter printed."""
    return [doc for doc in json_documents(stdout) if "context" in doc and "name" in doc]
