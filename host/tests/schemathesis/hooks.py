"""Schemathesis hooks for the Sluice admin API: connector uploads are `application/wasm`
bytes, sent as they are drawn (the server must refuse what is not a component)."""

import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("application/wasm")
def wasm(ctx, value):
    return {"data": serialize_binary(value)}
