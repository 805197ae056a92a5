"""RQ job bodies: take IDs, call services (queued by registry/queue.py under these dotted names)."""

from registry import services


def validate_model_version(version_id: int) -> str | None:
    version = services.model_version_validate(version_id=version_id)
    return version.status if version else None
