"""Tests of the desktop app, offscreen, against a stub engine."""
