"""Domain errors of nndl, with messages written for people.

Every error carries a `code` naming its kind; the gRPC edge maps codes to status
codes in one table (`nndl.server.errors`), the command line prints the message.
"""


class NndlError(Exception):
    """Base of every error that a user of nndl can cause or fix."""

    code = "internal"


class InvalidArgumentError(NndlError):
    """Input that can never succeed as given (a bad field, a malformed image)."""

    code = "invalid_argument"


class InvalidSpecError(InvalidArgumentError):
    """A job spec with a field out of its allowed range; the message names the field."""


class NotFoundError(NndlError):
    """A model, version, alias or job that does not exist."""

    code = "not_found"


class ModelFormatError(NndlError):
    """A model file that fails validation; the message says what and where."""

    code = "invalid_argument"


class DeviceUnavailableError(NndlError):
    """A job asked for a device this machine does not have."""

    code = "failed_precondition"


class TrainingDivergedError(NndlError):
    """The cost became NaN or infinite; publishing such a network would serve garbage."""

    code = "aborted"


class DataError(NndlError):
    """MNIST could not be found, downloaded or verified."""

    code = "failed_precondition"


class OverloadedError(NndlError):
    """Too much work is queued; the caller should retry later."""

    code = "resource_exhausted"


class UnauthenticatedError(NndlError):
    """A call that needs the bearer token came without the right one."""

    code = "unauthenticated"


class RegistryConflictError(NndlError):
    """The registry's Redis index and its document store disagree; an operator must look."""

    code = "failed_precondition"
