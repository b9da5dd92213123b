"""Regenerating RESULTS.md sections: the probe and steering-vector result tables the CLI writes.

Not part of the library's core: only ``cli`` imports it.
"""
