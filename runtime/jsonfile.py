"""Reading JSON files the project wrote (metadata, configs, resume state) as untrusted input."""
import json


def read_json(path, error, missing="not found", what="JSON"):
    """Parse `path`; a missing, unreadable or malformed file raises `error(message)` naming it."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except (OSError, ValueError) as e:
        raise error(f"{path}: cannot read {what}: {e}") from None
