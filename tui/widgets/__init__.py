"""Widgets of the TUI: one per module; they render models and post messages."""
