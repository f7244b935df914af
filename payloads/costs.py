"""The time cost model: what one C call may cost, decided before it starts.

placeholder
"""
from __future__ import annotations
