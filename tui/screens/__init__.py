"""Screens of the TUI: one per module (PickerScreen, InspectScreen, HelpScreen)."""
