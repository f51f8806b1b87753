"""The nndl client library."""

from nndl.client.client import Classification, ClientError, DigitsClient

__all__ = ["Classification", "ClientError", "DigitsClient"]
