"""Label helpers shared by the app and one of its revisions."""


def label_for(name: str) -> str:
    """The frame's label: its name, lower case, spaces as dashes."""
    return "-".join(name.lower().split())
