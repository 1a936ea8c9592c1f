"""Runtime patches to upstream libraries, installed as `rocket_openvla.patches`.

Each patch is our own code, applied explicitly by the caller (never on import) and reversible.
"""
