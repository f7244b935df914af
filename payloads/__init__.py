"""Code that runs inside the target process.

Everything in this package is the security boundary of the project: it must
import only the standard library, run unchanged on CPython 3.8-3.13, never
print, never let an exception escape into the target, and never call code of
the target. See docs/DESIGN.md, "Payload rules".
"""
