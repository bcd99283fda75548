"""The HTTP contract: pydantic models that validate requests and shape responses, the operations table the doors
and the OpenAPI document are both built from, and RFC 9457 problem details."""
