from core.errors import ApplicationError, Conflict, InvalidInput, NotFound


class RegisteredModelNotFound(NotFound):
    code = "model_not_found"


class ModelVersionNotFound(NotFound):
    code = "model_version_not_found"


class PickleNotAllowed(InvalidInput):
    code = "pickle_not_allowed"


class UnsupportedArtifact(InvalidInput):
    code = "unsupported_artifact"


class InputExampleTooLarge(ApplicationError):
    status_code = 413
    code = "payload_too_large"


class ModelVersionInUse(Conflict):
    code = "model_version_in_use"


class ModelNameTaken(Conflict):
    code = "model_name_taken"


class VersionNotUsable(ApplicationError):
    code = "model_version_not_usable"
